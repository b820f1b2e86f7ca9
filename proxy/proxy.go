// Package proxy forwards app traffic, HTTP and WebSocket, to one Azure
// endpoint with an Entra ID token in the form the service expects.
//
// A request's way through: ServeHTTP decides whether it is forwarded at
// all (the guard, refusals, the answers the proxy gives itself). HTTP goes
// to httputil.ReverseProxy: rewrite sets the target and strips credentials,
// the RoundTripper stack at the top of transport.go sends it (redirects and
// the replay buffer, then the token and the one retry after a 401, then the
// connection layer of upstream.go), modifyResponse edits the answer, and
// responseRecorder records it for the access log. A WebSocket upgrade goes
// to wsProxy.serve, the same policy over handshake attempts made by the
// koding/websocketproxy adapter in internal/wsrelay. The decisions both
// paths share are made once: authorizer (auth.go) for the form, the token
// and what follows a 401, redirectPolicy.check (redirect.go) for
// redirects, classify and writeError (errors.go) for the proxy's own
// answers. docs/ARCHITECTURE.md has the longer map.
package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/entraproxy/entraproxy/internal/hosts"
	"github.com/entraproxy/entraproxy/metrics"
	"github.com/entraproxy/entraproxy/proxy/internal/wsrelay"
)

// Options configure a Proxy. Upstream and Tokens are required.
type Options struct {
	// Upstream is the one endpoint traffic goes to: scheme and host only.
	Upstream *url.URL
	// Tokens supplies the Entra ID token.
	Tokens TokenSource
	// AuthFormat is how the token is written; empty means FormatAuto.
	AuthFormat AuthFormat
	// ResourceID is the ARM id used by the aad form; empty disables aad.
	ResourceID string
	// SpeechPaths maps regional Speech paths to the custom-domain form.
	SpeechPaths bool
	// RedirectHosts are the host patterns an upstream redirect may lead
	// to; nil or empty: redirects are never followed.
	RedirectHosts []string
	// InboundKeys, when any, are required from every client.
	InboundKeys []string
	// AllowedOrigins are browser origins allowed to call, in the form
	// browsers send (scheme://host[:port], lower case); any other Origin
	// header, and a cross-site browser request without one, is refused.
	AllowedOrigins []string
	// AllowedHosts is which Host header values are accepted (DNS rebinding
	// protection); the zero value accepts any. Build it with
	// hosts.ForListener for the address the proxy is served on.
	AllowedHosts hosts.HostCheck
	// UpstreamTimeout bounds connect + TLS (HTTP), or the whole WebSocket
	// handshake; zero means 30s.
	UpstreamTimeout time.Duration
	// ResponseTimeout bounds the wait for an HTTP answer's headers once the
	// request has been sent; zero means no limit. Non-streaming completions
	// of reasoning models take minutes (the OpenAI SDKs wait 10 minutes).
	ResponseTimeout time.Duration
	// KeepBodyURLs leaves absolute upstream URLs in JSON answers as the
	// upstream wrote them; false (the default) points them at the proxy.
	KeepBodyURLs bool
	// Proxy picks an outbound HTTP proxy; nil means http.ProxyFromEnvironment
	// (HTTPS_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)
	// TLSConfig for upstream connections; nil means TLS 1.2 or newer with
	// the system roots (SSL_CERT_FILE honoured).
	TLSConfig *tls.Config
	// Logger gets one line per request and per WebSocket session; nil
	// discards.
	Logger *slog.Logger
	// Metrics, when not nil, counts requests, sessions, frames and retries.
	Metrics *metrics.Metrics
}

// Proxy is the http.Handler apps talk to.
type Proxy struct {
	upstream    *url.URL
	speechPaths bool
	guard       guard
	auth        *authorizer
	redirects   redirectPolicy
	httpProxy   *httputil.ReverseProxy
	ws          *wsProxy
	logger      *slog.Logger
	metrics     *metrics.Metrics
	closing     atomic.Bool

	keepBodyURLs bool
	upstreamOnly []string     // the upstream's host, lower case, alone (upstreamHosts)
	buffers      *copyBuffers // ReverseProxy's, lent to rewriteJSONURLs too
}

// New builds a Proxy from opts.
func New(opts Options) (*Proxy, error) {
	if opts.Upstream == nil || opts.Upstream.Host == "" {
		return nil, errors.New("proxy: Upstream is required")
	}
	if opts.Tokens == nil {
		return nil, errors.New("proxy: Tokens is required")
	}
	format := opts.AuthFormat
	if format == "" {
		format = FormatAuto
	}
	if format == FormatAAD && opts.ResourceID == "" {
		return nil, errors.New("proxy: the aad form needs a ResourceID")
	}
	timeout := opts.UpstreamTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Proxy == nil {
		opts.Proxy = http.ProxyFromEnvironment
	}
	tlsConfig := opts.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	keys := make([][sha256.Size]byte, len(opts.InboundKeys))
	for i, k := range opts.InboundKeys {
		keys[i] = sha256.Sum256([]byte(k))
	}
	upstream := &url.URL{Scheme: opts.Upstream.Scheme, Host: opts.Upstream.Host}

	p := &Proxy{
		upstream:    upstream,
		speechPaths: opts.SpeechPaths,
		guard:       guard{inboundKeys: keys, allowedOrigins: opts.AllowedOrigins, hosts: opts.AllowedHosts},
		auth:        newAuthorizer(opts.Tokens, format, opts.ResourceID, opts.Metrics),
		redirects:   redirectPolicy{allowed: hosts.NewPatterns(opts.RedirectHosts)},
		logger:      logger,
		metrics:     opts.Metrics,

		keepBodyURLs: opts.KeepBodyURLs,
		upstreamOnly: []string{strings.ToLower(upstream.Host)},
		buffers:      &copyBuffers{},
	}

	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	p.httpProxy = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		Transport:      newUpstreamStack(opts, timeout, dialer, tlsConfig, p.auth, p.redirects, p.metrics),
		ErrorHandler:   p.proxyError,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BufferPool:     p.buffers,
		// FlushInterval stays 0: ReverseProxy already flushes at once for
		// text/event-stream and for responses of unknown length.
	}
	p.ws = &wsProxy{p: p, relay: wsrelay.New(dialer, opts.Proxy, tlsConfig, timeout, logger), sessions: make(map[*wsrelay.Session]struct{})}
	return p, nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.URL.IsAbs() || r.URL.Host != "" || len(r.RequestURI) == 0 || r.RequestURI[0] != '/' {
		// The client never chooses where traffic goes (README, "Fixed
		// upstream").
		p.refuse(w, r, errAbsoluteForm)
		return
	}
	if isTraceMethod(r.Method) || overridesToTrace(r.Header) {
		// An upstream that echoes the request would hand the proxy's
		// token back to the caller.
		w.Header().Set("Allow", allowedMethods)
		p.refuse(w, r, errTraceRefused)
		return
	}
	if err := p.guard.check(r); err != nil {
		p.refuse(w, r, err)
		return
	}
	if p.closing.Load() {
		p.refuse(w, r, errShuttingDown)
		return
	}
	if isPreflight(r) || isFavicon(r) {
		// Before the inbound key: browsers send a preflight without
		// credentials, and neither answer spends the identity.
		start := time.Now()
		if isFavicon(r) {
			answerNoFavicon(w)
		} else {
			answerPreflight(w, r)
		}
		p.logAccess(accessEntry{r: r, start: start, status: http.StatusNoContent})
		return
	}
	if err := p.guard.checkKey(r); err != nil {
		p.refuse(w, r, err)
		return
	}
	declineH2C(r.Header)
	if isWebSocketUpgrade(r) {
		p.ws.serve(w, r)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		// ReverseProxy would tunnel any other protocol switch as raw
		// bytes, outside the session tracking that shutdown relies on.
		p.refuse(w, r, errUpgradeNotWebSocket)
		return
	}
	// Set before ReverseProxy runs, not in modifyResponse: the page must be
	// able to read the proxy's own error answers too, which ModifyResponse
	// never sees.
	allowOrigin(w.Header(), r)
	p.serveHTTP(w, r)
}

// refuse answers a request the proxy will not forward, and logs it. A page
// on an allowed origin may read the answer (a missing key, shutting down),
// which would otherwise reach it as an opaque network error.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, e *apiError) {
	start := time.Now()
	if p.guard.checkBrowser(r) == nil {
		allowOrigin(w.Header(), r)
	}
	status, n := writeError(w, r, e)
	p.logAccess(accessEntry{r: r, start: start, status: status, bytesOut: int64(n), errCode: e.code})
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, facts := withUpstreamFacts(r.Context())
	ctx = context.WithValue(ctx, clientAddrKey{}, clientAddr{host: r.Host, tls: r.TLS != nil})
	// A copy of r: the server keeps its own request, Body included (see
	// clientBody).
	r = r.WithContext(ctx)
	x := &httpExchange{}
	x.w.ResponseWriter = w
	x.rec.ResponseWriter = &x.w
	rec, body := &x.rec, &x.body
	body.ReadCloser = r.Body
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	// ReverseProxy ends a response whose body copy failed (the upstream
	// reset, the client left mid-download) by panicking with
	// http.ErrAbortHandler, and so does proxyError for a client that left:
	// the deferred call still logs and counts it.
	completed := false
	defer p.logRequest(r, rec, body, facts, start, &completed)
	p.httpProxy.ServeHTTP(rec, r)
	completed = true
}

// httpExchange is what serveHTTP wraps around one request, in one
// allocation: the recorder the access log reads (ReverseProxy writes to
// it), the writer under it, and the counted client body.
type httpExchange struct {
	rec  responseRecorder
	w    oneContinue
	body clientBody
}

// logRequest writes one request's access log line and metrics.
func (p *Proxy) logRequest(r *http.Request, rec *responseRecorder, body *clientBody, facts *upstreamFacts, start time.Time, completed *bool) {
	e := accessEntry{r: r, start: start, status: rec.status, bytesIn: body.n.Load(), bytesOut: rec.bytes, errCode: rec.errCode, upstream: facts}
	switch {
	case e.status == 0:
		e.status = statusClientClosed // the client left before an answer
	case e.errCode == "" && !*completed:
		e.errCode = "response_aborted"
	}
	p.logAccess(e)
}

// statusClientClosed is logged when the client went away before an answer
// (nginx's 499).
const statusClientClosed = 499

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream) // also makes Host the upstream's
	out := pr.Out
	stripCredentialHeaders(out.Header)
	// The client's query, not Out's: ReverseProxy drops the pairs of a
	// query url.ParseQuery refuses (a ';', a bad '%' escape) and sorts the
	// rest, which would lose what the client sent.
	out.URL.RawQuery = stripCredentialQuery(pr.In.URL.RawQuery)
	if !p.keepBodyURLs {
		// The proxy negotiates the encoding itself: http.Transport then
		// asks for gzip and decodes it, so JSON answers can be read for
		// their URLs (the client gets them unencoded).
		out.Header.Del("Accept-Encoding")
	}
	if p.speechPaths {
		mapSpeechPath(out.URL)
	}
}

// mapSpeechPath rewrites u in place to the custom-domain Speech path.
func mapSpeechPath(u *url.URL) {
	prefix := speechPrefix(u.EscapedPath())
	if prefix == "" {
		return
	}
	u.Path = prefix + u.Path
	if u.RawPath != "" {
		u.RawPath = prefix + u.RawPath
	}
}

func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client left (net/http also ends the context when a client
		// closes its sending side mid-body). Nobody reads an answer, and
		// net/http would answer a handler that wrote nothing with an empty
		// 200 of its own, to a client that is still reading: abort the
		// connection instead. The access log says 499.
		panic(http.ErrAbortHandler)
	}
	e := classify(err)
	if rec, ok := w.(*responseRecorder); ok {
		rec.errCode = e.code
	}
	switch {
	case isClientBodyError(err):
		p.logger.LogAttrs(r.Context(), slog.LevelInfo, "client request body unreadable",
			slog.String("path", logPath(r)), slog.String("error", e.cause.Error()))
	case e.cause != nil:
		p.logger.LogAttrs(r.Context(), e.logLevel(), "upstream request failed",
			slog.String("path", logPath(r)), slog.String("code", e.code), slog.String("error", e.cause.Error()))
	}
	writeError(w, r, e)
}

// Shutdown makes new requests answer 503 shutting_down and closes live
// WebSocket sessions with 1001 (going away), waiting for them until ctx ends.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	return p.ws.shutdown(ctx)
}
