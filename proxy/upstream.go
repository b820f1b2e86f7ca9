package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// upstreamTransport is where requests meet the network: http.Transport and
// what the proxy adds around each of its round trips.
//
//   - A request that failed before any byte of it was written goes again,
//     on another connection, when its body can be sent again (none, or one
//     kept for replay). Front ends close idle connections, and
//     http.Transport can hand one out just as the upstream closes it; it
//     retries such a request itself only for idempotent methods, as it
//     cannot always tell whether the request left (RFC 9110 section 9.2.2).
//     The proxy counts the bytes written to each connection (upstreamConn),
//     so it knows: nothing of the request reached the upstream, so nothing
//     can run twice. A request of which anything was written is never sent
//     again.
//   - Before a reused HTTP/1.x connection is written to, its TCP state is
//     checked (peerClosed): one the upstream has closed is dropped unused,
//     which turns the race above into a failure before writing.
//   - The pool's idle time stays below the upstream's: IdleConnTimeout is
//     set under what Azure's front ends keep, and an upstream that keeps
//     idle connections for less teaches the proxy its limit. A pooled
//     connection found closed before anything of a request was written to
//     it (a clean idle close) lowers idleLimit to 3/4 of the time it had
//     been idle, for idleLimitLife; pooled connections idle that long are
//     dropped unused, so none is written to just as the upstream closes it
//     (which the first rule cannot undo: the request left). A connection
//     that ends after a request was written teaches nothing: the upstream
//     may have closed it for that request, not for its idle time.
//   - A timeout while connecting (ENTRAPROXY_UPSTREAM_TIMEOUT: dial, TLS, a
//     proxy's CONNECT) is told from a timeout waiting for the answer's
//     headers (ENTRAPROXY_RESPONSE_TIMEOUT, ResponseHeaderTimeout), so the
//     client's 504 names the setting to change.
type upstreamTransport struct {
	base *http.Transport
	// idleLimit is the learned limit, nil while none is (or it expired).
	idleLimit atomic.Pointer[idleLimit]
}

// idleLimit is how long a pooled connection may have been idle to be used,
// as the upstream taught it, until it expires.
type idleLimit struct {
	limit   time.Duration
	expires time.Time
}

// idleLimitLife is how long a learned idle limit holds after the clean idle
// close that set it; a close after a longer idle time neither raises nor
// extends it. Without expiry one upstream restart, which closes every
// pooled connection however briefly idle, would have the proxy drop almost
// every pooled connection for good; with it, the full pool is back 5
// minutes later. An upstream that does close idle connections early
// teaches the limit again with the next one it closes (found closed before
// use, so the request goes on another connection).
const idleLimitLife = 5 * time.Minute

// learnIdle notes a clean idle close: the upstream closed a pooled
// connection that had been idle for d, before anything was written to it.
func (t *upstreamTransport) learnIdle(d time.Duration) {
	limit := d * 3 / 4
	if limit <= 0 {
		return
	}
	now := time.Now()
	next := &idleLimit{limit: limit, expires: now.Add(idleLimitLife)}
	for {
		old := t.idleLimit.Load()
		if old != nil && now.Before(old.expires) && old.limit < limit {
			return
		}
		if t.idleLimit.CompareAndSwap(old, next) {
			return
		}
	}
}

// tooIdle reports whether a pooled connection idle for d has passed the
// learned limit.
func (t *upstreamTransport) tooIdle(d time.Duration) bool {
	l := t.idleLimit.Load()
	return l != nil && d >= l.limit && time.Now().Before(l.expires)
}

// maxUnsentRetries bounds how often one request is sent again after attempts
// that wrote nothing: the idle connections a front end closed at the same
// moment are met, and dropped, one by one.
const maxUnsentRetries = 8

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for retries := 0; ; retries++ {
		a := attempt{t: t}
		resp, err := t.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), a.trace())))
		if err == nil {
			return resp, nil
		}
		if a.closedWhileIdle() {
			t.learnIdle(a.idle)
		}
		if retries < maxUnsentRetries && a.unsent() && req.Context().Err() == nil {
			if next, ok := resend(req); ok {
				req = next
				continue
			}
		}
		if a.connected() && isTimeout(err) {
			return nil, &apiError{status: http.StatusGatewayTimeout, code: CodeUpstreamTimeout,
				message: "the upstream did not answer within ENTRAPROXY_RESPONSE_TIMEOUT", cause: err}
		}
		return nil, err
	}
}

// resend is req ready to be sent again, if its body can be.
func resend(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false // a streamed body: what was read of it is gone
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	next := req.WithContext(req.Context())
	next.Body = body
	return next, true
}

// attempt follows one round trip's connections (http.Transport may try more
// than one): the last connection it got, and how much had been written to
// it by then.
type attempt struct {
	t       *upstreamTransport
	mu      sync.Mutex
	conn    *upstreamConn // nil while getting one; also for HTTP/2
	written int64         // conn's count when it was handed over
	idle    time.Duration // how long conn had been idle in the pool
	dropped bool          // the proxy closed conn for its idle time: nothing to learn
	gotConn bool
}

func (a *attempt) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn: func(string) {
			a.mu.Lock()
			a.conn, a.gotConn = nil, false
			a.mu.Unlock()
		},
		GotConn: func(info httptrace.GotConnInfo) {
			uc, _ := findUpstreamConn(info.Conn)
			pooled := info.Reused && uc != nil && !isHTTP2(info.Conn)
			a.mu.Lock()
			a.gotConn = true
			if pooled {
				a.conn, a.written, a.idle = uc, uc.written.Load(), info.IdleTime
			}
			a.mu.Unlock()
			if !pooled {
				return
			}
			closed := peerClosed(uc)
			if closed {
				a.t.learnIdle(info.IdleTime)
			}
			if closed || a.t.tooIdle(info.IdleTime) {
				a.mu.Lock()
				a.dropped = !closed
				a.mu.Unlock()
				// Closed here, the connection fails the write before a
				// byte of the request leaves.
				info.Conn.Close()
			}
		},
	}
}

// closedWhileIdle reports whether the attempt failed because the upstream
// had closed its pooled connection while idle: nothing of the request was
// written to it, and the proxy had not dropped it itself.
func (a *attempt) closedWhileIdle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn != nil && !a.dropped && a.conn.written.Load() == a.written
}

func (a *attempt) connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gotConn
}

// unsent reports whether the attempt failed on a reused HTTP/1.x connection
// without writing a byte to it. http.Transport has waited for its writer by
// the time RoundTrip returns an error, so the count is final.
func (a *attempt) unsent() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn != nil && a.conn.written.Load() == a.written
}

// upstreamConn is an upstream TCP connection as the proxy dialed it. It
// counts the bytes written to it.
type upstreamConn struct {
	net.Conn
	written atomic.Int64
}

func dialUpstream(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &upstreamConn{Conn: c}, nil
	}
}

func (c *upstreamConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

// findUpstreamConn finds the upstreamConn under conn (a *tls.Conn).
func findUpstreamConn(conn net.Conn) (*upstreamConn, bool) {
	for {
		switch c := conn.(type) {
		case *upstreamConn:
			return c, true
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return nil, false
		}
	}
}

// isHTTP2 reports whether conn carries HTTP/2, whose streams share it and
// whose transport handles a closing connection (GOAWAY) itself.
func isHTTP2(conn net.Conn) bool {
	tc, ok := conn.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
