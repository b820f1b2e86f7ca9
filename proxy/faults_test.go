package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testport"
	"github.com/entraproxy/entraproxy/tokens"
)

// Faults: each named test breaks one thing the proxy depends on, and checks
// that the proxy stays up, answers the README's error, leaks no goroutine
// or file descriptor, and recovers by itself once the fault clears.

// leakSlack is the goroutines and files a fault test may end with above its
// baseline: runtime and library goroutines started lazily. A leak per faulty
// request would exceed it many times over.
const leakSlack = 3

// faultRequests is how many requests each test sends while its fault lasts.
const faultRequests = 5

// timeSensitive runs attempt, which needs a legitimate upstream answer to
// beat a short timeout (the response timeout), with that timeout longer each time attempt
// reports (with a non-nil error) that the machine was too slow for it. A real
// failure is reported by attempt through t; slowness never fails the test, and
// on a quiet machine it stays fast. Go's net/http tests do the same
// (runTimeSensitiveTest).
func timeSensitive(t *testing.T, attempt func(timeout time.Duration) (tooSlow error)) {
	t.Helper()
	for _, timeout := range []time.Duration{300 * time.Millisecond, time.Second, 4 * time.Second, 15 * time.Second, wsWait} {
		err := attempt(timeout)
		if err == nil || t.Failed() {
			return
		}
		t.Logf("timeout %v: %v; again with a longer one", timeout, err)
	}
	t.Fatalf("a legitimate upstream answer came after even a %v timeout", wsWait)
}

// identityEndpoint is an App Service style managed identity endpoint
// (IDENTITY_ENDPOINT) whose behaviour the test switches, on a held 127.0.0.1
// port, so it can go down (refusing connections, with nobody else given the
// port) and come back.
type identityEndpoint struct {
	port   *testport.Port
	addr   string
	secret string

	mu      sync.Mutex
	mode    string // ok, slow, garbage, 500
	srv     *http.Server
	served  chan struct{}
	issued  []string
	release chan struct{} // closed to let slow requests go
	calls   atomic.Int64
}

// startIdentityEndpoint serves the endpoint and points azidentity at it.
func startIdentityEndpoint(t *testing.T) *identityEndpoint {
	t.Helper()
	e := &identityEndpoint{secret: "identity-header-secret-" + strconv.FormatInt(time.Now().UnixNano(), 36), mode: "ok", release: make(chan struct{})}
	e.port = testport.Reserve(t)
	e.addr = e.port.Addr()
	e.serve(e.port.Listen(t))
	t.Cleanup(func() { e.setMode("ok"); e.down() })
	t.Setenv("IDENTITY_ENDPOINT", "http://"+e.addr+"/msi/token")
	t.Setenv("IDENTITY_HEADER", e.secret)
	t.Setenv("AZURE_CLIENT_ID", "")
	return e
}

func (e *identityEndpoint) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(e.handle), ReadHeaderTimeout: wsWait}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	e.mu.Lock()
	e.srv, e.served = srv, served
	e.mu.Unlock()
}

// down closes the port: connections are refused.
func (e *identityEndpoint) down() {
	e.mu.Lock()
	srv, served := e.srv, e.served
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-served
	}
}

// up opens the same port again.
func (e *identityEndpoint) up(t *testing.T) {
	t.Helper()
	e.serve(e.port.Listen(t))
}

// closeIdle drops the connections azidentity keeps to the endpoint.
func (e *identityEndpoint) closeIdle() {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	if srv != nil {
		srv.SetKeepAlivesEnabled(false)
		srv.SetKeepAlivesEnabled(true)
	}
}

func (e *identityEndpoint) setMode(mode string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mode == "slow" && mode != "slow" {
		close(e.release)
		e.release = make(chan struct{})
	}
	e.mode = mode
}

func (e *identityEndpoint) tokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.issued...)
}

func (e *identityEndpoint) handle(w http.ResponseWriter, r *http.Request) {
	e.calls.Add(1)
	if r.Header.Get("X-IDENTITY-HEADER") != e.secret {
		http.Error(w, `{"error":"bad identity header"}`, http.StatusUnauthorized)
		return
	}
	e.mu.Lock()
	mode, release := e.mode, e.release
	e.mu.Unlock()
	switch mode {
	case "slow":
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	case "garbage":
		io.WriteString(w, `{"access_token": "eyJ`) // cut JSON
		return
	case "500":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"code":"InternalError","message":"token service failed"}}`)
		return
	}
	// Under 5 minutes: MSAL's process-wide cache never serves it again, so
	// every fetch reaches this endpoint.
	tok := fmt.Sprintf("eyJ0eXAiOiJKV1QifQ.fault-%d.c2ln", time.Now().UnixNano())
	e.mu.Lock()
	e.issued = append(e.issued, tok)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok, "expires_on": strconv.FormatInt(time.Now().Add(4*time.Minute).Unix(), 10),
		"resource": r.URL.Query().Get("resource"), "token_type": "Bearer",
	})
}

// tokenFaultEnv is the real managed identity credential and token source
// in front of the proxy, with the endpoint in mode from the start: no token
// is held while the fault lasts.
type tokenFaultEnv struct {
	id   *identityEndpoint
	f    *fixture
	logs *logBuffer
}

func newTokenFaultEnv(t *testing.T, mode string) *tokenFaultEnv {
	t.Helper()
	id := startIdentityEndpoint(t)
	switch mode {
	case "down":
		id.down()
	default:
		id.setMode(mode)
	}
	cred, err := tokens.NewCredential("managed-identity", tokens.CredentialOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	src := tokens.NewSource(tokens.Options{
		Credential: cred,
		// A scope of its own: MSAL's managed identity cache is process-wide.
		Scope:  "api://entraproxy-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "/.default",
		Logger: logger,
		// A fetch is never cut for being slow: on a busy machine a healthy
		// endpoint's answer may take seconds, and the slow fault holds its
		// request until the fault clears. Requests wait at most 200ms: the
		// fault answers them, not the speed of the machine.
		FetchTimeout: wsWait,
		WaitTimeout:  200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.Tokens = src; o.Logger = logger })
	return &tokenFaultEnv{id: id, f: f, logs: logs}
}

func (e *tokenFaultEnv) get(t *testing.T) (int, string) {
	resp, body := e.f.get(t, "/openai/models")
	return resp.StatusCode, body
}

func (e *tokenFaultEnv) closers() []func() {
	return []func(){e.f.client.CloseIdleConnections, e.f.front.CloseClientConnections, e.f.upstream.CloseClientConnections, e.id.closeIdle}
}

// run drives the fault: requests answered 503 token_unavailable (no token
// can come while the fault lasts, so each waits its 200ms and gets the 503)
// and never forwarded, then clear, and recovery without help: the next
// request wakes the source, which fetches again by itself; once it logs the
// token, a request must pass.
func (e *tokenFaultEnv) run(t *testing.T, clear func()) {
	t.Helper()
	e.get(t) // the first answer starts lazily made connections
	base := leakcheck.Quiet(t, e.closers()...)
	for range faultRequests {
		resp, body := e.f.get(t, "/openai/models")
		wantProxyError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
	}
	if n := e.f.seen.count(); n != 0 {
		t.Errorf("upstream received %d requests without a token, want 0", n)
	}
	if strings.Contains(e.logs.String(), `"msg":"token acquired"`) {
		t.Fatalf("a token was acquired while the fault lasted:\n%s", e.logs.String())
	}
	clear()
	e.get(t) // wakes the source; this answer may still be the 503
	e.logs.waitFor(t, "a token acquired after the fault cleared", func() bool {
		return strings.Contains(e.logs.String(), `"msg":"token acquired"`)
	})
	if status, body := e.get(t); status != http.StatusOK {
		t.Fatalf("request after the token came back = %d %s, want 200", status, body)
	}
	if toks := e.id.tokens(); len(toks) == 0 || e.f.seen.last(t).header.Get("Authorization") != "Bearer "+toks[len(toks)-1] {
		t.Errorf("upstream Authorization is not the token the endpoint issued")
	}
	leakcheck.Check(t, "after the fault", base, leakSlack, e.closers()...)
	for _, tok := range e.id.tokens() {
		if strings.Contains(e.logs.String(), tok) {
			t.Errorf("the log holds an issued token")
		}
	}
}

func TestTokenEndpointDown(t *testing.T) {
	e := newTokenFaultEnv(t, "down")
	e.run(t, func() { e.id.up(t) })
}

func TestTokenEndpointSlow(t *testing.T) {
	e := newTokenFaultEnv(t, "slow")
	e.run(t, func() { e.id.setMode("ok") })
}

func TestTokenEndpointGarbage(t *testing.T) {
	e := newTokenFaultEnv(t, "garbage")
	e.run(t, func() { e.id.setMode("ok") })
}

func TestTokenEndpoint500s(t *testing.T) {
	e := newTokenFaultEnv(t, "500")
	e.run(t, func() { e.id.setMode("ok") })
}

func upstreamClosers(f *fixture) []func() {
	return []func(){f.client.CloseIdleConnections, f.front.CloseClientConnections, f.upstream.CloseClientConnections}
}

func TestUpstreamRefusesConnections(t *testing.T) {
	// Nothing listens on the held port: connections are refused, and no
	// other test or process can be given the port meanwhile.
	port := testport.Reserve(t)
	up := httptest.NewUnstartedServer(upstreamOK)
	up.Listener.Close() // its own port is not used
	seen := &upstreamLog{}
	up.Config.Handler = seen.wrap(upstreamOK)
	t.Cleanup(up.Close)
	f := newHTTPFixtureFor(t, up, seen, func(o *Options) { o.Upstream = &url.URL{Scheme: "http", Host: port.Addr()} })

	base := leakcheck.Quiet(t, upstreamClosers(f)...)
	for range faultRequests {
		resp, body := f.get(t, "/openai/models")
		wantProxyError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
	}
	// The upstream comes back on the same address: the next request passes,
	// nothing about the refusals is remembered.
	up.Listener = port.Listen(t)
	up.Start()
	if resp, body := f.get(t, "/openai/models"); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("request after the upstream came back = %d %q, want 200 ok", resp.StatusCode, body)
	}
	leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
}

// resetAfter writes a response head promising 1000 bytes, sends n of them,
// and resets the connection.
func resetAfter(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, strings.Repeat("x", n))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
		conn.Close()
	})
}

func TestUpstreamResetsMidResponse(t *testing.T) {
	f := newHTTPFixture(t, resetAfter(100), nil)
	logs := f.logs
	f.get(t, "/ok")
	base := leakcheck.Quiet(t, upstreamClosers(f)...)
	for range faultRequests {
		// The proxy cannot take back a response it has begun: it drops
		// the connection, so the client sees an error, never a short body
		// passed off as whole.
		resp, err := f.client.Do(newHTTPRequest(t, http.MethodGet, f.url("/reset"), nil))
		if err == nil {
			got, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil {
				t.Errorf("got %d and %d bytes without an error, want the cut visible", resp.StatusCode, len(got))
			}
		}
	}
	if status, body := func() (int, string) { r, b := f.get(t, "/ok"); return r.StatusCode, b }(); status != http.StatusOK || body != "ok" {
		t.Errorf("next request = %d %q, want 200 ok", status, body)
	}
	// Every request has its log line, the cut ones marked.
	logs.waitFor(t, "log lines", func() bool { return len(logs.lines(t, "request")) == faultRequests+2 })
	cut := 0
	for _, l := range logs.lines(t, "request") {
		if l["error"] == "response_aborted" {
			cut++
			if l["bytes_out"] != float64(100) {
				t.Errorf("cut request logged bytes_out %v, want 100", l["bytes_out"])
			}
		}
	}
	if cut != faultRequests {
		t.Errorf("%d log lines say response_aborted, want %d:\n%s", cut, faultRequests, logs.String())
	}
	if !strings.Contains(logs.String(), "read error during body copy") {
		t.Errorf("the log does not say what cut the response:\n%s", logs.String())
	}
	leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
}

// stallUntilGone is an upstream that, at /stall-head, never answers and, at
// /stall-body, sends part of a body and then nothing; either way until the
// proxy gives up on it, which it reports on released (or the test ends and
// closes it).
func stallUntilGone(released chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "ok")
			return
		case "/stall-body":
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "first part")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		select {
		case released <- r.URL.Path:
		default: // the test no longer counts (it ended, or gave up on a timeout)
		}
	})
}

// The stalled requests get 504 at the response timeout (never before it; how
// long after is the machine's business), their upstream requests are
// cancelled, and the proxy answers the next request.
func TestUpstreamStallsBeforeHeaders(t *testing.T) {
	timeSensitive(t, func(timeout time.Duration) error {
		released := make(chan string, faultRequests)
		f := newHTTPFixture(t, stallUntilGone(released), func(o *Options) { o.ResponseTimeout = timeout })
		f.get(t, "/ok")
		base := leakcheck.Quiet(t, upstreamClosers(f)...)
		for range faultRequests {
			start := time.Now()
			resp, body := f.get(t, "/stall-head")
			d := time.Since(start)
			wantProxyError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
			if d < timeout {
				t.Errorf("answered after %v, before the %v response timeout", d, timeout)
			}
			if got := wsRecv(t, "upstream request cancelled", released); got != "/stall-head" {
				t.Errorf("released %s", got)
			}
		}
		if resp, body := f.get(t, "/ok"); resp.StatusCode != http.StatusOK {
			if resp.StatusCode == http.StatusGatewayTimeout {
				return fmt.Errorf("the next request's answer came after the timeout")
			}
			t.Errorf("next request = %d %s, want 200", resp.StatusCode, body)
		}
		leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
		return nil
	})
}

// The client gets what was sent, and when it gives up the upstream request
// is cancelled: nothing waits on the stalled upstream forever.
func TestUpstreamStallsMidBody(t *testing.T) {
	timeSensitive(t, func(timeout time.Duration) error {
		released := make(chan string, faultRequests)
		f := newHTTPFixture(t, stallUntilGone(released), func(o *Options) { o.ResponseTimeout = timeout })
		logs := f.logs
		f.get(t, "/ok")
		base := leakcheck.Quiet(t, upstreamClosers(f)...)
		for range faultRequests {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url("/stall-body"), nil)
			resp, err := f.client.Do(req)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusGatewayTimeout {
				cancel()
				resp.Body.Close()
				return fmt.Errorf("the stream's head came after the timeout")
			}
			buf := make([]byte, 64)
			n, err := io.ReadAtLeast(resp.Body, buf, len("first part"))
			if err != nil || string(buf[:n]) != "first part" {
				t.Errorf("read %q, %v; want what the upstream sent", buf[:n], err)
			}
			// The response timeout covers only the response head: a stream
			// may pause for as long as it likes, while the client waits. A
			// sleep never ends early, so the timeout has passed when it
			// does.
			time.Sleep(timeout + timeout/3)
			select {
			case p := <-released:
				t.Errorf("upstream %s released while the client still waited", p)
			default:
			}
			cancel() // the client gives up
			resp.Body.Close()
			if got := wsRecv(t, "upstream request cancelled after the client left", released); got != "/stall-body" {
				t.Errorf("released %s", got)
			}
		}
		if resp, body := f.get(t, "/ok"); resp.StatusCode != http.StatusOK {
			if resp.StatusCode == http.StatusGatewayTimeout {
				return fmt.Errorf("the next request's answer came after the timeout")
			}
			t.Errorf("next request = %d %s, want 200", resp.StatusCode, body)
		}
		logs.waitFor(t, "log lines", func() bool { return len(logs.lines(t, "request")) == faultRequests+2 })
		leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
		return nil
	})
}

func TestClientDisconnectsMidUpload(t *testing.T) {
	const uploadPath = "/speech/recognition/conversation/cognitiveservices/v1"
	started := make(chan struct{}, faultRequests)
	released := make(chan error, faultRequests)
	got := make(chan int, faultRequests)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		first := make([]byte, 1)
		n, err := io.ReadFull(r.Body, first)
		started <- struct{}{} // audio is flowing
		if err == nil {
			var rest int64
			rest, err = io.Copy(io.Discard, r.Body)
			n += int(rest)
		}
		got <- n
		<-r.Context().Done()
		released <- err
	})
	f := newHTTPFixture(t, up, nil)
	logs := f.logs
	f.get(t, "/ok")
	base := leakcheck.Quiet(t, upstreamClosers(f)...)
	for range faultRequests {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.url(uploadPath), pr)
		req.Header.Set("Content-Type", "audio/wav")
		done := make(chan error, 1)
		go func() {
			resp, err := f.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		pw.Write(wsUSPAudio(64 << 10)) // some audio, then the client vanishes
		// Mid-upload: the upstream is reading the body when the client
		// goes.
		wsRecv(t, "upload reached the upstream", started)
		cancel()
		pw.CloseWithError(errors.New("client gone"))
		if err := wsRecv(t, "client request ends", done); err == nil {
			t.Error("client request succeeded, want it cancelled")
		}
		if err := wsRecv(t, "upstream request cancelled", released); err == nil {
			t.Error("upstream read the whole body without an error, want it cut")
		}
		if n := wsRecv(t, "upstream body", got); n > 64<<10 {
			t.Errorf("upstream got %d body bytes, want at most the %d sent", n, 64<<10)
		}
	}
	if resp, body := f.get(t, "/ok"); resp.StatusCode != http.StatusOK {
		t.Errorf("next request = %d %s, want 200", resp.StatusCode, body)
	}
	// A line is written when the proxy's handler returns, which can be after
	// the client and the upstream have both seen the end, and after the
	// next request's line: the uploads' lines are found by path.
	uploads := func() []map[string]any {
		var lines []map[string]any
		for _, l := range logs.lines(t, "request") {
			if l["path"] == uploadPath {
				lines = append(lines, l)
			}
		}
		return lines
	}
	logs.waitFor(t, "the uploads' log lines", func() bool { return len(uploads()) == faultRequests })
	for _, l := range uploads() {
		if l["status"] != float64(statusClientClosed) {
			t.Errorf("abandoned upload logged status %v, want %d", l["status"], statusClientClosed)
		}
	}
	leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
}

func TestClientDisconnectsMidDownload(t *testing.T) {
	released := make(chan int64, faultRequests)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "audio/x-wav")
		chunk := make([]byte, 32<<10)
		var sent int64
		for {
			n, err := w.Write(chunk)
			sent += int64(n)
			if err != nil {
				released <- sent
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				released <- sent
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	f := newHTTPFixture(t, up, nil)
	logs := f.logs
	f.get(t, "/ok")
	base := leakcheck.Quiet(t, upstreamClosers(f)...)
	for range faultRequests {
		resp, err := f.client.Do(newHTTPRequest(t, http.MethodPost, f.url("/cognitiveservices/v1"), strings.NewReader("<speak/>")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 256<<10); err != nil {
			t.Fatalf("download: %v", err)
		}
		resp.Body.Close() // the client leaves mid-download
		f.client.CloseIdleConnections()
		if sent := wsRecv(t, "upstream stream stopped", released); sent > 64<<20 {
			t.Errorf("upstream sent %d MiB before it was stopped", sent>>20)
		}
	}
	if resp, body := f.get(t, "/ok"); resp.StatusCode != http.StatusOK {
		t.Errorf("next request = %d %s, want 200", resp.StatusCode, body)
	}
	logs.waitFor(t, "log lines", func() bool { return len(logs.lines(t, "request")) == faultRequests+2 })
	leakcheck.Check(t, "after the fault", base, leakSlack, upstreamClosers(f)...)
}
