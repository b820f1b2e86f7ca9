package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// upstreamTransport is where requests meet the network: http.Transport and
// what the proxy adds around each of its round trips. It tells a timeout
// while connecting (ENTRAPROXY_UPSTREAM_TIMEOUT: dial, TLS, a proxy's
// CONNECT) from a timeout while waiting for the answer's headers
// (ENTRAPROXY_RESPONSE_TIMEOUT, http.Transport.ResponseHeaderTimeout), so the
// client's 504 names the setting to change.
type upstreamTransport struct {
	base *http.Transport
}

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var connected atomic.Bool // this attempt holds a connection
	trace := &httptrace.ClientTrace{
		GetConn: func(string) { connected.Store(false) },
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	}
	resp, err := t.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil && connected.Load() && isTimeout(err) {
		return nil, &apiError{status: http.StatusGatewayTimeout, code: "upstream_timeout",
			message: "the upstream did not answer within ENTRAPROXY_RESPONSE_TIMEOUT", cause: err}
	}
	return resp, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
