package proxy

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Secrets the tests plant; no proxy-made answer or log line may hold them.
const (
	plantedToken      = "eyJ0ZXN0.fake-entra-token.c2lnbmF0dXJl"
	plantedResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/speech"
	plantedKey        = "inbound-key-5f2d9a"
	plantedKey2       = "inbound-key-second-77c1"
	plantedWrong      = "wrong-key-0bad"
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
			rawQuery: r.URL.RawQuery, header: r.Header.Clone(),
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

func (l *upstreamLog) last(t *testing.T) upstreamRequest {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return l.reqs[len(l.reqs)-1]
}

// newRecordingUpstream serves h on 127.0.0.1 and records what it receives.
func newRecordingUpstream(t *testing.T, h http.Handler) (*httptest.Server, *upstreamLog) {
	t.Helper()
	log := &upstreamLog{}
	srv := httptest.NewServer(log.wrap(h))
	t.Cleanup(srv.Close)
	return srv, log
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

// httpFixture is an upstream behind a Proxy served on 127.0.0.1, and a
// client that does not follow redirects, so a 3xx that leaks is seen.
type httpFixture struct {
	upstream *httptest.Server
	seen     *upstreamLog
	tokens   *fakeTokens
	proxy    *Proxy
	front    *httptest.Server
	client   *http.Client
}

// newHTTPFixture serves h as the upstream, with the contract's defaults
// (auto, Speech paths on) unless configure changes them.
func newHTTPFixture(t *testing.T, h http.Handler, configure func(*Options)) *httpFixture {
	t.Helper()
	up, seen := newRecordingUpstream(t, h)
	return newHTTPFixtureFor(t, up, seen, configure)
}

// newHTTPFixtureFor puts a Proxy in front of an upstream already running.
func newHTTPFixtureFor(t *testing.T, up *httptest.Server, seen *upstreamLog, configure func(*Options)) *httpFixture {
	t.Helper()
	f := &httpFixture{upstream: up, seen: seen, tokens: newFakeTokens(plantedToken)}
	opts := Options{
		Upstream:    parseURLForTest(t, up.URL),
		Tokens:      f.tokens,
		AuthFormat:  FormatAuto,
		SpeechPaths: true,
		// The tests must not depend on HTTPS_PROXY in the environment.
		Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
	}
	if configure != nil {
		configure(&opts)
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
	return f
}

// url is the proxy's address with pathAndQuery appended.
func (f *httpFixture) url(pathAndQuery string) string { return f.front.URL + pathAndQuery }

// do sends req and returns the response with its body read whole.
func (f *httpFixture) do(t *testing.T, req *http.Request) (*http.Response, string) {
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
func (f *httpFixture) get(t *testing.T, pathAndQuery string) (*http.Response, string) {
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

// wantNoPlantedSecret fails when s holds the token or an inbound key.
func wantNoPlantedSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{plantedToken, plantedKey, plantedKey2, plantedWrong} {
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
