package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// redirectTarget is a second server an upstream redirects to; it records
// each request's Authorization and body.
type redirectTarget struct {
	srv  *httptest.Server
	seen *upstreamLog

	mu     sync.Mutex
	bodies []string
}

func newRedirectTarget(t *testing.T) *redirectTarget {
	rt := &redirectTarget{}
	rt.srv, rt.seen = newRecordingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rt.mu.Lock()
		rt.bodies = append(rt.bodies, string(b))
		rt.mu.Unlock()
		io.WriteString(w, "from the redirect target")
	}))
	return rt
}

func (rt *redirectTarget) host() string { return rt.srv.Listener.Addr().String() }

// redirectTo answers every request with a redirect to target + the path.
func redirectTo(target string, code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", target+r.URL.Path)
		w.WriteHeader(code)
	})
}

func TestRedirectToAllowedHostFollowedWithToken(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		method     string
		wantMethod string
		wantBody   string
	}{
		{"307 POST replays the body", http.StatusTemporaryRedirect, http.MethodPost, http.MethodPost, "<speak>hi</speak>"},
		{"308 POST replays the body", http.StatusPermanentRedirect, http.MethodPost, http.MethodPost, "<speak>hi</speak>"},
		{"302 GET", http.StatusFound, http.MethodGet, http.MethodGet, ""},
		{"301 GET", http.StatusMovedPermanently, http.MethodGet, http.MethodGet, ""},
		{"303 POST becomes GET", http.StatusSeeOther, http.MethodPost, http.MethodGet, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := newRedirectTarget(t)
			f := newHTTPFixture(t, redirectTo(target.srv.URL, tc.code), func(o *Options) {
				o.RedirectHosts = []string{"*.cognitiveservices.azure.com", target.host()}
			})
			var body io.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader("<speak>hi</speak>")
			}
			req := newHTTPRequest(t, tc.method, f.url("/tts/cognitiveservices/v1?X-ConnectionId=abc"), body)
			req.Header.Set("Ocp-Apim-Subscription-Key", "client-key")
			resp, got := f.do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, got)
			}
			if got != "from the redirect target" {
				t.Errorf("body = %q, want the redirect target's", got)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("Location = %q, want none", loc)
			}
			if n := target.seen.count(); n != 1 {
				t.Fatalf("redirect target requests = %d, want 1", n)
			}
			seen := target.seen.last(t)
			wantOnlyProxyCredential(t, seen, "Bearer "+plantedToken)
			if seen.method != tc.wantMethod {
				t.Errorf("redirect target method = %q, want %q", seen.method, tc.wantMethod)
			}
			if seen.host != target.host() {
				t.Errorf("redirect target Host = %q, want %q", seen.host, target.host())
			}
			target.mu.Lock()
			defer target.mu.Unlock()
			if target.bodies[0] != tc.wantBody {
				t.Errorf("redirect target body = %q, want %q", target.bodies[0], tc.wantBody)
			}
		})
	}
}

// A redirect elsewhere is answered 502 and its Location never reaches the
// client, which would otherwise go there without the token.
func TestRedirectToDisallowedHost(t *testing.T) {
	tests := []struct {
		name          string
		redirectHosts func(elsewhere string) []string
	}{
		{"not in the list", func(string) []string { return []string{"*.cognitiveservices.azure.com"} }},
		{"no list", func(string) []string { return nil }},
		{"same host other port", func(elsewhere string) []string {
			host, _, _ := strings.Cut(elsewhere, ":")
			return []string{host + ":1"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			elsewhere := newRedirectTarget(t)
			f := newHTTPFixture(t, redirectTo(elsewhere.srv.URL, http.StatusTemporaryRedirect), func(o *Options) {
				o.RedirectHosts = tc.redirectHosts(elsewhere.host())
			})
			resp, body := f.do(t, newHTTPRequest(t, http.MethodPost, f.url("/tts/cognitiveservices/v1"), strings.NewReader("<speak/>")))
			wantProxyError(t, resp, body, http.StatusBadGateway, "redirect_not_allowed")
			if n := elsewhere.seen.count(); n != 0 {
				t.Errorf("disallowed host requests = %d, want 0", n)
			}
			if strings.Contains(body, elsewhere.srv.URL) {
				t.Errorf("body %s repeats the redirect URL", body)
			}
		})
	}
}

// Up to 3 hops are followed; a fourth redirect is a 502.
func TestRedirectHops(t *testing.T) {
	tests := []struct {
		hops       int
		wantStatus int
	}{
		{1, http.StatusOK},
		{3, http.StatusOK},
		{4, http.StatusBadGateway},
		{20, http.StatusBadGateway},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.hops), func(t *testing.T) {
			f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
				if n < tc.hops {
					http.Redirect(w, r, "/hop/"+strconv.Itoa(n+1), http.StatusTemporaryRedirect)
					return
				}
				io.WriteString(w, "arrived")
			}), func(o *Options) {
				// The upstream redirects to itself; allow that host only.
				o.RedirectHosts = []string{o.Upstream.Host}
			})
			resp, body := f.get(t, "/hop/0")
			if tc.wantStatus != http.StatusOK {
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, body)
				}
				if loc := resp.Header.Get("Location"); loc != "" {
					t.Errorf("Location = %q, want none", loc)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", got)
				}
				if n := f.seen.count(); n != 4 {
					t.Errorf("upstream requests = %d, want 4 (the original and 3 hops)", n)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || body != "arrived" {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "arrived")
			}
			if n := f.seen.count(); n != tc.hops+1 {
				t.Errorf("upstream requests = %d, want %d", n, tc.hops+1)
			}
		})
	}
}

// From https the proxy never follows a redirect to plain http, where the
// token would cross the network in the clear.
func TestRedirectFromHTTPSToHTTPRefused(t *testing.T) {
	plain := newRedirectTarget(t)
	tlsSeen := &upstreamLog{}
	secure := httptest.NewTLSServer(tlsSeen.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-http":
			http.Redirect(w, r, plain.srv.URL+"/landed", http.StatusTemporaryRedirect)
		case "/to-https":
			http.Redirect(w, r, "/landed", http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "secure landing")
		}
	})))
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	f := newHTTPFixtureFor(t, secure, tlsSeen, func(o *Options) {
		o.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		o.RedirectHosts = []string{plain.host(), secure.Listener.Addr().String()}
	})

	t.Run("https to https followed", func(t *testing.T) {
		resp, body := f.get(t, "/to-https")
		if resp.StatusCode != http.StatusOK || body != "secure landing" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "secure landing")
		}
		wantOnlyProxyCredential(t, tlsSeen.last(t), "Bearer "+plantedToken)
	})
	t.Run("https to http refused", func(t *testing.T) {
		resp, body := f.get(t, "/to-http")
		wantProxyError(t, resp, body, http.StatusBadGateway, "redirect_not_allowed")
		if n := plain.seen.count(); n != 0 {
			t.Errorf("plain http requests = %d, want 0", n)
		}
	})
}

// A 307 for a body too large to keep cannot be followed; the client gets a
// 502, not the 3xx.
func TestRedirectOfStreamedBody(t *testing.T) {
	target := newRedirectTarget(t)
	f := newHTTPFixture(t, redirectTo(target.srv.URL, http.StatusTemporaryRedirect), func(o *Options) {
		o.RedirectHosts = []string{target.host()}
	})
	payload := bytes.Repeat([]byte{'x'}, maxReplayBody+1)
	resp, body := f.do(t, newHTTPRequest(t, http.MethodPost, f.url("/speechtotext/transcriptions:transcribe"), bytes.NewReader(payload)))
	wantProxyError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
	if n := target.seen.count(); n != 0 {
		t.Errorf("redirect target requests = %d, want 0", n)
	}
}
