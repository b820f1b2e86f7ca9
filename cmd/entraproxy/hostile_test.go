package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entraproxy/entraproxy/internal/hosts"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/proxy"
)

// Hostile clients against the listener exactly as serve builds it
// (newProxyServer), in front of the real proxy and a recording upstream.

const hostileToken = "eyJhbGciOi.hostile-test-token.c2lnbmF0dXJl"

// staticTokens is a TokenSource that always has hostileToken.
type staticTokens struct{}

func (staticTokens) Token(context.Context) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: hostileToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (staticTokens) Renew(context.Context, string) (azcore.AccessToken, error) {
	return staticTokens{}.Token(context.Background())
}

// seenRequest is what the upstream received.
type seenRequest struct {
	method, host, requestURI, rawQuery string
	header                             http.Header
	body                               string
	contentLength                      int64
}

// hostileEnv is a proxy served by newProxyServer in front of a recording
// upstream.
type hostileEnv struct {
	addr     string
	srv      *http.Server
	upstream *httptest.Server

	mu   sync.Mutex
	seen []seenRequest
}

// startHostile serves the proxy with the production listener settings;
// edit may shorten its timeouts (and only those).
func startHostile(t *testing.T, inboundKeys []string, edit func(*http.Server)) *hostileEnv {
	t.Helper()
	env := &hostileEnv{}
	env.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env.mu.Lock()
		env.seen = append(env.seen, seenRequest{method: r.Method, host: r.Host, requestURI: r.RequestURI, rawQuery: r.URL.RawQuery,
			header: r.Header.Clone(), body: string(body), contentLength: r.ContentLength})
		env.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(env.upstream.Close)
	up, _ := url.Parse(env.upstream.URL)
	p, err := proxy.New(proxy.Options{
		Upstream:        up,
		Tokens:          staticTokens{},
		AuthFormat:      proxy.FormatBearer,
		SpeechPaths:     true,
		InboundKeys:     inboundKeys,
		AllowedHosts:    hosts.ForListener("127.0.0.1:0", nil),
		UpstreamTimeout: leakcheck.HangGuard,
		Proxy:           func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	env.srv = newProxyServer(p, log.New(io.Discard, "", 0))
	if edit != nil {
		edit(env.srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.addr = ln.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); env.srv.Serve(ln) }()
	t.Cleanup(func() { env.srv.Close(); <-served })
	return env
}

func (e *hostileEnv) requests() []seenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seenRequest(nil), e.seen...)
}

// raw writes text on a new connection and reads every response until the
// server closes it. Every text the tests send ends the connection (a refusal,
// or Connection: close), so no pause is taken for "no more responses"; the
// deadline is a hang guard.
func (e *hostileEnv) raw(t *testing.T, text string) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(leakcheck.HangGuard))
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatalf("write: %v", err)
	}
	var resps []*http.Response
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection still open %v after the request, %d responses read", leakcheck.HangGuard, len(resps))
			}
			return resps
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resps = append(resps, resp)
		if resp.Close {
			return resps
		}
	}
}

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The two ways forward are named in the message, and nothing listens.
func TestNonLoopbackListenRefusedExitTwo(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:8080", ":8080", "192.0.2.10:8080", "[::]:8080"} {
		t.Run(listen, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), nil, environ(
				"ENTRAPROXY_UPSTREAM", "https://name.cognitiveservices.azure.com",
				"ENTRAPROXY_LISTEN", listen,
				"ENTRAPROXY_ALLOW_UNAUTHENTICATED", "false",
			), nil, io.Discard, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			for _, want := range []string{`ENTRAPROXY_LISTEN "` + listen + `"`, "not a loopback address",
				"set ENTRAPROXY_INBOUND_KEYS", "ENTRAPROXY_ALLOW_UNAUTHENTICATED=true"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
				}
			}
		})
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	env := startHostile(t, nil, nil)
	request := func(headers string) string {
		return "GET /openai/models HTTP/1.1\r\nHost: localhost\r\n" + headers + "Connection: close\r\n\r\n"
	}
	t.Run("one 70 KiB header: 431", func(t *testing.T) {
		resps := env.raw(t, request("X-Big: "+strings.Repeat("a", 70<<10)+"\r\n"))
		if len(resps) != 1 || resps[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("responses = %v, want one 431", statuses(resps))
		}
	})
	t.Run("2,000 headers of 40 bytes: 431", func(t *testing.T) {
		var b strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("b", 32))
		}
		resps := env.raw(t, request(b.String()))
		if len(resps) != 1 || resps[0].StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("responses = %v, want one 431", statuses(resps))
		}
	})
	if n := len(env.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want 0", n)
	}
	t.Run("a 60 KiB header passes whole", func(t *testing.T) {
		big := strings.Repeat("c", 60<<10)
		resps := env.raw(t, request("X-Big: "+big+"\r\n"))
		if len(resps) != 1 || resps[0].StatusCode != http.StatusOK {
			t.Fatalf("responses = %v, want one 200", statuses(resps))
		}
		if got := env.requests(); len(got) != 1 || got[0].header.Get("X-Big") != big {
			t.Errorf("upstream did not get the 60 KiB header intact")
		}
	})
}

func statuses(resps []*http.Response) []int {
	var s []int
	for _, r := range resps {
		s = append(s, r.StatusCode)
	}
	return s
}

// waitClosed reads from conn until the server closes it, and returns how
// long that took from start. leakcheck.HangGuard only turns a connection that is never
// closed into a failure.
func waitClosed(t *testing.T, conn net.Conn, start time.Time) time.Duration {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open %v after start", time.Since(start))
		}
		return time.Since(start)
	}
}

// Slowloris: headers trickled one line at a time are cut at
// ReadHeaderTimeout, however steadily they come. A deadline that each line
// pushed back would keep the connection open for as long as the trickle
// lasts, which here is until the connection ends: that the server ends it
// is the verdict. When is the machine's business, except that it cannot be
// before the timeout (start is taken before the server can start its
// clock).
func TestSlowHeadersCutAtReadHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := startHostile(t, nil, func(s *http.Server) { s.ReadHeaderTimeout = timeout })
	start := time.Now()
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /openai/models HTTP/1.1\r\nHost: localhost\r\n")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i); err != nil {
				return
			}
		}
	})
	took := waitClosed(t, conn, start)
	close(stop)
	wg.Wait()
	if took < timeout {
		t.Errorf("closed after %v, before ReadHeaderTimeout %v", took, timeout)
	}
	if n := len(env.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want 0", n)
	}
}

// A keep-alive connection left idle is closed by the server (at IdleTimeout:
// it cannot be before, counted from before the request was sent, since the
// server starts its clock after answering; when after is the machine's
// business).
func TestIdleKeepAliveClosedAtIdleTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := startHostile(t, nil, func(s *http.Server) { s.IdleTimeout = timeout })
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "GET /openai/models HTTP/1.1\r\nHost: localhost\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || bodyOf(resp) != "ok" {
		t.Fatalf("first request: %v, %v", resp, err)
	}
	if resp.Close {
		t.Fatalf("first response closes the connection; want it kept alive")
	}
	took := waitClosed(t, conn, start)
	if took < timeout {
		t.Errorf("idle connection closed after %v, before IdleTimeout %v", took, timeout)
	}
}

// Request smuggling: framing the proxy and the upstream could read
// differently never reaches the upstream. Go's server refuses conflicting
// Content-Lengths (400) and transfer codings other than one "chunked" (501,
// as RFC 9112 section 6.1 says); with both Transfer-Encoding: chunked and a
// Content-Length it follows the chunked framing and drops the length (RFC
// 9112 section 6.3), and the proxy sends the upstream its own framing. So
// the upstream sees exactly the requests the proxy parsed, each checked.
func TestRequestSmuggling(t *testing.T) {
	const head = "POST /openai/deployments/gpt/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
	refused := []struct {
		name, text string
		status     int
	}{
		{"two different Content-Lengths", head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"Content-Length list", head + "Content-Length: 5, 6\r\n\r\nhello!", 400},
		{"negative Content-Length", head + "Content-Length: -1\r\n\r\n", 400},
		{"Content-Length with a sign", head + "Content-Length: +5\r\n\r\nhello", 400},
		{"space before the colon", head + "Content-Length : 5\r\n\r\nhello", 400},
		{"Transfer-Encoding twice", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"chunked with junk", head + "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello", 501},
		{"Transfer-Encoding and Content-Length disagree, chunked unknown", head + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", 501},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			env := startHostile(t, nil, nil)
			resps := env.raw(t, tc.text)
			if len(resps) != 1 || resps[0].StatusCode != tc.status {
				t.Errorf("responses = %v, want one %d", statuses(resps), tc.status)
			}
			if n := len(env.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}

	t.Run("TE.CL: a request hidden in a chunk stays body", func(t *testing.T) {
		env := startHostile(t, nil, nil)
		hidden := "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
		text := head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
		resps := env.raw(t, text)
		if len(resps) != 1 || resps[0].StatusCode != http.StatusOK {
			t.Fatalf("responses = %v, want one 200", statuses(resps))
		}
		got := env.requests()
		if len(got) != 1 || got[0].body != hidden || got[0].requestURI == "/smuggled" {
			t.Fatalf("upstream got %+v, want one POST whose body is the hidden text", got)
		}
	})

	t.Run("CL.TE: bytes after the chunked end are the client's own next request, checked on their own", func(t *testing.T) {
		const key = "gateway-key-1f0c"
		env := startHostile(t, []string{key}, nil)
		hidden := "GET /smuggled HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
		body := "0\r\n\r\n" + hidden
		text := head + "Api-Key: " + key + "\r\n" + fmt.Sprintf("Content-Length: %d\r\n", len(body)) +
			"Transfer-Encoding: chunked\r\n\r\n" + body
		resps := env.raw(t, text)
		if len(resps) != 2 || resps[0].StatusCode != http.StatusOK || resps[1].StatusCode != http.StatusUnauthorized {
			t.Fatalf("responses = %v, want 200 for the POST, then 401 for the key-less GET", statuses(resps))
		}
		got := env.requests()
		if len(got) != 1 || got[0].method != http.MethodPost || got[0].body != "" {
			t.Fatalf("upstream got %+v, want only the POST with an empty body", got)
		}
		if auth := got[0].header.Values("Authorization"); len(auth) != 1 || auth[0] != "Bearer "+hostileToken {
			t.Errorf("upstream Authorization = %q, want only the proxy's", auth)
		}
		if got[0].header.Get("Api-Key") != "" {
			t.Error("the inbound key reached the upstream")
		}
	})
}

// CR, LF and NUL in a header value or name never make a header the client
// did not send: 400, and the upstream sees nothing.
func TestHeaderInjectionRefused(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"NUL in a value", "X-A: a\x00b\r\n"},
		{"bare CR in a value", "X-A: a\rX-Injected: yes\r\n"},
		{"space in a name", "X A: b\r\n"},
		{"CR in a name", "X-A\r: b\r\n"},
		{"control character in a value", "X-A: a\x7fb\x01\r\n"},
		{"NUL in the request target", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startHostile(t, nil, nil)
			text := "GET /openai/models HTTP/1.1\r\nHost: localhost\r\n" + tc.line + "\r\n"
			if tc.line == "" {
				text = "GET /openai/mo\x00dels HTTP/1.1\r\nHost: localhost\r\n\r\n"
			}
			resps := env.raw(t, text)
			if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
				t.Errorf("responses = %v, want one 400", statuses(resps))
			}
			if n := len(env.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

// CR, LF and NUL encoded in the query (and path) pass on still encoded: they
// never become a header.
func TestEncodedControlCharactersStayEncoded(t *testing.T) {
	env := startHostile(t, nil, nil)
	target := "/openai/deployments/gpt/chat/completions%0d%0aX-Path-Injected:%20yes?api-version=2024-10-21&text=a%0d%0aX-Injected:%20yes%00&nl=%0a&cr=%0D"
	resps := env.raw(t, "GET "+target+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusOK {
		t.Fatalf("responses = %v, want one 200", statuses(resps))
	}
	got := env.requests()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(got))
	}
	if got[0].requestURI != target {
		t.Errorf("upstream request URI = %q, want %q", got[0].requestURI, target)
	}
	for _, h := range []string{"X-Injected", "X-Path-Injected"} {
		if v := got[0].header.Get(h); v != "" {
			t.Errorf("upstream got header %s: %q, want none", h, v)
		}
	}
}

// Encoded path tricks reach the one upstream with the path bytes the client
// sent; the Speech prefix is added only for the exact regional paths, matched
// on the escaped path, so no encoding or dot segment makes a mapping apply
// (or not) in a way that differs from what the upstream will read.
func TestEncodedPathTricks(t *testing.T) {
	env := startHostile(t, nil, nil)
	upHost := strings.TrimPrefix(env.upstream.URL, "http://")
	for _, tc := range []struct{ in, want string }{
		{"/cognitiveservices/v1", "/tts/cognitiveservices/v1"},
		{"/cognitiveservices%2Fv1", "/cognitiveservices%2Fv1"},
		{"/cognitiveservices%2fv1", "/cognitiveservices%2fv1"},
		{"/cognitiveservices%252Fv1", "/cognitiveservices%252Fv1"},
		{"/cognitiveservices/%761", "/cognitiveservices/%761"},
		{"/COGNITIVESERVICES/V1", "/COGNITIVESERVICES/V1"},
		{"/cognitiveservices/v1/", "/cognitiveservices/v1/"},
		{"/cognitiveservices/v1;x=1", "/cognitiveservices/v1;x=1"},
		{"/cognitiveservices/v1/../../openai/models", "/cognitiveservices/v1/../../openai/models"},
		{"/tts/../cognitiveservices/v1", "/tts/../cognitiveservices/v1"},
		{"/speech/recognition/../../openai/models", "/stt/speech/recognition/../../openai/models"},
		{"/speech/recognition/%2e%2e/%2e%2e/openai", "/stt/speech/recognition/%2e%2e/%2e%2e/openai"},
		{"/speech/recognition%2F..%2F..%2Fopenai", "/speech/recognition%2F..%2F..%2Fopenai"},
		{"/speech/recognition", "/speech/recognition"},
		{"/cognitiveservices/v1?a=%2F..%2F&b=../x", "/tts/cognitiveservices/v1?a=%2F..%2F&b=../x"},
		{"//evil.example/cognitiveservices/v1", "//evil.example/cognitiveservices/v1"},
		{"/%2F%2Fevil.example/x", "/%2F%2Fevil.example/x"},
		{"/%252F%252Fevil.example/x", "/%252F%252Fevil.example/x"},
		{"/@evil.example/x", "/@evil.example/x"},
		{"/\\evil.example/x", "/%5Cevil.example/x"},
		{"/x#fragment", "/x%23fragment"},
		{"/cognitiveservices/websocket/v1", "/tts/cognitiveservices/websocket/v1"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			before := len(env.requests())
			resps := env.raw(t, "GET "+tc.in+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
			if len(resps) != 1 || resps[0].StatusCode != http.StatusOK {
				t.Fatalf("responses = %v, want one 200", statuses(resps))
			}
			got := env.requests()
			if len(got) != before+1 {
				t.Fatalf("upstream received %d requests, want 1", len(got)-before)
			}
			if r := got[len(got)-1]; r.requestURI != tc.want || r.host != upHost {
				t.Errorf("upstream got Host %q, %q; want %q, %q", r.host, r.requestURI, upHost, tc.want)
			}
		})
	}
	for _, target := range []string{"http://evil.example/x", "evil.example:443", "*", "@evil.example/x", "x/y"} {
		t.Run("refused "+target, func(t *testing.T) {
			before := len(env.requests())
			resps := env.raw(t, "GET "+target+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
			if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
				t.Errorf("responses = %v, want one 400", statuses(resps))
			}
			if n := len(env.requests()) - before; n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

// Thousands of connections that send nothing, half a header, or go idle
// after one request: the proxy keeps answering others, drops each at its
// timeout (never before it; how long after is the machine's business, and a
// connection never dropped fails at the hang guard), and gives every
// goroutine and file back.
func TestThousandsOfIdleConnections(t *testing.T) {
	const (
		timeout   = time.Second
		silent    = 1000
		half      = 900
		keepAlive = 100
	)
	env := startHostile(t, nil, func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = timeout, timeout })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: leakcheck.HangGuard}
	get := func() error {
		resp, err := client.Get("http://" + env.addr + "/openai/models")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "ok" {
			return fmt.Errorf("status %d, body %q", resp.StatusCode, b)
		}
		return nil
	}
	if err := get(); err != nil { // warm: the upstream connection pool exists
		t.Fatal(err)
	}
	base := leakcheck.Now(t)

	start := time.Now()
	conns := make([]net.Conn, 0, silent+half+keepAlive)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range silent + half + keepAlive {
		c, err := net.Dial("tcp", env.addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		switch {
		case i < silent:
		case i < silent+half:
			io.WriteString(c, "GET /openai/models HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
		default:
			io.WriteString(c, "GET /openai/models HTTP/1.1\r\nHost: localhost\r\n\r\n")
		}
	}
	for _, c := range conns[silent+half:] {
		c.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("keep-alive request: %v, %v", resp, err)
		}
	}

	// Meanwhile others are served (how fast is for the benchmarks).
	for i := range 20 {
		if err := get(); err != nil {
			t.Fatalf("request %d among %d idle connections: %v", i, len(conns), err)
		}
	}

	// Each is dropped, none before its timeout: start was taken before the
	// first was opened, so before the server started any connection's clock.
	for i, c := range conns {
		if d := waitClosed(t, c, start); i == 0 && d < timeout {
			t.Errorf("a silent connection was closed after %v, before ReadHeaderTimeout %v", d, timeout)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if n := len(env.requests()); n != 1+keepAlive+20 {
		t.Errorf("upstream received %d requests, want %d", n, 1+keepAlive+20)
	}
	// The upstream hangs up its side, so the proxy's pool lets go of the
	// connections the keep-alive requests added.
	env.upstream.CloseClientConnections()
	leakcheck.Check(t, fmt.Sprintf("after %d idle connections", silent+half+keepAlive), base, 2)
}

// The Host check on a loopback listener reads the port as a number from 0
// to 65535: a loopback name with a port that is no port (out of range, not
// digits, empty, or kilobytes of leading zeros, which once passed and then
// broke the rewriting of URLs in JSON answers) is refused with 403
// host_not_allowed, and the upstream sees nothing. A valid port written
// with leading zeros is still that port.
func TestHostPortMustBeANumber(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		want       int
	}{
		{"highest port", "localhost:65535", http.StatusOK},
		{"leading zeros", "localhost:08080", http.StatusOK},
		{"out of range", "localhost:65536", http.StatusForbidden},
		{"not digits", "127.0.0.1:http", http.StatusForbidden},
		{"empty", "[::1]:", http.StatusForbidden},
		{"kilobytes of zeros", "localhost:" + strings.Repeat("0", 5000) + "1", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startHostile(t, nil, nil)
			resps := env.raw(t, "GET /openai/models HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
			if len(resps) != 1 || resps[0].StatusCode != tc.want {
				t.Fatalf("responses = %v, want one %d", statuses(resps), tc.want)
			}
			if tc.want == http.StatusOK {
				return
			}
			if body := bodyOf(resps[0]); !strings.Contains(body, `"code":"host_not_allowed"`) {
				t.Errorf("body = %.200s, want host_not_allowed", body)
			}
			if n := len(env.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

// An HTTP/1.0 request without a Host header (curl --http1.0 -H 'Host:')
// is legal: RFC 9112 section 3.2 requires Host of HTTP/1.1 clients only. A
// loopback listener serves it as addressed to itself: DNS rebinding cannot
// produce one, since browsers always send Host. An HTTP/1.1 request without
// Host gets 400 from net/http, as the RFC asks. Neither reaches the upstream
// with anything but the upstream's own Host.
func TestHTTP10WithoutHostOnLoopback(t *testing.T) {
	env := startHostile(t, nil, nil)
	resps := env.raw(t, "GET /openai/models HTTP/1.0\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusOK {
		t.Fatalf("responses = %v, want one 200", statuses(resps))
	}
	seen := env.requests()
	if len(seen) != 1 || seen[0].host != strings.TrimPrefix(env.upstream.URL, "http://") {
		t.Errorf("upstream received %v, want one request with its own Host", seen)
	}
	resps = env.raw(t, "GET /openai/models HTTP/1.1\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
		t.Errorf("HTTP/1.1 without Host: responses = %v, want one 400", statuses(resps))
	}
	resps = env.raw(t, "GET /openai/models HTTP/1.0\r\nHost: evil.example\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != http.StatusForbidden {
		t.Errorf("HTTP/1.0 with a foreign Host: responses = %v, want one 403", statuses(resps))
	}
	if n := len(env.requests()); n != 1 {
		t.Errorf("upstream received %d requests, want 1", n)
	}
}
