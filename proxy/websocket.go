package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/koding/websocketproxy"
	xproxy "golang.org/x/net/proxy"
)

// wsProxy relays WebSocket sessions through koding/websocketproxy, wrapped
// to remove its known weaknesses (README, "WebSocket: what koding/websocketproxy still cannot do"): the upgrade
// is checked and the token fetched before anything is dialed; the dialer is
// ours (TLS 1.2+, HTTPS_PROXY, bounded handshake bound to the request);
// upstream redirects and 401s are handled here instead of being copied to the
// client; and shutdown closes live sessions with 1001.
type wsProxy struct {
	p         *Proxy
	netDialer *net.Dialer
	proxyFunc func(*http.Request) (*url.URL, error)
	tlsConfig *tls.Config
	upgrader  *websocket.Upgrader
	bufs      sync.Pool

	mu       sync.Mutex
	sessions map[*wsSession]struct{}
	inflight int           // upgrade requests being served (see enter)
	idle     chan struct{} // closed when inflight drops to zero
	closing  bool          // shutdown has begun: no new upgrades
}

func newWSProxy(p *Proxy, d *net.Dialer, proxyFunc func(*http.Request) (*url.URL, error), tlsConfig *tls.Config) *wsProxy {
	s := &wsProxy{p: p, netDialer: d, proxyFunc: proxyFunc, tlsConfig: tlsConfig, sessions: make(map[*wsSession]struct{})}
	s.upgrader = &websocket.Upgrader{
		// No ReadBufferSize: gorilla (1.5.3, bufioReaderSize) then resets
		// the 4 KiB reader of the hijacked connection, which net/http holds
		// for the whole session anyway, onto the conn that Hijack returns,
		// our meter, and reads through it, instead of allocating another
		// 4 KiB per session (BENCHMARKS.md, idle sessions).
		// No WriteBufferPool: gorilla then writes frames through the 4 KiB
		// buffer of the hijacked connection, which net/http holds for the
		// whole session anyway, instead of taking a pool buffer (and
		// allocating) for every message (BENCHMARKS.md). Writes still go
		// through our meter.
		// Origin was checked by the guard against ENTRAPROXY_ALLOWED_ORIGINS.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s
}

// checkUpgrade validates a client's upgrade request before anything is
// dialed: koding/websocketproxy would dial the upstream first and only then
// let gorilla find the request bad.
func checkUpgrade(r *http.Request) *apiError {
	bad := func(why string) *apiError {
		return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, message: "bad WebSocket upgrade: " + why}
	}
	switch {
	case r.Method != http.MethodGet:
		return bad("the method must be GET")
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return bad("Connection must include Upgrade")
	case r.Header.Get("Sec-Websocket-Version") != "13":
		return bad("Sec-WebSocket-Version must be 13")
	case r.Header.Get("Sec-Websocket-Key") == "":
		return bad("Sec-WebSocket-Key is missing")
	}
	return nil
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsHandshake is one session's way to an upstream handshake: the target,
// the credential, and the redirects and retry spent so far.
type wsHandshake struct {
	target  *url.URL
	cred    credential
	hops    int
	retried bool
	retry   *authRetry // the 401 retry, until its answer is reported
	// sent reports that a handshake went out; requestID is the upstream's
	// id for its latest answer.
	sent      bool
	requestID string
}

// facts is what the access log tells of the handshakes (upstreamFacts).
func (hs *wsHandshake) facts() *upstreamFacts {
	return &upstreamFacts{attempts: hs.hops + 1, path: hs.target.EscapedPath(), host: hs.target.Host,
		sent: hs.sent, form: hs.cred.form, retried: hs.retried, requestID: hs.requestID}
}

// answered reports a handshake's answer to the 401 retry it carried.
func (hs *wsHandshake) answered(status int) {
	if hs.retry != nil {
		hs.retry.answered(status)
		hs.retry = nil
	}
}

func (s *wsProxy) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := checkUpgrade(r); e != nil {
		s.p.refuse(w, r, e)
		return
	}
	if !s.enter() {
		s.p.refuse(w, r, errShuttingDown)
		return
	}
	defer s.leave()
	target := &url.URL{Scheme: wsScheme(s.p.upstream.Scheme), Host: s.p.upstream.Host, Path: r.URL.Path, RawPath: r.URL.RawPath,
		RawQuery: stripCredentialQuery(r.URL.RawQuery)}
	if s.p.speechPaths {
		mapSpeechPath(target)
	}
	hs := &wsHandshake{target: target}
	cred, err := s.p.auth.first(r.Context(), target.Host)
	if err != nil {
		s.fail(w, r, start, classify(err), nil)
		return
	}
	hs.cred = cred

	for {
		att := s.attempt(w, r, hs)
		if att.session != nil {
			return // the session ran and logged itself
		}
		if e := att.failure(); e != nil {
			s.fail(w, r, start, e, hs.facts())
			return
		}
		hs.requestID = upstreamRequestID(att.header)
		hs.answered(att.status)
		switch {
		case att.status == http.StatusUnauthorized && !hs.retried:
			retry, ok := s.p.auth.after401(r.Context(), hs.target.Host, hs.cred)
			if !ok {
				s.relayFailure(w, r, start, att)
				return
			}
			hs.retried, hs.retry, hs.cred = true, retry, retry.credential
		case mustNotPass(att.status):
			next, e := s.p.redirects.check(hs.target, att.status, att.header.Get("Location"), hs.hops)
			if e != nil {
				s.fail(w, r, start, e, hs.facts())
				return
			}
			next.Scheme = wsScheme(next.Scheme)
			cred, err := s.p.auth.first(r.Context(), next.Host)
			if err != nil {
				s.fail(w, r, start, classify(err), hs.facts())
				return
			}
			hs.target, hs.cred, hs.hops = next, cred, hs.hops+1
			s.p.metrics.RedirectFollowed()
		default:
			s.relayFailure(w, r, start, att)
			return
		}
	}
}

func wsScheme(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "wss"
	}
	return "ws"
}

// wsAttempt is one upstream handshake through koding/websocketproxy. The
// response writer it hands koding captures a failed handshake's answer, so
// the wrapper can follow a redirect or retry instead of passing it on.
type wsAttempt struct {
	rw      http.ResponseWriter
	header  http.Header
	status  int
	body    bytes.Buffer
	dialErr error
	dialed  *meteredConn // the upstream conn, once dialed
	hctx    context.Context
	stop    func() bool // detaches the handshake bound once upgraded
	session *wsSession
	s       *wsProxy
	r       *http.Request
	hs      *wsHandshake
	start   time.Time
}

func (s *wsProxy) attempt(w http.ResponseWriter, r *http.Request, hs *wsHandshake) *wsAttempt {
	hctx, cancel := context.WithTimeout(r.Context(), s.p.timeout)
	defer cancel()
	att := &wsAttempt{rw: w, header: make(http.Header), hctx: hctx, s: s, r: r, hs: hs, start: time.Now()}
	auth := s.p.auth.header(hs.cred)
	hs.sent = true
	target := hs.target
	kp := &websocketproxy.WebsocketProxy{
		Backend: func(*http.Request) *url.URL { return target },
		Director: func(in *http.Request, out http.Header) {
			copyWSHeaders(in.Header, out)
			out.Set("Host", target.Host)
			out["Authorization"] = []string{auth}
		},
		Upgrader: s.upgrader,
		Dialer: &websocket.Dialer{
			NetDialContext:    att.dial,
			NetDialTLSContext: att.dialTLS,
			HandshakeTimeout:  s.p.timeout,
			WriteBufferPool:   &s.bufs,
			ReadBufferSize:    4096,
		},
	}
	kp.ServeHTTP(att, r)
	if att.session != nil {
		att.session.finish()
	}
	return att
}

// dial connects to the upstream for ws://, bound to the request and the
// upstream timeout rather than koding's background context.
func (a *wsAttempt) dial(_ context.Context, network, addr string) (net.Conn, error) {
	conn, err := a.s.netDialer.DialContext(a.hctx, network, addr)
	if err != nil {
		a.dialErr = err
		return nil, err
	}
	return a.bind(conn), nil
}

// dialTLS connects for wss://, through HTTPS_PROXY when one applies, and does
// the TLS handshake itself, so its errors are known here (gorilla would keep
// them to itself, and koding would only log them).
func (a *wsAttempt) dialTLS(_ context.Context, network, addr string) (net.Conn, error) {
	conn, err := a.dialVia(network, addr)
	if err != nil {
		a.dialErr = err
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := a.s.tlsConfig.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = nil // WebSocket needs HTTP/1.1
	tlsConn := tls.Client(conn, cfg)
	if err := tlsConn.HandshakeContext(a.hctx); err != nil {
		conn.Close()
		a.dialErr = &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
			message: "the TLS handshake with the upstream failed; check ENTRAPROXY_UPSTREAM, SSL_CERT_FILE and any TLS-inspecting proxy",
			cause:   fmt.Errorf("tls handshake with %s: %w", addr, err)}
		return nil, a.dialErr
	}
	return a.bind(tlsConn), nil
}

// dialVia opens a TCP connection to addr, tunnelled through the HTTP proxy
// that Proxy picks for it, if any.
func (a *wsAttempt) dialVia(network, addr string) (net.Conn, error) {
	proxyURL, err := a.s.proxyFunc(&http.Request{URL: &url.URL{Scheme: "https", Host: addr}})
	if err != nil || proxyURL == nil {
		if err != nil {
			return nil, fmt.Errorf("choose proxy for %s: %w", addr, err)
		}
		return a.s.netDialer.DialContext(a.hctx, network, addr)
	}
	switch proxyURL.Scheme {
	case "socks5", "socks5h":
		// As http.Transport does for HTTP traffic, so HTTPS_PROXY means the
		// same for both.
		d, err := xproxy.FromURL(proxyURL, a.s.netDialer)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
		}
		conn, err := d.(xproxy.ContextDialer).DialContext(a.hctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s via proxy %s: %w", addr, proxyURL.Host, err)
		}
		return conn, nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("proxy %s: scheme %q is not supported; use http, https or socks5", proxyURL.Redacted(), proxyURL.Scheme)
	}
	port := proxyURL.Port()
	if port == "" {
		port = "80"
		if proxyURL.Scheme == "https" {
			port = "443"
		}
	}
	proxyAddr := net.JoinHostPort(proxyURL.Hostname(), port)
	conn, err := a.s.netDialer.DialContext(a.hctx, network, proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", proxyAddr, err)
	}
	if proxyURL.Scheme == "https" {
		cfg := a.s.tlsConfig.Clone() // the same roots as for the upstream (SSL_CERT_FILE)
		cfg.ServerName, cfg.NextProtos = proxyURL.Hostname(), nil
		conn = tls.Client(conn, cfg)
	}
	if d, ok := a.hctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: make(http.Header)}
	if u := proxyURL.User; u != nil {
		p, _ := u.Password()
		connect.SetBasicAuth(u.Username(), p)
		connect.Header.Set("Proxy-Authorization", connect.Header.Get("Authorization"))
		connect.Header.Del("Authorization")
	}
	if err := connect.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect via proxy %s: %w", proxyAddr, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, connect)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect via proxy %s: %w", proxyAddr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		conn.Close()
		return nil, fmt.Errorf("connect via proxy %s: %s", proxyAddr, resp.Status)
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		conn.Close()
		return nil, fmt.Errorf("connect via proxy %s: proxy sent data before the tunnel opened", proxyAddr)
	}
	return conn, nil
}

// bind ties the handshake on conn to the request: when the client leaves or
// the upstream timeout passes, the handshake is cut. Hijack detaches it once
// the session is up.
func (a *wsAttempt) bind(conn net.Conn) net.Conn {
	mc := &meteredConn{Conn: conn, wrote: newCloseWatch()}
	a.dialed = mc
	a.stop = context.AfterFunc(a.hctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return mc
}

// maxHandshakeBody is how much of a failed handshake's body is relayed:
// gorilla keeps no more than 1 KiB of it.
const maxHandshakeBody = 1 << 10

// Header, WriteHeader and Write capture what koding writes after a failed
// handshake. Hijack is the success path: gorilla upgrades the client.
func (a *wsAttempt) Header() http.Header { return a.header }

func (a *wsAttempt) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *wsAttempt) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if room := maxHandshakeBody - a.body.Len(); room > 0 {
		a.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

func (a *wsAttempt) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if a.stop != nil && !a.stop() {
		return nil, nil, errors.New("upstream handshake cut short")
	}
	conn, brw, err := http.NewResponseController(a.rw).Hijack()
	if err != nil {
		return nil, nil, err
	}
	a.hs.answered(http.StatusSwitchingProtocols)
	upstreamHeader := a.dialed.responseHeader()
	a.hs.requestID = upstreamRequestID(upstreamHeader)
	a.session = a.s.startSession(a.r, conn, a.dialed, a.start, a.hs.facts())
	a.session.client.upstream101 = upstream101Headers(upstreamHeader)
	return a.session.client, brw, nil
}

// failure is the proxy's own error for an attempt that reached no upstream
// answer, or nil when the upstream answered.
func (a *wsAttempt) failure() *apiError {
	if a.dialErr != nil {
		return classify(a.dialErr)
	}
	if a.status == http.StatusSwitchingProtocols {
		// gorilla refused the upstream's 101 (a wrong Sec-WebSocket-Accept,
		// no Upgrade header): a broken upstream, not an answer to relay.
		return &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
			message: "the upstream's WebSocket handshake answer was invalid"}
	}
	if a.dialed == nil || !a.dialed.answered() {
		// Connected, or not even that, but no whole answer came: koding
		// wrote its own 503. Say what happened instead. The clock decides, not
		// hctx.Err(): gorilla's own handshake deadline can fire before the
		// context's timer has run, and attempt has cancelled hctx since.
		if d, ok := a.hctx.Deadline(); ok && !time.Now().Before(d) {
			return classify(context.DeadlineExceeded)
		}
		return &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
			message: "the upstream closed the connection during the WebSocket handshake"}
	}
	return nil
}

// relayFailure hands the upstream's failed handshake answer to the client:
// its status, end-to-end headers and (up to 1 KiB) body, with a
// Content-Length that matches the body. koding would keep the upstream's
// length.
func (s *wsProxy) relayFailure(w http.ResponseWriter, r *http.Request, start time.Time, att *wsAttempt) {
	dropHopHeaders(att.header)
	h := w.Header()
	for k, vs := range att.header {
		switch k {
		case "Content-Length", "Location":
			continue
		}
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(att.body.Len()))
	w.WriteHeader(att.status)
	w.Write(att.body.Bytes())
	s.p.logAccess(accessEntry{r: r, start: start, status: att.status, bytesOut: int64(att.body.Len()), upstream: att.hs.facts()})
}

// fail answers e for a handshake that did not get through; up is what went
// to the upstream, nil when nothing did.
func (s *wsProxy) fail(w http.ResponseWriter, r *http.Request, start time.Time, e *apiError, up *upstreamFacts) {
	if e.cause != nil {
		s.p.logger.LogAttrs(r.Context(), e.logLevel(), "websocket handshake failed",
			slog.String("path", logPath(r)), slog.String("code", e.code), slog.String("error", e.cause.Error()))
	}
	status, n := writeError(w, r, e)
	s.p.logAccess(accessEntry{r: r, start: start, status: status, bytesOut: int64(n), errCode: e.code, upstream: up})
}

// copyWSHeaders passes the client's headers to the upstream handshake,
// except those that belong to the client's own connection or handshake,
// credentials, and forwarding headers. koding has already set Origin, the
// subprotocols and cookies (and X-Forwarded-*, removed here).
func copyWSHeaders(in, out http.Header) {
	out.Del("X-Forwarded-For")
	out.Del("X-Forwarded-Proto")
	connectionListed := make(map[string]bool)
	for _, v := range in.Values("Connection") {
		for t := range strings.SplitSeq(v, ",") {
			connectionListed[http.CanonicalHeaderKey(strings.TrimSpace(t))] = true
		}
	}
	for k, vs := range in {
		switch k {
		case "Connection", "Upgrade", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding",
			"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
			"Host", "Origin", "Cookie":
			continue
		}
		if connectionListed[k] {
			continue
		}
		out[k] = vs
	}
	stripCredentialHeaders(out)
}
