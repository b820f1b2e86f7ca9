package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowAnswer is how long the slow upstream below takes to answer: four times
// the connect timeout the tests set, so a proxy that bounded the answer by
// the connect timeout cuts it however slow the machine (its timer fires at
// 250 ms or later; the answer comes at 1 s or later).
const (
	testConnectTimeout = 250 * time.Millisecond
	slowAnswer         = 4 * testConnectTimeout
)

// Answers that take longer than ENTRAPROXY_UPSTREAM_TIMEOUT are not cut:
// that setting bounds connect and TLS; the wait for the answer's headers has
// its own, longer bound (ENTRAPROXY_RESPONSE_TIMEOUT, 10 minutes by default,
// as the OpenAI SDKs wait). Non-streaming completions of reasoning models
// take minutes; cut at 30 s, the openai SDK sent them again twice, each one
// run and billed by Azure. Fast transcription of a long file and batch
// transcription calls are the same kind: a body sent, then a long wait.
func TestSlowAnswerNotCutAtUpstreamTimeout(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		time.Sleep(slowAnswer) // the upstream thinking: the behaviour under test
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"received":%d}`, n)
	}), func(o *Options) {
		o.UpstreamTimeout = testConnectTimeout
		o.ResponseTimeout = 10 * time.Minute
	})
	multipart := strings.Repeat("RIFF....WAVEfmt audio ", 4096)
	tests := []struct {
		name, method, path string
		body               io.Reader
		wantReceived       int
	}{
		{"chat completion (JSON body, known length)", http.MethodPost, "/openai/deployments/o3/chat/completions?api-version=2024-10-21",
			strings.NewReader(`{"messages":[{"role":"user","content":"think hard"}]}`), len(`{"messages":[{"role":"user","content":"think hard"}]}`)},
		{"fast transcription (multipart audio, chunked)", http.MethodPost, "/speechtotext/transcriptions:transcribe?api-version=2024-11-15",
			io.MultiReader(strings.NewReader(multipart)), len(multipart)},
		{"batch transcription list", http.MethodGet, "/speechtotext/transcriptions?api-version=2024-11-15", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.do(t, newHTTPRequest(t, tc.method, f.url(tc.path), tc.body))
			if want := fmt.Sprintf(`{"received":%d}`, tc.wantReceived); resp.StatusCode != http.StatusOK || body != want {
				t.Errorf("answer = %d %s, want 200 %s", resp.StatusCode, body, want)
			}
		})
	}
}

// ENTRAPROXY_RESPONSE_TIMEOUT still bounds an upstream that never answers:
// 504 upstream_timeout naming that setting, and the upstream request is
// cancelled.
func TestResponseTimeout(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
		cancelled <- struct{}{}
	}), func(o *Options) {
		o.UpstreamTimeout = time.Minute
		o.ResponseTimeout = 200 * time.Millisecond
	})
	resp, body := f.get(t, "/openai/v1/models")
	wantProxyError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
	if !strings.Contains(body, "ENTRAPROXY_RESPONSE_TIMEOUT") {
		t.Errorf("body %s does not name ENTRAPROXY_RESPONSE_TIMEOUT", body)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Error("the upstream request was not cancelled")
	}
}

// An upstream that cannot be reached still fails within
// ENTRAPROXY_UPSTREAM_TIMEOUT, not after the much longer response timeout:
// a connect that no SYN-ACK answers, and a TLS handshake that never gets an
// answer. The client waits at most a minute, which a proxy bounded by the
// 250 ms connect timeout always beats and one bounded by the 10-minute
// response timeout never does.
func TestUnreachableUpstreamFailsWithinConnectTimeout(t *testing.T) {
	tests := []struct {
		name     string
		upstream func(t *testing.T) *url.URL
	}{
		{"connect never answered", func(t *testing.T) *url.URL {
			return &url.URL{Scheme: "http", Host: unansweredAddr(t)}
		}},
		{"TLS handshake never answered", func(t *testing.T) *url.URL {
			return &url.URL{Scheme: "https", Host: silentListener(t)}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) {
				o.Upstream = tc.upstream(t)
				o.UpstreamTimeout = testConnectTimeout
				o.ResponseTimeout = 10 * time.Minute
				o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			})
			f.client.Timeout = time.Minute
			resp, body := f.get(t, "/openai/v1/models")
			wantProxyError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
			if !strings.Contains(body, "ENTRAPROXY_UPSTREAM_TIMEOUT") {
				t.Errorf("body %s does not name ENTRAPROXY_UPSTREAM_TIMEOUT", body)
			}
		})
	}
}

// unansweredAddr is a 127.0.0.1 address where a TCP connect hangs until the
// dialer gives up: a listener with a backlog of 0 that never accepts, its
// one queue slot taken. Linux then drops further SYNs (the accept queue is
// full), so nothing answers them, as with a firewalled host.
func unansweredAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.Dial("tcp", addr) // takes the one slot
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	// Proof that the next connect is not answered.
	if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel answers connects beyond a full accept queue; no unanswered address here")
	}
	return addr
}

// silentListener accepts TCP connections and never says anything: a TLS
// handshake with it never completes.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				<-done
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}
