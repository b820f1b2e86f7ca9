package admin_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/entraproxy/entraproxy/admin"
	"github.com/entraproxy/entraproxy/internal/hosts"
)

// On a loopback admin listener a page that rebinds its host name to
// 127.0.0.1 must not read /readyz or /metrics; off loopback, probes that
// name the pod's address keep working.
// An HTTP/1.0 request without Host (curl --http1.0 -H 'Host:') is served
// on a loopback admin listener as on the main one: RFC 9112 section 3.2
// requires Host of HTTP/1.1 only, and no browser omits it.
func TestGuardHTTP10WithoutHost(t *testing.T) {
	h := admin.Guard(hosts.ForListener("127.0.0.1:9090", nil), admin.Handler(func() error { return nil }, prometheus.NewRegistry()))
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
}

func TestGuardHost(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		host   string
		want   int
	}{
		{"loopback: rebound name", "127.0.0.1:9090", "evil.example:9090", http.StatusForbidden},
		{"loopback: rebound name without port", "127.0.0.1:9090", "evil.example", http.StatusForbidden},
		{"loopback: another loopback address", "127.0.0.1:9090", "127.0.0.2:9090", http.StatusForbidden},
		{"loopback: localhost", "127.0.0.1:9090", "localhost:9090", http.StatusOK},
		{"loopback: 127.0.0.1", "127.0.0.1:9090", "127.0.0.1:9090", http.StatusOK},
		{"loopback: [::1]", "127.0.0.1:9090", "[::1]:9090", http.StatusOK},
		{"loopback on 127.0.0.2: its own address", "127.0.0.2:9090", "127.0.0.2:9090", http.StatusOK},
		{"loopback: port out of range", "127.0.0.1:9090", "localhost:65536", http.StatusForbidden},
		{"loopback: port of kilobytes of zeros", "127.0.0.1:9090", "localhost:" + strings.Repeat("0", 5000) + "9090", http.StatusForbidden},
		{"all interfaces: kubelet probe by pod address", "0.0.0.0:9090", "10.1.2.3:9090", http.StatusOK},
		{"all interfaces: any name", ":9090", "entraproxy.apps.svc", http.StatusOK},
	}
	for _, tc := range tests {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			t.Run(tc.name+path, func(t *testing.T) {
				h := admin.Guard(hosts.ForListener(tc.listen, nil), admin.Handler(func() error { return nil }, prometheus.NewRegistry()))
				srv := httptest.NewServer(h)
				defer srv.Close()
				req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = tc.host
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.want {
					t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
				}
				if tc.want != http.StatusForbidden {
					return
				}
				var env struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != "host_not_allowed" {
					t.Errorf("body = %s, want the JSON envelope with host_not_allowed", body)
				}
				if !strings.Contains(env.Error.Message, "localhost") {
					t.Errorf("message = %q, want the names to use", env.Error.Message)
				}
				if strings.Contains(string(body), "go_goroutines") || strings.Contains(string(body), `"ready"`) {
					t.Errorf("refusal leaks the endpoint's answer: %s", body)
				}
			})
		}
	}
}

// A page on another site must not probe the admin endpoints either: its
// <img> or <script> pointed at /readyz would tell ready from not ready by
// its load and error events. Every browser request whose Sec-Fetch-Site is
// neither same-origin nor none gets 403 origin_not_allowed on every
// listener address, loopback or not; kubelet probes and Prometheus scrapes
// send no Sec-Fetch-Site and pass.
func TestGuardCrossSite(t *testing.T) {
	tests := []struct {
		name  string
		sites []string // Sec-Fetch-Site lines
		want  int
	}{
		{"kubelet probe, Prometheus scrape (no header)", nil, http.StatusOK},
		{"address bar", []string{"none"}, http.StatusOK},
		{"same origin", []string{"same-origin"}, http.StatusOK},
		{"<img> from another site", []string{"cross-site"}, http.StatusForbidden},
		{"<script> from another port of 127.0.0.1", []string{"same-site"}, http.StatusForbidden},
		{"empty", []string{""}, http.StatusForbidden},
		{"none, then cross-site", []string{"none", "cross-site"}, http.StatusForbidden},
	}
	for _, listen := range []string{"127.0.0.1:9090", "0.0.0.0:9090"} {
		srv := httptest.NewServer(admin.Guard(hosts.ForListener(listen, nil), admin.Handler(func() error { return nil }, prometheus.NewRegistry())))
		defer srv.Close()
		for _, tc := range tests {
			for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
				t.Run(listen+"/"+tc.name+path, func(t *testing.T) {
					req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Host = "localhost"
					for _, s := range tc.sites {
						req.Header.Add("Sec-Fetch-Site", s)
					}
					resp, err := srv.Client().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != tc.want {
						t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
					}
					if tc.want != http.StatusForbidden {
						return
					}
					var env struct {
						Error struct{ Code, Message string }
					}
					if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != "origin_not_allowed" {
						t.Errorf("body = %s, want the JSON envelope with origin_not_allowed", body)
					}
					if strings.Contains(string(body), "go_goroutines") || strings.Contains(string(body), `"ready"`) || strings.Contains(string(body), `"ok"`) {
						t.Errorf("refusal leaks the endpoint's answer: %s", body)
					}
				})
			}
		}
	}
}
