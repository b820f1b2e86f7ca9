package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// A web page the user visits must not spend the proxy's identity, by any
// kind of request a browser makes. Each case is one way a page, a browser
// quirk or a hand-made request might get past the check.
func TestBrowserProtection(t *testing.T) {
	const allowed = "http://localhost:3000"
	tests := []struct {
		name   string
		method string              // GET unless set
		header map[string][]string // written as is, one line per value
		code   string              // "" means forwarded
	}{
		// What passes.
		{name: "SDK or curl: neither Origin nor Sec-Fetch-Site"},
		{name: "Node fetch: Sec-Fetch-Mode without Sec-Fetch-Site", header: map[string][]string{"Sec-Fetch-Mode": {"cors"}}},
		{name: "URL typed in the address bar: none", header: map[string][]string{"Sec-Fetch-Site": {"none"}, "Sec-Fetch-Mode": {"navigate"}}},
		{name: "page served by the proxy itself: same-origin", header: map[string][]string{"Sec-Fetch-Site": {"same-origin"}}},
		{name: "Sec-Fetch-Site padded with spaces", header: map[string][]string{"Sec-Fetch-Site": {"  none  "}}},
		{name: "allowed origin, cross-site CORS fetch", header: map[string][]string{"Origin": {allowed}, "Sec-Fetch-Site": {"cross-site"}}},
		{name: "allowed origin, same-site", header: map[string][]string{"Origin": {allowed}, "Sec-Fetch-Site": {"same-site"}}},
		{name: "allowed origin with trailing slash", header: map[string][]string{"Origin": {allowed + "/"}}},
		{name: "allowed origin twice", header: map[string][]string{"Origin": {allowed, allowed}, "Sec-Fetch-Site": {"cross-site"}}},
		{name: "allowed origin padded with spaces", header: map[string][]string{"Origin": {" " + allowed + " "}}},
		{name: "allowed origin POST (form or fetch)", method: http.MethodPost, header: map[string][]string{"Origin": {allowed}, "Sec-Fetch-Site": {"same-site"}}},

		// Requests that carry no Origin: <img>, <script>, <link>, <video>,
		// CSS, <iframe>, <object>, GET forms, navigations, window.open,
		// no-cors fetch.
		{name: "subresource from another site", header: map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"no-cors"}, "Sec-Fetch-Dest": {"image"}}, code: "origin_not_allowed"},
		{name: "subresource from another port of the same host (same-site)", header: map[string][]string{"Sec-Fetch-Site": {"same-site"}, "Sec-Fetch-Dest": {"script"}}, code: "origin_not_allowed"},
		{name: "navigation from another site", header: map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"}}, code: "origin_not_allowed"},
		{name: "HEAD from another site", method: http.MethodHead, header: map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, code: "origin_not_allowed"},
		{name: "POST from another site without Origin", method: http.MethodPost, header: map[string][]string{"Sec-Fetch-Site": {"cross-site"}}, code: "origin_not_allowed"},
		{name: "header name in lower case", header: map[string][]string{"sec-fetch-site": {"cross-site"}}, code: "origin_not_allowed"},
		{name: "header name in capitals", header: map[string][]string{"SEC-FETCH-SITE": {"same-site"}}, code: "origin_not_allowed"},
		{name: "value in capitals is not same-origin", header: map[string][]string{"Sec-Fetch-Site": {"SAME-ORIGIN"}}, code: "origin_not_allowed"},
		{name: "value in capitals is not none", header: map[string][]string{"Sec-Fetch-Site": {"None"}}, code: "origin_not_allowed"},
		{name: "cross-site after same-origin on a second line", header: map[string][]string{"Sec-Fetch-Site": {"same-origin", "cross-site"}}, code: "origin_not_allowed"},
		{name: "cross-site before none on a second line", header: map[string][]string{"Sec-Fetch-Site": {"cross-site", "none"}}, code: "origin_not_allowed"},
		{name: "two values on one line", header: map[string][]string{"Sec-Fetch-Site": {"same-origin, cross-site"}}, code: "origin_not_allowed"},
		{name: "empty Sec-Fetch-Site", header: map[string][]string{"Sec-Fetch-Site": {""}}, code: "origin_not_allowed"},
		{name: "unknown Sec-Fetch-Site value", header: map[string][]string{"Sec-Fetch-Site": {"same-origin-ish"}}, code: "origin_not_allowed"},

		// Requests that carry Origin: CORS fetch, POST forms, sendBeacon,
		// WebSocket upgrades.
		{name: "foreign origin", header: map[string][]string{"Origin": {"https://evil.example"}}, code: "origin_not_allowed"},
		{name: "foreign origin claiming none", header: map[string][]string{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"none"}}, code: "origin_not_allowed"},
		{name: "foreign origin claiming same-origin", header: map[string][]string{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"same-origin"}}, code: "origin_not_allowed"},
		{name: "null origin (sandboxed frame, file:, data:)", header: map[string][]string{"Origin": {"null"}}, code: "origin_not_allowed"},
		{name: "empty Origin", header: map[string][]string{"Origin": {""}}, code: "origin_not_allowed"},
		{name: "empty Origin before a foreign one", header: map[string][]string{"Origin": {"", "http://evil.test"}}, code: "origin_not_allowed"},
		{name: "empty Origin before the allowed one", header: map[string][]string{"Origin": {"", allowed}}, code: "origin_not_allowed"},
		{name: "allowed origin before a foreign one", header: map[string][]string{"Origin": {allowed, "http://evil.test"}}, code: "origin_not_allowed"},
		{name: "foreign origin before the allowed one", header: map[string][]string{"Origin": {"http://evil.test", allowed}}, code: "origin_not_allowed"},
		{name: "two origins on one line", header: map[string][]string{"Origin": {allowed + ", http://evil.test"}}, code: "origin_not_allowed"},
		{name: "allowed origin as prefix", header: map[string][]string{"Origin": {"http://localhost:3000.evil.example"}}, code: "origin_not_allowed"},
		{name: "allowed origin on another port", header: map[string][]string{"Origin": {"http://localhost:3001"}}, code: "origin_not_allowed"},
		{name: "allowed host with another scheme", header: map[string][]string{"Origin": {"https://localhost:3000"}}, code: "origin_not_allowed"},
		{name: "allowed origin with a path", header: map[string][]string{"Origin": {allowed + "/app"}}, code: "origin_not_allowed"},
		{name: "origin header in lower case", header: map[string][]string{"origin": {"http://evil.test"}}, code: "origin_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedOrigins = []string{allowed} })
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req := newHTTPRequest(t, method, f.url("/cognitiveservices/voices/list"), nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, body := f.do(t, req)
			if method == http.MethodHead {
				// No body to check: the status and the upstream's silence say it.
				if tc.code != "" && (resp.StatusCode != http.StatusForbidden || f.seen.count() != 0) {
					t.Errorf("HEAD: status %d, upstream requests %d; want 403 and 0", resp.StatusCode, f.seen.count())
				}
				return
			}
			wantGuardOutcome(t, f, resp, body, http.StatusForbidden, tc.code)
		})
	}
}

// Browsers send no Sec-Fetch-* on WebSocket handshakes today, only Origin;
// should one start to, or send both, the same rules hold, and a refused
// upgrade is never dialed.
func TestBrowserProtectionWebSocket(t *testing.T) {
	const allowed = "http://localhost:3000"
	refused := []struct {
		name   string
		header map[string][]string
	}{
		{"foreign origin", map[string][]string{"Origin": {"http://127.0.0.2:5000"}}},
		{"empty Origin", map[string][]string{"Origin": {""}}},
		{"null origin", map[string][]string{"Origin": {"null"}}},
		{"allowed origin then a foreign one", map[string][]string{"Origin": {allowed, "http://evil.test"}}},
		{"cross-site without Origin", map[string][]string{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"websocket"}}},
		{"same-site without Origin", map[string][]string{"Sec-Fetch-Site": {"same-site"}}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) { o.AllowedOrigins = []string{allowed} })
			resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, func(h http.Header) {
				for k, v := range tc.header {
					h[k] = v
				}
			})
			wsWantError(t, resp, body, http.StatusForbidden, "origin_not_allowed")
			if n := env.upstream.conns.Load(); n != 0 {
				t.Errorf("upstream connections = %d, want 0", n)
			}
		})
	}
	passes := []struct {
		name   string
		header http.Header
	}{
		{"allowed origin, cross-site", http.Header{"Origin": {allowed}, "Sec-Fetch-Site": {"cross-site"}}},
		{"no Origin, typed-in (none)", http.Header{"Sec-Fetch-Site": {"none"}}},
		{"SDK: no browser headers", nil},
	}
	for _, tc := range passes {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) { o.AllowedOrigins = []string{allowed} })
			client, upstream := env.open(t, wsSpeechPath, tc.header)
			wsRoundTrip(t, client, upstream, websocket.TextMessage, []byte("hi"), "client to upstream")
		})
	}
}

// curl -H 'Origin;' -H 'Origin: http://evil.test' sends an empty Origin line
// and a foreign one: every line counts, whatever letter case the names are
// written in.
func TestBrowserProtectionOnTheWire(t *testing.T) {
	tests := []struct {
		name  string
		lines string
	}{
		{"empty Origin, then a foreign one", "Origin:\r\nOrigin: http://evil.test\r\n"},
		{"empty Origin, then the allowed one", "Origin: \r\nOrigin: http://localhost:3000\r\n"},
		{"allowed Origin, then a foreign one in lower case", "Origin: http://localhost:3000\r\norigin: http://evil.test\r\n"},
		{"Sec-Fetch-Site in lower case with a tab", "sec-fetch-site:\tcross-site\r\n"},
		{"Sec-Fetch-Site none, then same-site", "Sec-Fetch-Site: none\r\nSEC-FETCH-SITE: same-site\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedOrigins = []string{"http://localhost:3000"} })
			resp, body := rawHTTPRequest(t, f.front.Listener.Addr().String(),
				"GET /cognitiveservices/voices/list HTTP/1.1\r\nHost: localhost\r\n"+tc.lines+"Connection: close\r\n\r\n")
			wantGuardOutcome(t, f, resp, body, http.StatusForbidden, "origin_not_allowed")
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
func wantGuardOutcome(t *testing.T, f *fixture, resp *http.Response, body string, status int, code string) {
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
