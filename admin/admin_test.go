package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/entraproxy/entraproxy/admin"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testport"
	"github.com/entraproxy/entraproxy/metrics"
)

func get(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp, string(body)
}

func TestEndpointsInEachState(t *testing.T) {
	tests := []struct {
		name       string
		ready      error
		readyCode  int
		readyState string
		reason     string
	}{
		{"starting", errors.New("starting: no token yet"), 503, "not_ready", "starting: no token yet"},
		{"ready", nil, 200, "ready", ""},
		{"token lost", errors.New("token_unavailable: get token for https://cognitiveservices.azure.com/.default: ManagedIdentityCredential: no response"),
			503, "not_ready", "token_unavailable: get token for https://cognitiveservices.azure.com/.default: ManagedIdentityCredential: no response"},
		{"draining", errors.New("draining"), 503, "not_ready", "draining"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.New(reg, metrics.BuildInfo{Version: "test"})
			m.ObserveRequest(metrics.ProtocolHTTP, 200, time.Millisecond)
			srv := httptest.NewServer(admin.Handler(func() error { return tc.ready }, reg))
			defer srv.Close()

			// Liveness never depends on the token or on draining.
			resp, body := get(t, "GET", srv.URL+"/healthz")
			checkJSON(t, resp, body, 200, map[string]string{"status": "ok"})

			resp, body = get(t, "GET", srv.URL+"/readyz")
			want := map[string]string{"status": tc.readyState}
			if tc.reason != "" {
				want["reason"] = tc.reason
			}
			checkJSON(t, resp, body, tc.readyCode, want)

			resp, body = get(t, "HEAD", srv.URL+"/readyz")
			if resp.StatusCode != tc.readyCode || body != "" {
				t.Errorf("HEAD /readyz = %d %q, want %d and no body", resp.StatusCode, body, tc.readyCode)
			}

			resp, body = get(t, "GET", srv.URL+"/metrics")
			if resp.StatusCode != 200 {
				t.Fatalf("GET /metrics = %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("/metrics Content-Type = %q, want text/plain...", ct)
			}
			for _, s := range []string{"# TYPE entraproxy_requests_total counter", `entraproxy_requests_total{code="200",protocol="http"} 1`, `entraproxy_build_info{commit="",goversion="",version="test"} 1`, "go_goroutines"} {
				if !strings.Contains(body, s) {
					t.Errorf("/metrics lacks %q", s)
				}
			}
		})
	}
}

func checkJSON(t *testing.T, resp *http.Response, body string, code int, want map[string]string) {
	t.Helper()
	path := resp.Request.URL.Path
	if resp.StatusCode != code {
		t.Errorf("%s status = %d, want %d", path, resp.StatusCode, code)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("%s Content-Type = %q, want application/json", path, got)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s Cache-Control = %q, want no-store", path, got)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%s body %q: %v", path, body, err)
	}
	if len(got) != len(want) {
		t.Errorf("%s body = %v, want %v", path, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", path, k, got[k], v)
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	srv := httptest.NewServer(admin.Handler(func() error { return nil }, prometheus.NewRegistry()))
	defer srv.Close()
	tests := []struct {
		method, path string
		want         int
	}{
		{"HEAD", "/healthz", 200},
		{"POST", "/healthz", 405},
		{"PUT", "/readyz", 405},
		{"DELETE", "/metrics", 405},
		{"GET", "/", 404},
		{"GET", "/healthz/", 404},
		{"GET", "/readyz/extra", 404},
		{"GET", "/debug/pprof/", 404},
		{"OPTIONS", "/readyz", 405},
		{"TRACE", "/healthz", 405},
		{"POST", "/nothing", 404},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := get(t, tc.method, srv.URL+tc.path)
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
			if tc.want == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: 405 with Allow %q, want GET, HEAD", tc.method, tc.path, resp.Header.Get("Allow"))
			}
			if tc.want == 200 {
				return
			}
			// Refusals in the JSON error envelope, as the proxy's.
			var env struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error.Code != map[int]string{404: "not_found", 405: "method_not_allowed"}[tc.want] || env.Error.Message == "" {
				t.Errorf("%s %s: body %q, want the JSON error envelope", tc.method, tc.path, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: Content-Type = %q, want application/json", tc.method, tc.path, ct)
			}
		})
	}
}

func TestNilGathererHasNoMetrics(t *testing.T) {
	srv := httptest.NewServer(admin.Handler(func() error { return nil }, nil))
	defer srv.Close()
	if resp, _ := get(t, "GET", srv.URL+"/metrics"); resp.StatusCode != 404 {
		t.Errorf("GET /metrics = %d, want 404", resp.StatusCode)
	}
}

func TestWaitUntilReady(t *testing.T) {
	var mu sync.Mutex
	probes := 0
	ready := func() error {
		mu.Lock()
		defer mu.Unlock()
		probes++
		if probes <= 3 {
			return errors.New("starting: no token yet")
		}
		return nil
	}
	srv := httptest.NewServer(admin.Handler(ready, nil))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	if err := admin.Wait(ctx, srv.URL+"/readyz"); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if probes != 4 {
		t.Errorf("probes = %d, want 4 (three 503s, then the 200)", probes)
	}
}

// endAtSecondProbe serves h, and ends the returned context when the second
// probe arrives: Wait has read the first answer by then (it probes one at a
// time), which a deadline on a busy machine could not promise.
func endAtSecondProbe(t *testing.T, h http.Handler) (context.Context, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	t.Cleanup(cancel)
	var probes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if probes.Add(1) == 2 {
			cancel()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return ctx, srv
}

func TestWaitTimesOutNeverReady(t *testing.T) {
	ctx, srv := endAtSecondProbe(t, admin.Handler(func() error { return errors.New("starting: no token yet") }, nil))
	err := admin.Wait(ctx, srv.URL+"/readyz")
	if err == nil {
		t.Fatal("Wait = nil, want an error")
	}
	if !strings.HasPrefix(err.Error(), "not ready after ") || !strings.HasSuffix(err.Error(), ": 503 starting: no token yet") {
		t.Errorf("Wait = %q, want not ready after ...: 503 starting: no token yet", err)
	}
}

func TestWaitReportsNonJSONStatus(t *testing.T) {
	ctx, srv := endAtSecondProbe(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	err := admin.Wait(ctx, srv.URL+"/readyz")
	if err == nil || !strings.HasSuffix(err.Error(), ": 502 Bad Gateway") {
		t.Errorf("Wait = %v, want ...: 502 Bad Gateway", err)
	}
}

// A refused connection is retried until ctx ends, and named. The port is
// held, so nobody can be given it and answer. Nothing announces a refused
// probe, so the wait runs in a synctest bubble: its clock moves only while
// every goroutine waits on it, never while a probe is under way, so the
// 300ms cannot pass before the first probe is refused.
func TestWaitConnectionRefused(t *testing.T) {
	addr := testport.Reserve(t).Addr()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := admin.Wait(ctx, "http://"+addr+"/readyz")
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("Wait = %v, want an error naming connection refused", err)
		}
	})
}

// A listener that accepts but never answers: ctx ends the probe in flight, and
// that cancellation is not mistaken for what the instance said. ctx ends once
// the probe is in flight (a deadline could race the probe's own timeout).
func TestWaitHungInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	err := admin.Wait(ctx, srv.URL+"/readyz")
	if err == nil || !strings.HasSuffix(err.Error(), ": no answer yet") {
		t.Errorf("Wait = %v, want ...: no answer yet", err)
	}
}

// A bad URL fails at once rather than after the whole timeout.
func TestWaitBadURL(t *testing.T) {
	for _, u := range []string{"://no-scheme", "127.0.0.1:9090/readyz", "ftp://127.0.0.1/readyz", "http:///readyz"} {
		t.Run(u, func(t *testing.T) {
			// No deadline: a Wait that polled would hang the test.
			if err := admin.Wait(context.Background(), u); err == nil {
				t.Errorf("Wait(%q) = nil, want an error", u)
			}
		})
	}
}
