package wsrelay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/koding/websocketproxy"
)

// Relay opens WebSocket sessions to an upstream through koding's
// WebsocketProxy. Build it with New; one Relay serves any number of
// sessions at once.
type Relay struct {
	dialer    *net.Dialer
	proxy     func(*http.Request) (*url.URL, error)
	tlsConfig *tls.Config
	timeout   time.Duration
	upgrader  *websocket.Upgrader
	bufs      sync.Pool // gorilla's write buffers, for both connections of every session
	logger    *slog.Logger
}

// New returns a Relay that connects with d, through the outbound proxy that
// proxy picks for an upstream address (nil: none; http, https, socks5 and
// socks5h proxies are spoken), makes TLS connections (wss upstreams, https
// proxies) with a clone of tlsConfig, and gives each handshake, from dial to
// the upstream's 101, at most timeout, which must be positive (zero would
// end every handshake at once). A panic in a session's goroutine (see
// Attempt) is logged to logger at error level.
func New(d *net.Dialer, proxy func(*http.Request) (*url.URL, error), tlsConfig *tls.Config, timeout time.Duration, logger *slog.Logger) *Relay {
	if proxy == nil {
		proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	}
	r := &Relay{dialer: d, proxy: proxy, tlsConfig: tlsConfig, timeout: timeout, logger: logger, upgrader: &websocket.Upgrader{
		// No ReadBufferSize: gorilla (1.5.3, bufioReaderSize) then resets
		// the 4 KiB reader of the hijacked connection, which net/http holds
		// for the whole session anyway, onto the conn that Hijack returns,
		// clientConn, and reads through it, instead of allocating another
		// 4 KiB per session (BENCHMARKS.md, idle sessions).
		// WriteBufferPool: an idle session holds no write buffer; each
		// message to the client takes one from the pool the upstream
		// connections use (the same size: gorilla's 4 KiB default and a
		// frame header, which takes a 3,200-byte audio frame in one
		// write) and gives it back once written. Without it gorilla
		// writes through the hijacked connection's 4 KiB buffer, held
		// for the whole session (BENCHMARKS.md, idle sessions). Writes
		// still go through clientConn.
		// The caller has judged the Origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}}
	r.upgrader.WriteBufferPool = &r.bufs
	return r
}

// Handshake is one upstream handshake to attempt.
type Handshake struct {
	// Target is the upstream URL, ws or wss.
	Target *url.URL
	// Header is the client's fields as the caller wants the upstream to
	// get them (the subprotocols offered included). The relay leaves out
	// the hop-by-hop ones, those Connection names, and those gorilla
	// writes itself; Host is Target's.
	Header http.Header
	// Authorization, when not empty, is the upstream's Authorization
	// field. It is set after the fields the client's Connection names are
	// gone: a client may name any field there (RFC 9110 section 7.6.1),
	// Authorization too, and must not take the caller's credential away.
	Authorization string
	// Upgraded, when not nil, is called once the upstream has accepted,
	// with the session and the header of the upstream's 101, before the
	// client gets its 101 and the relay begins.
	Upgraded func(s *Session, upstream101 http.Header)
	// Ended, when not nil, is called once a session that Upgraded
	// announced has ended, on the goroutine that relayed it; also when
	// that goroutine panicked (Upgraded included), after the panic is
	// logged and the session's connections cut.
	Ended func(s *Session)
}

// Outcome is how an attempt ended: a session, the upstream's refusal, or
// an error. Exactly one of Session, Status and Err is set.
type Outcome struct {
	// Session is the session, when the upstream accepted the handshake.
	// It runs on when Attempt returns, and Handshake.Ended tells its end.
	Session *Session
	// Status, Header and Body are the upstream's answer when it refused
	// the handshake with a whole HTTP answer: Header without hop-by-hop
	// fields and with a Content-Length that matches Body, Body its first
	// MaxRefusalBody bytes.
	Status int
	Header http.Header
	Body   []byte
	// Err says why neither came: the dial failed (a *TLSError for the
	// upstream's TLS handshake), the handshake ran out of time
	// (context.DeadlineExceeded), the upstream closed before a whole answer
	// (ErrNoAnswer), or its 101 was not a valid WebSocket one
	// (ErrInvalidAnswer).
	Err error
}

// MaxRefusalBody is how much of a refused handshake's body Outcome keeps:
// gorilla keeps no more (websocket 1.5.3, Dialer.DialContext).
const MaxRefusalBody = 1 << 10

var (
	// ErrNoAnswer is a handshake the upstream ended before a whole answer.
	ErrNoAnswer = errors.New("the upstream closed the connection during the WebSocket handshake")
	// ErrInvalidAnswer is an upstream 101 that is not a valid WebSocket
	// answer (a wrong Sec-WebSocket-Accept, no Upgrade field).
	ErrInvalidAnswer = errors.New("the upstream's WebSocket handshake answer was invalid")
)

// TLSError is a failed TLS handshake with the upstream.
type TLSError struct {
	Addr string // host:port
	Err  error
}

func (e *TLSError) Error() string { return "tls handshake with " + e.Addr + ": " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// Attempt makes one upstream handshake for the client's upgrade request req
// and, when the upstream accepts, upgrades the client on w and starts the
// session. req must have passed CheckUpgrade. The handshake ends with req's
// context.
//
// koding's ServeHTTP makes the handshake and then blocks until the session
// ends, so Attempt runs it on a goroutine of its own and returns as soon as
// the client's connection is hijacked for the session (or koding has
// returned without one). The caller's handler can then return, and with
// it net/http's goroutine and what it holds for the connection, which a
// hijacked connection no longer uses (about 6 KiB of buffers, and a stack
// deeper than koding's): memory for each idle session (BENCHMARKS.md).
func (r *Relay) Attempt(w http.ResponseWriter, req *http.Request, hs Handshake) Outcome {
	ctx, cancel := context.WithTimeout(req.Context(), r.timeout)
	a := &attempt{r: r, rw: w, hs: hs, ctx: ctx, cancel: cancel, header: make(http.Header), upgraded: make(chan struct{})}
	kp := &websocketproxy.WebsocketProxy{
		Backend:  func(*http.Request) *url.URL { return hs.Target },
		Director: func(_ *http.Request, out http.Header) { handshakeFields(out, a.hs) },
		Upgrader: r.upgrader,
		Dialer: &websocket.Dialer{
			NetDialContext:    a.dial,
			NetDialTLSContext: a.dialTLS,
			HandshakeTimeout:  r.timeout,
			WriteBufferPool:   &r.bufs,
			ReadBufferSize:    4096,
		},
	}
	done := make(chan struct{})
	go func() {
		defer a.end(done)
		kp.ServeHTTP(a, req)
	}()
	select {
	case <-a.upgraded:
		return Outcome{Session: a.session}
	case <-done:
		return a.outcome()
	}
}

// end runs, deferred, when koding's ServeHTTP has returned or panicked.
// It runs on the attempt's own goroutine, which net/http's recovery of a
// handler's panic does not reach: a panic here (koding, gorilla, Director,
// Upgraded, Ended) would end the process and every session in it. So it
// recovers, logs the panic with its stack, as net/http does for a handler,
// cuts the session's connections, and still calls Ended (once, for a
// session that came up) and closes done, for which Attempt may be waiting.
func (a *attempt) end(done chan struct{}) {
	defer close(done)
	if v := recover(); v != nil {
		a.recovered(v)
	}
	a.cancel()
	if a.session != nil && a.hs.Ended != nil {
		defer func() {
			if v := recover(); v != nil {
				a.recovered(v)
			}
		}()
		a.hs.Ended(a.session)
	}
}

// recovered handles a panic that end recovered: it logs it, cuts what
// the attempt holds open, and, for an attempt with no session, makes it
// the attempt's error.
func (a *attempt) recovered(v any) {
	// As net/http: ErrAbortHandler aborts quietly.
	if v != http.ErrAbortHandler {
		a.r.logger.LogAttrs(a.ctx, slog.LevelError, "websocket relay panicked",
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	}
	switch {
	case a.session != nil:
		a.session.Cut()
	case a.upstream != nil:
		a.upstream.Conn.Close()
	}
	if a.session == nil && a.err == nil {
		a.err = fmt.Errorf("websocket relay panicked: %v", v)
	}
}

// handshakeFields replaces koding's fields for the upstream handshake
// (its picks of the client's, X-Forwarded-For and -Proto of its own) with
// hs.Header's end-to-end ones, the target's Host and hs.Authorization.
func handshakeFields(out http.Header, hs Handshake) {
	clear(out)
	maps.Copy(out, hs.Header)
	dropHopHeaders(out)
	// gorilla writes its own, and refuses to dial with these.
	for _, name := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions"} {
		delete(out, name)
	}
	out.Set("Host", hs.Target.Host)
	if hs.Authorization != "" {
		out.Set("Authorization", hs.Authorization)
	}
}

// attempt is one Attempt. koding writes to it as the client's
// ResponseWriter: a failed handshake's answer is captured, so the caller
// can follow a redirect or retry a 401 instead of passing it on, and
// Hijack is the success path, where gorilla upgrades the client.
type attempt struct {
	r        *Relay
	rw       http.ResponseWriter // the client's, until hijacked
	hs       Handshake
	ctx      context.Context // the handshake's bound: the client's request and the timeout
	cancel   context.CancelFunc
	upgraded chan struct{} // closed once the client's connection is the session's
	header   http.Header
	status   int
	body     bytes.Buffer
	err      error         // why no answer came, when known
	upstream *upstreamConn // once dialed
	unbind   func() bool   // detaches the handshake's bound from upstream (bind)
	session  *Session
}

func (a *attempt) Header() http.Header { return a.header }

func (a *attempt) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *attempt) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if room := MaxRefusalBody - a.body.Len(); room > 0 {
		a.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

func (a *attempt) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if a.unbind != nil && !a.unbind() {
		a.err = a.ctx.Err() // the bound cut the handshake as it succeeded
		return nil, nil, errors.New("upstream handshake cut short")
	}
	conn, brw, err := http.NewResponseController(a.rw).Hijack()
	if err != nil {
		return nil, nil, err
	}
	a.cancel() // the handshake's timer: the dial is over
	header := a.upstream.responseHeader()
	a.session = newSession(conn, a.upstream, upstream101Headers(header))
	if a.hs.Upgraded != nil {
		a.hs.Upgraded(a.session, header)
	}
	// What the session no longer needs is let go, as the handler returns:
	// net/http's response (and through it the connection's buffers), the
	// handshake's fields, the upstream's answer as read.
	a.rw, a.hs.Header, a.upstream.kept = nil, nil, nil
	close(a.upgraded)
	return a.session.client, brw, nil
}

// outcome is what the attempt came to, once koding has returned.
func (a *attempt) outcome() Outcome {
	switch {
	case a.session != nil:
		return Outcome{Session: a.session}
	case a.err != nil:
		return Outcome{Err: a.err}
	case a.status == http.StatusSwitchingProtocols:
		// gorilla refused the upstream's 101: a broken upstream, not an
		// answer to relay.
		return Outcome{Err: ErrInvalidAnswer}
	case a.upstream == nil || !a.upstream.answered():
		// Connected, or not even that, but no whole answer came: koding
		// wrote its own 503. The clock decides, not ctx.Err(): gorilla's
		// own handshake deadline can fire before the context's timer has
		// run, and Attempt cancels ctx once koding returns.
		if d, ok := a.ctx.Deadline(); ok && !time.Now().Before(d) {
			return Outcome{Err: context.DeadlineExceeded}
		}
		return Outcome{Err: ErrNoAnswer}
	}
	dropHopHeaders(a.header)
	a.header.Set("Content-Length", strconv.Itoa(a.body.Len()))
	return Outcome{Status: a.status, Header: a.header, Body: a.body.Bytes()}
}
