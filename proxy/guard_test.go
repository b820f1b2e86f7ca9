package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// A web page the user visits must not spend the proxy's identity.
func TestOriginGuard(t *testing.T) {
	tests := []struct {
		name   string
		origin string // "" sends none
		code   string // "" means forwarded
	}{
		{name: "no Origin (SDK, curl)"},
		{name: "allowed origin", origin: "http://localhost:3000"},
		{name: "allowed origin with trailing slash", origin: "http://localhost:3000/"},
		{name: "foreign origin", origin: "https://evil.example", code: "origin_not_allowed"},
		{name: "null origin (sandboxed frame)", origin: "null", code: "origin_not_allowed"},
		{name: "allowed origin as prefix", origin: "http://localhost:3000.evil.example", code: "origin_not_allowed"},
		{name: "other port", origin: "http://localhost:3001", code: "origin_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) {
				o.AllowedOrigins = []string{"http://localhost:3000"}
			})
			req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, body := f.do(t, req)
			wantGuardOutcome(t, f, resp, body, http.StatusForbidden, tc.code)
		})
	}
}

// The Host check on a loopback listener (DNS rebinding): the loopback names
// on any port, and the listener's own address.
func TestHostGuardOnLoopbackListener(t *testing.T) {
	tests := []struct {
		listen string
		host   string
		code   string // "" means forwarded
	}{
		{listen: "127.0.0.1:8080", host: "evil.example", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "evil.example:8080", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "localhost.evil.example", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "127.0.0.1.nip.io", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "10.0.0.5:8080", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "evil.localhost:8080", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "127.0.0.2:8080", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "[127.0.0.1]:8080", code: "host_not_allowed"},
		{listen: "127.0.0.1:8080", host: "localhost:8080"},
		{listen: "127.0.0.1:8080", host: "localhost"},
		{listen: "127.0.0.1:8080", host: "LOCALHOST:8080"},
		{listen: "127.0.0.1:8080", host: "127.0.0.1"},
		{listen: "127.0.0.1:8080", host: "127.0.0.1:8080"},
		{listen: "127.0.0.1:8080", host: "[::1]:1"},
		{listen: "127.0.0.1:8080", host: "[::1]"},
		// A listener on another loopback address accepts its own.
		{listen: "127.0.0.2:8080", host: "127.0.0.2:8080"},
		{listen: "127.0.0.2:8080", host: "127.0.0.3:8080", code: "host_not_allowed"},
		{listen: "[::1]:8080", host: "[::1]:8080"},
	}
	for _, tc := range tests {
		t.Run(tc.listen+"/"+tc.host, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedHosts = hosts.ForListener(tc.listen, nil) })
			req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
			req.Host = tc.host
			resp, body := f.do(t, req)
			wantGuardOutcome(t, f, resp, body, http.StatusForbidden, tc.code)
			if tc.code != "" && !strings.Contains(body, "ENTRAPROXY_ALLOWED_HOSTS") {
				t.Errorf("body = %s, want the setting that fixes it named", body)
			}
		})
	}
}

// ENTRAPROXY_ALLOWED_HOSTS on a listener that is not loopback: only the
// listed hosts pass.
func TestAllowedHostsOffLoopback(t *testing.T) {
	check := hosts.ForListener("0.0.0.0:8080", []string{"proxy.internal", "*.svc.cluster.local"})
	for _, tc := range []struct {
		host string
		code string
	}{
		{host: "proxy.internal:8080"},
		{host: "entraproxy.apps.svc.cluster.local"},
		{host: "10.0.0.5:8080", code: "host_not_allowed"},
		{host: "evil.example", code: "host_not_allowed"},
		{host: "localhost:8080", code: "host_not_allowed"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedHosts = check })
			req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
			req.Host = tc.host
			resp, body := f.do(t, req)
			wantGuardOutcome(t, f, resp, body, http.StatusForbidden, tc.code)
		})
	}
}

// Without a Host check (a listener on all interfaces, nothing configured)
// any Host passes.
func TestHostGuardOffByDefault(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, nil)
	req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
	req.Host = "speech-proxy.internal"
	resp, body := f.do(t, req)
	wantGuardOutcome(t, f, resp, body, 0, "")
}

// Gateway mode: the key goes where each SDK puts its own key, and never on
// to the upstream.
func TestInboundKeys(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string // written as is
		query  string
		code   string // "" means forwarded
	}{
		{name: "none", code: "inbound_key_required"},
		{name: "empty header", header: map[string]string{"Api-Key": ""}, code: "inbound_key_required"},
		{name: "Authorization not bearer", header: map[string]string{"Authorization": "Basic " + plantedKey}, code: "inbound_key_required"},
		{name: "wrong Ocp-Apim-Subscription-Key header", header: map[string]string{"Ocp-Apim-Subscription-Key": plantedWrong}, code: "inbound_key_invalid"},
		{name: "wrong bearer", header: map[string]string{"Authorization": "Bearer " + plantedWrong}, code: "inbound_key_invalid"},
		{name: "wrong query key", query: "Ocp-Apim-Subscription-Key=" + plantedWrong, code: "inbound_key_invalid"},
		{name: "key with a prefix of the right one", header: map[string]string{"Api-Key": plantedKey[:len(plantedKey)-1]}, code: "inbound_key_invalid"},
		{name: "Ocp-Apim-Subscription-Key header", header: map[string]string{"Ocp-Apim-Subscription-Key": plantedKey}},
		{name: "ocp-apim-subscription-key header lower case", header: map[string]string{"ocp-apim-subscription-key": plantedKey}},
		{name: "api-key header", header: map[string]string{"api-key": plantedKey}},
		{name: "Authorization: Bearer", header: map[string]string{"Authorization": "Bearer " + plantedKey}},
		{name: "second key", header: map[string]string{"Api-Key": plantedKey2}},
		{name: "query Ocp-Apim-Subscription-Key", query: "Ocp-Apim-Subscription-Key=" + plantedKey + "&X-ConnectionId=abc"},
		{name: "query Authorization=Bearer%20KEY", query: "language=en-US&Authorization=Bearer%20" + plantedKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) {
				o.InboundKeys = []string{plantedKey, plantedKey2}
				o.AuthFormat = FormatBearer
			})
			target := "/speech/recognition/interactive/cognitiveservices/v1"
			if tc.query != "" {
				target += "?" + tc.query
			}
			req := newHTTPRequest(t, http.MethodGet, f.url(target), nil)
			for k, v := range tc.header {
				req.Header[k] = []string{v}
			}
			resp, body := f.do(t, req)
			wantGuardOutcome(t, f, resp, body, http.StatusUnauthorized, tc.code)
			if tc.code != "" {
				return
			}
			got := f.seen.last(t)
			wantOnlyProxyCredential(t, got, "Bearer "+plantedToken)
			for name, values := range got.header {
				for _, v := range values {
					if strings.Contains(v, plantedKey) || strings.Contains(v, plantedKey2) {
						t.Errorf("upstream header %s = %q holds the inbound key", name, v)
					}
				}
			}
			if q, _ := url.QueryUnescape(got.requestURI); strings.Contains(q, plantedKey) || strings.Contains(q, plantedKey2) {
				t.Errorf("upstream request URI %q holds the inbound key", got.requestURI)
			}
		})
	}
}

// wantGuardOutcome checks either a refusal (status, code, nothing sent
// upstream) or, when code is "", a forwarded 200.
func wantGuardOutcome(t *testing.T, f *httpFixture, resp *http.Response, body string, status int, code string) {
	t.Helper()
	if code == "" {
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status = %d, want 200 (body %s)", resp.StatusCode, body)
		}
		if n := f.seen.count(); n != 1 {
			t.Errorf("upstream requests = %d, want 1", n)
		}
		return
	}
	wantProxyError(t, resp, body, status, code)
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
	if n := f.tokens.tokenCount(); n != 0 {
		t.Errorf("Token calls = %d, want 0 (refused before a token is spent)", n)
	}
}

// However the allowed origin was written (capitals, a trailing slash), the
// browser's form of it is let through.
func TestOriginGuardListedLoosely(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, func(o *Options) {
		o.AllowedOrigins = []string{"HTTP://LocalHost:3000/"}
	})
	req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
	req.Header.Set("Origin", "http://localhost:3000")
	resp, body := f.do(t, req)
	wantGuardOutcome(t, f, resp, body, http.StatusForbidden, "")
}

// Two different keys in the query: the verdict must not depend on map order.
func TestInboundKeyQueryOrderFixed(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.InboundKeys = []string{"right"} })
	for range 20 {
		resp, body := f.get(t, "/x?api-key=wrong&Ocp-Apim-Subscription-Key=right")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d (%s), want 200: Ocp-Apim-Subscription-Key is checked first", resp.StatusCode, body)
		}
	}
}

// Keys are compared by digest; other lengths and letter cases are refused
// like any wrong key.
func TestInboundKeyDigests(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.InboundKeys = []string{"k"} })
	g := &f.proxy.guard
	for _, tc := range []struct {
		key  string
		want bool
	}{{"k", true}, {"", false}, {"kk", false}, {strings.Repeat("k", 1000), false}, {"K", false}} {
		if got := g.validKey(tc.key); got != tc.want {
			t.Errorf("validKey(%.10q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
