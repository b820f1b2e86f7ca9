package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/entraproxy/entraproxy/metrics"
)

// The upstream RoundTripper stack. httputil.ReverseProxy hands each
// rewritten request (Proxy.rewrite) to the top layer; an error from any
// layer reaches Proxy.proxyError, which answers classify(err). Top to
// bottom:
//
//   - redirectFollower keeps a body of known length up to maxReplayBody as
//     it is read (makeReplayable, reqbody.go), so the layers below may send
//     it again, and follows the upstream's redirects through http.Client,
//     each hop as redirectPolicy.check (redirect.go) allows; a 3xx never
//     reaches the client. It relies on the layer below to authorize every
//     hop, the first and each redirect alike.
//   - authTransport sets the one Authorization (authorizer.first, auth.go)
//     and, after a 401, sends the one retry authorizer.after401 chooses. It
//     relies on the layer above for a replayable body (GetBody): a body
//     without one was streamed and is sent once.
//   - upstreamTransport (upstream.go) is http.Transport plus the proxy's
//     connection care: a request of which nothing was written is sent again
//     on another connection, closed idle connections are caught before use,
//     and the two timeouts are told apart. It relies on the dialer's
//     upstreamConn to count the bytes written, and on GetBody to resend.
//
// Each layer sees the request once per upstream request: the follower once
// per client request, authTransport once per hop, upstreamTransport once
// per hop and retry.
func newUpstreamStack(opts Options, timeout time.Duration, dialer *net.Dialer, tlsConfig *tls.Config,
	auth *authorizer, redirects redirectPolicy, m *metrics.Metrics) http.RoundTripper {
	base := &http.Transport{
		Proxy:                 opts.Proxy,
		DialContext:           dialUpstream(dialer),
		TLSClientConfig:       tlsConfig.Clone(), // Transport edits NextProtos in place; the WebSocket dialer shares tlsConfig
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: opts.ResponseTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// One upstream host: keep enough idle connections for a busy app
		// instead of http.Transport's default of 2 per host.
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		// Under the 4-minute idle timeout of Azure's load balancers
		// (https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout)
		// and the 60 s many HTTP front ends keep; a connection closed
		// sooner is caught before it is written to (upstreamTransport).
		IdleConnTimeout: 50 * time.Second,
		// With the 2 KB Authorization, http.Transport's 4 KiB buffers took
		// two writes for a request with a few KiB of JSON and two reads for
		// an answer of that size; 16 KiB takes one (BENCHMARKS.md).
		WriteBufferSize: 16 << 10,
		ReadBufferSize:  16 << 10,
	}
	return newRedirectFollower(&authTransport{auth: auth, base: &upstreamTransport{base: base}}, redirects, m)
}

// maxReplayBody is the largest request body kept for a retry or a 307/308
// redirect (README, ENTRAPROXY_AUTH_FORMAT). SSML and chat JSON fit;
// audio uploads stream and are sent once.
const maxReplayBody = 1 << 20

// maxRedirects is how many upstream redirects one request may follow.
const maxRedirects = 3

// authTransport sets the proxy's Authorization on each upstream request. It
// is where a missing token can still become an error (503), never an
// unauthenticated call to Azure.
type authTransport struct {
	auth *authorizer
	base http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	facts := upstreamFactsOf(req.Context())
	facts.attempt(host, req.URL.EscapedPath())
	cred, err := t.auth.first(req.Context(), host)
	if err != nil {
		return nil, err
	}
	resp, err := t.send(req, cred)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // a streamed body was sent once and cannot be replayed
	}
	retry, ok := t.auth.after401(req.Context(), host, cred)
	if !ok {
		return resp, nil
	}
	again := *req
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	discard(resp.Body)
	facts.retrying()
	resp, err = t.send(&again, retry.credential)
	if err == nil {
		retry.answered(resp.StatusCode)
	}
	return resp, err
}

// send makes one upstream request with c, noting it for the access log.
func (t *authTransport) send(req *http.Request, c credential) (*http.Response, error) {
	facts := upstreamFactsOf(req.Context())
	facts.sending(c.form)
	resp, err := t.base.RoundTrip(withAuthorization(req, t.auth.header(c)))
	if err == nil {
		facts.answered(resp.Header)
	}
	return resp, err
}

// withAuthorization returns a shallow copy of req whose header map is its own
// and holds exactly one Authorization: RoundTrippers must not modify the
// request they are given.
func withAuthorization(req *http.Request, value string) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Header = maps.Clone(req.Header)
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header["Authorization"] = []string{value}
	return r
}

// discard drains a little of a body so its connection can be reused, then
// closes it.
func discard(body io.ReadCloser) {
	io.CopyN(io.Discard, body, 64<<10)
	body.Close()
}

// redirectFollower follows upstream redirects (to allowed hosts only) so a
// 3xx never reaches the client, which would then go to Azure without the
// token (docs/SPEECH-SDK-WIRE.md, Entra ID forms and redirects).
type redirectFollower struct {
	next   http.RoundTripper
	policy redirectPolicy
	client *http.Client // its Transport is set per redirected request
}

func newRedirectFollower(next http.RoundTripper, policy redirectPolicy, m *metrics.Metrics) *redirectFollower {
	return &redirectFollower{next: next, policy: policy, client: &http.Client{
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			to, e := policy.check(via[len(via)-1].URL, req.Response.StatusCode, req.Response.Header.Get("Location"), len(via)-1)
			if e != nil {
				return e
			}
			req.URL = to
			m.RedirectFollowed()
			return nil
		},
	}}
}

func (f *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	out := new(http.Request)
	*out = *req
	out.RequestURI = "" // http.Client refuses server requests
	makeReplayable(out)
	// Most answers are not redirects: those take one round trip, without
	// http.Client's work per request (a copy of the headers, its request
	// list and closures; BENCHMARKS.md). A redirect is handed to http.Client
	// as the answer to its own first round trip, so it follows it exactly
	// as if it had sent the request itself.
	resp, err := f.next.RoundTrip(out)
	if err != nil || !mustNotPass(resp.StatusCode) {
		return resp, err
	}
	client := *f.client
	client.Transport = &answeredOnce{first: resp, next: f.next}
	resp, err = client.Do(out)
	if err != nil {
		// http.Client wraps errors in *url.Error, whose text repeats the
		// URL; the cause is what classify needs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	if !mustNotPass(resp.StatusCode) {
		return resp, nil
	}
	// http.Client hands back a 3xx it does not follow: one without a
	// Location or of a kind it does not follow, which check refuses, or a
	// 307/308 whose body it cannot send again.
	discard(resp.Body)
	if _, e := f.policy.check(resp.Request.URL, resp.StatusCode, resp.Header.Get("Location"), 0); e != nil {
		return nil, e
	}
	return nil, &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
		message: "the upstream redirected a request whose body was streamed and cannot be sent again; send bodies of at most 1 MiB with a Content-Length"}
}

// answeredOnce answers its first round trip with a response already
// received and passes the others on to next.
type answeredOnce struct {
	first *http.Response
	next  http.RoundTripper
}

func (t *answeredOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := t.first; resp != nil {
		t.first = nil
		return resp, nil
	}
	return t.next.RoundTrip(req)
}
