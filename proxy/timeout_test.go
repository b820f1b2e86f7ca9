package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testConnectTimeout is the ENTRAPROXY_UPSTREAM_TIMEOUT these tests set.
const testConnectTimeout = 250 * time.Millisecond

// Answers that take longer than ENTRAPROXY_UPSTREAM_TIMEOUT are not cut:
// that setting bounds connect and TLS; the wait for the answer's headers has
// its own, longer bound (ENTRAPROXY_RESPONSE_TIMEOUT, 10 minutes by default,
// as the OpenAI SDKs wait). Non-streaming completions of reasoning models
// take minutes; cut at 30 s, the openai SDK sent them again twice, each one
// run and billed by Azure. Fast transcription of a long file and batch
// transcription calls are the same kind: a body sent, then a long wait.
//
// The slow upstream answers four times the connect timeout later, so a proxy
// that bounded the answer by the connect timeout cuts it however slow the
// machine (its timer fires at the timeout or later; the answer comes at four
// times it or later). The connect itself must beat the timeout, which a
// loaded machine may not do in 250 ms: a 504 is then tried again with a
// longer one (and a four times longer answer); a proxy that cuts answers at
// the connect timeout gets it at every one.
func TestSlowAnswerNotCutAtUpstreamTimeout(t *testing.T) {
	multipart := strings.Repeat("RIFF....WAVEfmt audio ", 4096)
	chat := `{"messages":[{"role":"user","content":"think hard"}]}`
	tests := []struct {
		name, method, path string
		body               string
		chunked            bool
	}{
		{"chat completion (JSON body, known length)", http.MethodPost, "/openai/deployments/o3/chat/completions?api-version=2024-10-21", chat, false},
		{"fast transcription (multipart audio, chunked)", http.MethodPost, "/speechtotext/transcriptions:transcribe?api-version=2024-11-15", multipart, true},
		{"batch transcription list", http.MethodGet, "/speechtotext/transcriptions?api-version=2024-11-15", "", false},
	}
	for _, connectTimeout := range []time.Duration{testConnectTimeout, time.Second, 4 * time.Second} {
		slowAnswer := 4 * connectTimeout
		f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			time.Sleep(slowAnswer) // the upstream thinking: the behaviour under test
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"received":%d}`, n)
		}), func(o *Options) {
			o.UpstreamTimeout = connectTimeout
			o.ResponseTimeout = 10 * time.Minute
		})
		type answer struct {
			status int
			body   string
		}
		answers := make([]answer, len(tests))
		var wg sync.WaitGroup
		for i, tc := range tests {
			wg.Go(func() {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
					if tc.chunked {
						body = io.MultiReader(body) // no known length
					}
				}
				req, err := http.NewRequest(tc.method, f.url(tc.path), body)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := f.client.Do(req)
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answers[i] = answer{resp.StatusCode, string(b)}
			})
		}
		wg.Wait()
		retry := false
		for i, tc := range tests {
			got := answers[i]
			if got.status == http.StatusGatewayTimeout && connectTimeout < 4*time.Second {
				retry = true
				continue
			}
			if want := fmt.Sprintf(`{"received":%d}`, len(tc.body)); got.status != http.StatusOK || got.body != want {
				t.Errorf("%s: answer = %d %s, want 200 %s", tc.name, got.status, got.body, want)
			}
		}
		if !retry || t.Failed() {
			return
		}
		t.Logf("connect timeout %v: a 504 (a busy machine's connect, or a cut answer); again with a longer one", connectTimeout)
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
	case <-time.After(wsWait):
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
