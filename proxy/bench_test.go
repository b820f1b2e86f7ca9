package proxy

// Benchmarks of the two hot paths with real servers on 127.0.0.1 on both
// sides, for `go test -bench . -cpuprofile/-memprofile ./proxy/`
// (BENCHMARKS.md, Profiling). They do not run without -bench. Names start
// with "bench" so they cannot collide with the test helpers.

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/entraproxy/entraproxy/metrics"
)

// benchProxy serves a Proxy for upstream on 127.0.0.1 with the production
// options that cost something per request: JSON access log (discarded) and
// Prometheus metrics.
func benchProxy(b *testing.B, upstream string) *httptest.Server {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	// One fixed token, as tokens.Source hands out at steady state. Entra
	// access tokens are 1.5-2.5 KB; the size matters because the header
	// value is built from it.
	tokens := newFakeTokens("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + strings.Repeat("x", 1600) + ".sig")
	tokens.renewSame = true
	p, err := New(Options{
		Upstream:    u,
		Tokens:      tokens,
		AuthFormat:  FormatAuto,
		SpeechPaths: true,
		Proxy:       func(*http.Request) (*url.URL, error) { return nil, nil },
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics:     metrics.New(prometheus.NewRegistry(), metrics.BuildInfo{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(p)
	b.Cleanup(front.Close)
	return front
}

// BenchmarkHTTPProxy is one POST with a 1 KiB body answered by 4 KiB, over
// keep-alive connections, from GOMAXPROCS clients in parallel.
func BenchmarkHTTPProxy(b *testing.B) {
	resp4k := bytes.Repeat([]byte("r"), 4096)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// With a length, as a non-streamed JSON answer comes; without one
		// net/http would chunk 4 KiB and ReverseProxy flush every write.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(resp4k)))
		w.Write(resp4k)
	}))
	b.Cleanup(up.Close)
	front := benchProxy(b, up.URL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	body := bytes.Repeat([]byte("q"), 1024)
	target := front.URL + "/openai/deployments/d/chat/completions?api-version=2024-10-21"

	b.ReportAllocs()
	b.SetBytes(int64(len(body) + len(resp4k)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Api-Key", "dummy")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(resp4k)) {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkWebSocketRelay is one 3,200-byte binary message (100 ms of 16 kHz
// audio) sent and echoed back, on one session per parallel client.
func BenchmarkWebSocketRelay(b *testing.B) {
	upgrader := websocket.Upgrader{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	b.Cleanup(up.Close)
	front := benchProxy(b, up.URL)
	target := "ws" + strings.TrimPrefix(front.URL, "http") + "/stt/speech/universal/v2"
	frame := bytes.Repeat([]byte("a"), 3200)

	b.ReportAllocs()
	b.SetBytes(int64(2 * len(frame)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, _, err := websocket.DefaultDialer.Dial(target, nil)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		for pb.Next() {
			if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				b.Error(err)
				return
			}
			if _, msg, err := c.ReadMessage(); err != nil || len(msg) != len(frame) {
				b.Errorf("echo: %d bytes, %v", len(msg), err)
				return
			}
		}
		c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	})
}
