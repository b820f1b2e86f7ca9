package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// Secrets the tests plant; no proxy-made answer or log line may hold them.
const (
	plantedToken      = "eyJ0ZXN0.fake-entra-token.c2lnbmF0dXJl"
	plantedResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/speech"
	plantedKey        = "inbound-key-5f2d9a"
	plantedKey2       = "inbound-key-second-77c1"
	plantedWrong      = "wrong-key-0bad"
	// renewedToken is what fakeTokens hands out after its first Renew.
	renewedToken = plantedToken + ".renewed1"
)

// fakeTokens is a TokenSource that counts its calls. Token hands out the
// current token (or err); Renew replaces it with a different one, or keeps
// it with renewSame, as tokens.Source does within 10 s of its last renewal.
type fakeTokens struct {
	mu        sync.Mutex
	base      string
	token     string
	err       error // for Token and Renew
	renewErr  error // for Renew only
	renewSame bool
	tokens    int // Token calls
	renews    int // Renew calls
}

func newFakeTokens(token string) *fakeTokens {
	return &fakeTokens{base: token, token: token}
}

func (f *fakeTokens) Token(context.Context) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens++
	if f.err != nil {
		return azcore.AccessToken{}, f.err
	}
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (f *fakeTokens) Renew(_ context.Context, stale string) (azcore.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renews++
	if err := cmp.Or(f.err, f.renewErr); err != nil {
		return azcore.AccessToken{}, err
	}
	if !f.renewSame {
		f.token = fmt.Sprintf("%s.renewed%d", f.base, f.renews)
	}
	return azcore.AccessToken{Token: f.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (f *fakeTokens) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeTokens) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}

func (f *fakeTokens) tokenCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens
}

func (f *fakeTokens) renewCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renews
}

// upstreamRequest is what an upstream received.
type upstreamRequest struct {
	method     string
	host       string
	requestURI string
	path       string
	rawQuery   string
	header     http.Header
}

// upstreamLog records every request an upstream handler receives, before
// the handler it wraps runs. It does not read bodies, so streaming tests can.
type upstreamLog struct {
	mu   sync.Mutex
	reqs []upstreamRequest
}

func (l *upstreamLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, upstreamRequest{
			method: r.Method, host: r.Host, requestURI: r.RequestURI,
			path: r.URL.Path, rawQuery: r.URL.RawQuery, header: r.Header.Clone(),
		})
		l.mu.Unlock()
		if next != nil {
			next.ServeHTTP(w, r)
		}
	})
}

func (l *upstreamLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

func (l *upstreamLog) all() []upstreamRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

func (l *upstreamLog) last(t *testing.T) upstreamRequest {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return l.reqs[len(l.reqs)-1]
}

// testUpstream is a fake Azure endpoint on 127.0.0.1. It records every
// request it reads (seen) and counts TCP connections, so "nothing was
// dialed" can be checked.
type testUpstream struct {
	*httptest.Server
	host  string // its address, as a Host header names it
	seen  *upstreamLog
	conns atomic.Int64
}

func newTestUpstream(t *testing.T, h http.Handler) *testUpstream {
	return startTestUpstream(t, h, false)
}

func startTestUpstream(t *testing.T, h http.Handler, useTLS bool) *testUpstream {
	t.Helper()
	u := &testUpstream{seen: &upstreamLog{}}
	u.Server = httptest.NewUnstartedServer(u.seen.wrap(h))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	if useTLS {
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	u.host = u.Listener.Addr().String()
	return u
}

// newRecordingUpstream serves h on 127.0.0.1 and records what it receives.
func newRecordingUpstream(t *testing.T, h http.Handler) (*httptest.Server, *upstreamLog) {
	u := newTestUpstream(t, h)
	return u.Server, u.seen
}

// upstreamGate holds upstream handlers until the test opens it. Register
// t.Cleanup(g.open) after the servers exist, so a failing test still lets
// them shut down.
type upstreamGate struct {
	ch   chan struct{}
	once sync.Once
}

func newUpstreamGate() *upstreamGate { return &upstreamGate{ch: make(chan struct{})} }

func (g *upstreamGate) open() { g.once.Do(func() { close(g.ch) }) }

// wait blocks until the gate opens or r is cancelled.
func (g *upstreamGate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

// logBuffer collects the proxy's JSON log lines and tells waiters about
// each one.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed (and replaced) by the next Write
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor returns once cond holds for the log, checked after each line is
// written: for "the proxy has logged it", an event the log itself announces.
func (l *logBuffer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	guard := time.NewTimer(wsWait)
	defer guard.Stop()
	for {
		l.mu.Lock()
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-written:
		case <-guard.C:
			t.Fatalf("%s: not in the log after %v:\n%s", what, wsWait, l.String())
		}
	}
}

// lines are the log's lines whose msg is one of msgs ("request",
// "websocket" for the access log), each as its JSON fields.
func (l *logBuffer) lines(t *testing.T, msgs ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for raw := range strings.Lines(l.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", raw, err)
		}
		if msg, _ := m["msg"].(string); slices.Contains(msgs, msg) {
			out = append(out, m)
		}
	}
	return out
}

// wsLogLine is a "websocket" log line.
type wsLogLine struct {
	Msg       string `json:"msg"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	FramesIn  int64  `json:"frames_in"`
	BytesIn   int64  `json:"bytes_in"`
	FramesOut int64  `json:"frames_out"`
	BytesOut  int64  `json:"bytes_out"`
	CloseCode int    `json:"close_code"`
	ClosedBy  string `json:"closed_by"`
}

func (l *logBuffer) sessionLines(t *testing.T) []wsLogLine {
	t.Helper()
	var lines []wsLogLine
	for raw := range strings.Lines(l.String()) {
		var line wsLogLine
		if err := json.Unmarshal([]byte(raw), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", raw, err)
		}
		if line.Msg == "websocket" {
			lines = append(lines, line)
		}
	}
	return lines
}

// fixture is a Proxy served on 127.0.0.1 in front of one upstream, with a
// fake token source and the proxy's JSON log (debug level) in logs, which
// at the end must hold none of the secrets the tests plant. HTTP tests talk
// through client, which does not follow redirects (a 3xx that leaks is
// seen); WebSocket tests through dial, open and rawUpgrade.
type fixture struct {
	upstream *testUpstream
	seen     *upstreamLog // upstream.seen
	tokens   *fakeTokens
	logs     *logBuffer
	proxy    *Proxy
	front    *httptest.Server
	client   *http.Client
	wsURL    string      // front as ws://
	acceptor *wsAcceptor // the upstream's handler, when newWSFixture made the upstream
}

// newHTTPFixture serves h as the upstream, with the README's defaults
// (auto, Speech paths on) unless configure changes them.
func newHTTPFixture(t *testing.T, h http.Handler, configure func(*Options)) *fixture {
	t.Helper()
	return newFixture(t, newTestUpstream(t, h), Options{AuthFormat: FormatAuto, SpeechPaths: true}, configure)
}

// newHTTPFixtureFor puts a Proxy with newHTTPFixture's defaults in front of
// an upstream server already running (TLS, or with timeouts of its own),
// whose requests seen records.
func newHTTPFixtureFor(t *testing.T, srv *httptest.Server, seen *upstreamLog, configure func(*Options)) *fixture {
	t.Helper()
	up := &testUpstream{Server: srv, host: srv.Listener.Addr().String(), seen: seen}
	return newFixture(t, up, Options{AuthFormat: FormatAuto, SpeechPaths: true}, configure)
}

// newWSFixture puts a Proxy in front of up, or in front of a wsAcceptor
// when up is nil, with the WebSocket tests' defaults: bearer, a resource
// id, Speech paths, a loopback Host check, and an upstream timeout of
// wsWait, which no handshake reaches unless a test means it to.
func newWSFixture(t *testing.T, up *testUpstream, edit func(*Options)) *fixture {
	t.Helper()
	var acceptor *wsAcceptor
	if up == nil {
		acceptor = newWSAcceptor(t)
		up = newTestUpstream(t, acceptor)
	}
	f := newFixture(t, up, Options{AuthFormat: FormatBearer, ResourceID: plantedResourceID, SpeechPaths: true,
		AllowedHosts: hosts.ForListener("127.0.0.1:0", nil), UpstreamTimeout: wsWait}, edit)
	f.acceptor = acceptor
	return f
}

func newFixture(t *testing.T, up *testUpstream, opts Options, edit func(*Options)) *fixture {
	t.Helper()
	f := &fixture{upstream: up, seen: up.seen, tokens: newFakeTokens(plantedToken), logs: &logBuffer{}}
	opts.Upstream = parseURLForTest(t, up.URL)
	opts.Tokens = f.tokens
	// The tests must not depend on HTTPS_PROXY in the environment.
	opts.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	opts.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if edit != nil {
		edit(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.proxy = p
	f.front = httptest.NewServer(p)
	t.Cleanup(f.front.Close)
	f.client = f.front.Client()
	f.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.wsURL = "ws" + strings.TrimPrefix(f.front.URL, "http")
	t.Cleanup(func() { wantNoPlantedSecret(t, "the proxy's log", f.logs.String()) })
	return f
}

// url is the proxy's address with pathAndQuery appended.
func (f *fixture) url(pathAndQuery string) string { return f.front.URL + pathAndQuery }

// do sends req and returns the response with its body read whole.
func (f *fixture) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, string(body)
}

// get sends a GET for pathAndQuery through the proxy.
func (f *fixture) get(t *testing.T, pathAndQuery string) (*http.Response, string) {
	t.Helper()
	return f.do(t, newHTTPRequest(t, http.MethodGet, f.url(pathAndQuery), nil))
}

func newHTTPRequest(t *testing.T, method, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatalf("NewRequest %s %s: %v", method, target, err)
	}
	return req
}

func parseURLForTest(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}

// wantProxyError checks a proxy-made answer: status, JSON in the Azure
// envelope with code, a message, and no secret the tests planted.
func wantProxyError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want %q", got, "application/json")
	}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if env.Error.Code != code {
		t.Errorf("error code = %q, want %q", env.Error.Code, code)
	}
	if env.Error.Message == "" {
		t.Errorf("error message is empty in %s", body)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Errorf("Location = %q, want none", loc)
	}
	wantNoPlantedSecret(t, "error body", body)
}

// wantNoPlantedSecret fails when s holds a token (renewed ones start with
// plantedToken), an inbound key, or the dummy key clients send.
func wantNoPlantedSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{plantedToken, plantedKey, plantedKey2, plantedWrong, "dummy"} {
		if strings.Contains(s, secret) {
			t.Errorf("%s holds secret %q: %s", what, secret, s)
		}
	}
}

// rawHTTPRequest writes text to addr over a plain TCP connection and reads one
// response, for requests http.Client will not send (absolute-form, CONNECT).
func rawHTTPRequest(t *testing.T, addr, text string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	// A deadline, not a sleep: a proxy that hangs fails instead of blocking.
	conn.SetDeadline(time.Now().Add(wsWait))
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, string(body)
}

// upstreamOK answers 200 "ok".
var upstreamOK = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
})
