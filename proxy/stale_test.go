package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A front end closes connections that stay idle (Azure's after minutes,
// the test upstream here on demand). A request that then meets such a
// pooled connection is sent on another one when nothing of it was written
// and its body can be sent again, whatever its method: the upstream gets it
// once, whole. (Measured under the race itself, 300 POSTs about 100 ms
// apart to an upstream that closes idle connections after 100 ms:
// TestStaleConnectionsMeasured.)
func TestRequestsOnClosedIdleConnection(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp to see that the upstream's FIN arrived")
	}
	type seen struct{ method, body string }
	var (
		mu   sync.Mutex
		got  []seen
		port string // the proxy's end of the last connection used
	)
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, string(b)})
		_, port, _ = net.SplitHostPort(r.RemoteAddr)
		mu.Unlock()
		io.WriteString(w, "ok")
	}), nil)
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "GET"} {
		t.Run(method, func(t *testing.T) {
			// A first request leaves a pooled connection behind.
			if resp, body := f.get(t, "/warm-up"); resp.StatusCode != http.StatusOK {
				t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
			}
			mu.Lock()
			pooled := port
			got = nil
			mu.Unlock()
			// The upstream closes it while idle, and its FIN reaches the
			// proxy's socket (CLOSE_WAIT), whether or not http.Transport
			// has noticed yet.
			f.upstream.CloseClientConnections()
			wsEventually(t, "the proxy's pooled connection to see the upstream's FIN", func() bool {
				st, ok := tcpState(t, pooled)
				return !ok || st != tcpStateEstablished
			})
			body := `{"messages":[{"role":"user","content":"once"}]}`
			resp, answer := f.do(t, newHTTPRequest(t, method, f.url("/openai/v1/chat/completions"), strings.NewReader(body)))
			if resp.StatusCode != http.StatusOK || answer != "ok" {
				t.Errorf("answer = %d %q, want 200 ok", resp.StatusCode, answer)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != (seen{method, body}) {
				t.Errorf("upstream got %q, want the %s with its body once", got, method)
			}
		})
	}
}

// A request of which anything was written is never sent again by the
// proxy, even when the upstream then closes without an answer: it may have
// acted on it. (http.Transport itself resends idempotent requests, GET,
// HEAD, OPTIONS, in that case, as RFC 9110 section 9.2.2 allows; the
// proxy's requests here are not idempotent.)
func TestWrittenRequestNotResent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(req.Body)
					mu.Lock()
					got = append(got, req.Method+" "+req.URL.Path+" "+string(b))
					mu.Unlock()
					if req.URL.Path != "/warm-up" {
						return // read whole, never answered
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.Upstream = parseURLForTest(t, "http://"+ln.Addr().String()) })
	for _, method := range []string{"POST", "PATCH"} {
		if resp, body := f.get(t, "/warm-up"); resp.StatusCode != http.StatusOK {
			t.Fatalf("warm-up: %d %s", resp.StatusCode, body)
		}
		resp, body := f.do(t, newHTTPRequest(t, method, f.url("/openai/v1/chat/completions"), strings.NewReader(`{"n":1}`)))
		wantProxyError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET /warm-up ", `POST /openai/v1/chat/completions {"n":1}`, "GET /warm-up ", `PATCH /openai/v1/chat/completions {"n":1}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("upstream got:\n%s\nwant each request once:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A body that cannot be sent again (streamed: chunked, or over 1 MiB) is
// never resent; a kept one, or none, is.
func TestResendOnlyReplayableBodies(t *testing.T) {
	streamed := newHTTPRequest(t, http.MethodPost, "http://upstream/x", io.MultiReader(strings.NewReader("audio")))
	if _, ok := resend(streamed); ok {
		t.Error("a streamed body would be resent")
	}
	bodiless := newHTTPRequest(t, http.MethodDelete, "http://upstream/x", nil)
	if _, ok := resend(bodiless); !ok {
		t.Error("a request without a body would not be resent")
	}
	kept := newHTTPRequest(t, http.MethodPost, "http://upstream/x", strings.NewReader("ssml"))
	kept.Body = io.NopCloser(strings.NewReader("ssml"))
	makeReplayable(kept)
	io.ReadAll(kept.Body)
	next, ok := resend(kept)
	if !ok {
		t.Fatal("a kept body would not be resent")
	}
	if b, _ := io.ReadAll(next.Body); string(b) != "ssml" {
		t.Errorf("resent body = %q, want ssml", b)
	}
}

const tcpStateEstablished = "01"

// tcpState is the state (hex, as /proc/net/tcp writes it) of this process's
// 127.0.0.1 socket whose local port is port; ok is false when there is none.
func tcpState(t *testing.T, port string) (state string, ok bool) {
	t.Helper()
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port %q: %v", port, err)
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", p)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) > 3 && fields[1] == local {
			return fields[3], true
		}
	}
	return "", false
}

// The idle limit follows the shortest idle time after which the upstream
// closed a connection, at 3/4 of it, and holds idleLimitLife after the close
// that set it: a longer idle time neither raises nor extends it, an equal or
// shorter one sets it again, and once it has expired every pooled
// connection is used again. (An upstream restart closes connections however
// briefly idle; without expiry, one restart would have the proxy drop
// almost every pooled connection for good.) The clock is synctest's.
func TestIdleLimitLearnedFromTheUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ut upstreamTransport
		wantLimit := func(when string, want time.Duration) {
			t.Helper()
			if want == 0 {
				if ut.tooIdle(time.Hour) {
					t.Errorf("%s: a connection idle for an hour is too idle, want no limit", when)
				}
				return
			}
			if ut.tooIdle(want-1) || !ut.tooIdle(want) {
				l := ut.idleLimit.Load()
				t.Errorf("%s: limit %+v, want %v", when, l, want)
			}
		}
		wantLimit("before anything was learned", 0)
		ut.learnIdle(100 * time.Millisecond)
		wantLimit("after a close at 100ms", 75*time.Millisecond)
		ut.learnIdle(0)
		wantLimit("after a close at 0", 75*time.Millisecond)

		time.Sleep(idleLimitLife / 2)
		ut.learnIdle(time.Second) // a longer idle time: neither raised nor extended
		wantLimit("after a later close at 1s", 75*time.Millisecond)
		time.Sleep(idleLimitLife/2 - time.Nanosecond)
		wantLimit("just before expiry", 75*time.Millisecond)
		time.Sleep(time.Nanosecond)
		wantLimit("at expiry", 0)

		ut.learnIdle(time.Second) // after expiry, the next close sets it
		wantLimit("after a close at 1s once expired", 750*time.Millisecond)
		time.Sleep(idleLimitLife - time.Second)
		ut.learnIdle(40 * time.Millisecond) // shorter: lowered, and it lasts from now
		wantLimit("after a close at 40ms", 30*time.Millisecond)
		time.Sleep(idleLimitLife - time.Nanosecond)
		wantLimit("just before the lowered limit expires", 30*time.Millisecond)
		time.Sleep(time.Nanosecond)
		wantLimit("once the lowered limit expired", 0)
	})
}

// A connection that ends after a request was written to it teaches no idle
// limit: the upstream may have closed it for that request, not for its idle
// time. (Learned from such closes, a few requests an upstream drops would
// make the proxy drop almost every pooled connection.)
func TestWrittenThenClosedTeachesNoIdleLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served sync.WaitGroup
	t.Cleanup(served.Wait) // after ln.Close, which ends the accept loop
	t.Cleanup(func() { ln.Close() })
	served.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil || req.URL.Path != "/warm-up" {
						return // read, never answered: closed
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
		}
	})
	ut := &upstreamTransport{base: &http.Transport{DialContext: dialUpstream(&net.Dialer{})}}
	t.Cleanup(ut.base.CloseIdleConnections)
	for range 3 {
		resp, err := ut.RoundTrip(newHTTPRequest(t, http.MethodGet, "http://"+ln.Addr().String()+"/warm-up", nil))
		if err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		req := newHTTPRequest(t, http.MethodPost, "http://"+ln.Addr().String()+"/x", strings.NewReader(`{"n":1}`))
		if _, err := ut.RoundTrip(req); err == nil {
			t.Fatal("a request the upstream closed on got an answer")
		}
	}
	if l := ut.idleLimit.Load(); l != nil {
		t.Errorf("idle limit = %v after connections closed on written requests, want none", l.limit)
	}
}
