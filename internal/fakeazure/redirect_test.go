package fakeazure

import (
	"net/http"
	"net/url"
	"testing"
)

// TestRedirect follows the redirect mode the way a proxy must: the custom
// domain answers 301 to the regional host, which serves the regional path
// only with Ocp-Apim-Custom-Domain-Name and a valid token.
func TestRedirect(t *testing.T) {
	a := start(t, Settings{Redirect: true})
	tok := a.Issue()

	_, resp, err := dial(t, ttsURL(a), http.Header{"Authorization": {bearer(tok)}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("custom-domain upgrade = %v, %v, want a 301 handshake response", resp, err)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("Location %q: %v", resp.Header.Get("Location"), err)
	}
	if loc.Scheme != "ws" || loc.Host != a.RegionalHost() || loc.Path != "/cognitiveservices/websocket/v1" {
		t.Errorf("Location = %s, want ws://%s/cognitiveservices/websocket/v1?...", loc, a.RegionalHost())
	}
	q := loc.Query()
	if got := q.Get("Ocp-Apim-Custom-Domain-Name"); got != a.CustomHost() {
		t.Errorf("Location Ocp-Apim-Custom-Domain-Name = %q, want %q", got, a.CustomHost())
	}
	if got := q.Get("X-ConnectionId"); got != "0123456789ABCDEF0123456789ABCDEF" {
		t.Errorf("Location X-ConnectionId = %q, want the original query kept", got)
	}

	conn, resp, err := dial(t, loc.String(), http.Header{"Authorization": {aad(DefaultResourceID, tok)}}, "USP")
	if err != nil {
		t.Fatalf("dial Location: %v (response %v)", err, resp)
	}
	audio, err := Synthesize(conn, "Redirected.", "")
	if err != nil || len(audio) != AudioBytes("Redirected.") {
		t.Fatalf("Synthesize after redirect = %d bytes, %v, want %d", len(audio), err, AudioBytes("Redirected."))
	}
	if got := lastRequest(t, a); got.Listener != "regional" || got.Status != 101 || got.Subprotocol != "USP" {
		t.Errorf("recorded listener, status, subprotocol = %q, %d, %q, want regional, 101, USP", got.Listener, got.Status, got.Subprotocol)
	}
}

// TestRedirectNeedsAuth: the custom domain checks the token before it
// redirects, so a proxy must authenticate both hops.
func TestRedirectNeedsAuth(t *testing.T) {
	a := start(t, Settings{Redirect: true})
	_, resp, _ := dial(t, ttsURL(a), nil)
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without token = %v, want 401", resp)
	}
}

func TestRegionalListener(t *testing.T) {
	withDomain := func(a *Azure) string {
		return "?X-ConnectionId=1&Ocp-Apim-Custom-Domain-Name=" + url.QueryEscape(a.CustomHost())
	}
	tests := []struct {
		name   string
		path   func(a *Azure) string
		header func(a *Azure) http.Header
		want   int
		reason string
	}{
		{
			name:   "custom domain in query",
			path:   func(a *Azure) string { return "/cognitiveservices/websocket/v1" + withDomain(a) },
			header: func(a *Azure) http.Header { return http.Header{"Authorization": {bearer(a.Issue())}} },
			want:   101,
		},
		{
			name: "custom domain in header",
			path: func(*Azure) string { return "/cognitiveservices/websocket/v1" },
			header: func(a *Azure) http.Header {
				return http.Header{"Authorization": {bearer(a.Issue())}, "Ocp-Apim-Custom-Domain-Name": {a.CustomHost()}}
			},
			want: 101,
		},
		{
			name:   "no custom domain",
			path:   func(*Azure) string { return "/cognitiveservices/websocket/v1?X-ConnectionId=1" },
			header: func(a *Azure) http.Header { return http.Header{"Authorization": {bearer(a.Issue())}} },
			want:   401, reason: ReasonNoCustomDomain,
		},
		{
			name: "another custom domain",
			path: func(*Azure) string {
				return "/cognitiveservices/websocket/v1?Ocp-Apim-Custom-Domain-Name=other.cognitiveservices.azure.com"
			},
			header: func(a *Azure) http.Header { return http.Header{"Authorization": {bearer(a.Issue())}} },
			want:   401, reason: ReasonNoCustomDomain,
		},
		{
			name:   "no token",
			path:   func(a *Azure) string { return "/cognitiveservices/websocket/v1" + withDomain(a) },
			header: func(*Azure) http.Header { return nil },
			want:   401, reason: ReasonNoAuthorization,
		},
		{
			name:   "expired token",
			path:   func(a *Azure) string { return "/cognitiveservices/websocket/v1" + withDomain(a) },
			header: func(a *Azure) http.Header { return http.Header{"Authorization": {bearer(a.IssueExpired())}} },
			want:   401, reason: ReasonExpiredToken,
		},
		{
			name:   "custom-domain path on the regional host",
			path:   func(a *Azure) string { return "/tts/cognitiveservices/websocket/v1" + withDomain(a) },
			header: func(a *Azure) http.Header { return http.Header{"Authorization": {bearer(a.Issue())}} },
			want:   404,
		},
		{
			name: "host of the custom domain",
			path: func(a *Azure) string { return "/cognitiveservices/websocket/v1" + withDomain(a) },
			header: func(a *Azure) http.Header {
				return http.Header{"Authorization": {bearer(a.Issue())}, "Host": {a.CustomHost()}}
			},
			want: 421, reason: ReasonWrongHost,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			h := tc.header(a)
			u := "ws://" + a.RegionalHost() + tc.path(a)
			var status int
			if host := h.Get("Host"); host != "" {
				// gorilla sets Host from the URL; a plain GET shows the check.
				h.Del("Host")
				resp, _ := send(t, http.MethodGet, "http://"+a.RegionalHost()+tc.path(a), map[string][]string{"Host": {host}, "Authorization": h["Authorization"]}, "")
				status = resp.StatusCode
			} else {
				conn, resp, err := dial(t, u, h)
				switch {
				case conn != nil:
					status = 101
				case resp != nil:
					status = resp.StatusCode
				default:
					t.Fatalf("dial: %v", err)
				}
			}
			if status != tc.want {
				t.Fatalf("status = %d, want %d", status, tc.want)
			}
			if got := lastRequest(t, a); got.Listener != "regional" || got.Reject != tc.reason {
				t.Errorf("recorded listener, reject = %q, %q, want regional, %q", got.Listener, got.Reject, tc.reason)
			}
		})
	}
}

func TestRedirectREST(t *testing.T) {
	a := start(t, Settings{RedirectREST: true})
	tok := a.Issue()
	h := map[string][]string{
		"Authorization":            {bearer(tok)},
		"Content-Type":             {"application/ssml+xml"},
		"X-Microsoft-OutputFormat": {FormatRiff16k},
	}
	resp, _ := send(t, http.MethodPost, a.URL()+"/tts/cognitiveservices/v1", h, SSML("Hello"))
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status = %d, want 307", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	want := "http://" + a.RegionalHost() + "/cognitiveservices/v1?Ocp-Apim-Custom-Domain-Name=" + url.QueryEscape(a.CustomHost())
	if loc != want {
		t.Fatalf("Location = %q, want %q", loc, want)
	}
	resp, body := send(t, http.MethodPost, loc, h, SSML("Hello"))
	if resp.StatusCode != 200 || len(body) != WAVHeaderBytes+AudioBytes("Hello") {
		t.Fatalf("after redirect: status %d, %d bytes, want 200, %d", resp.StatusCode, len(body), WAVHeaderBytes+AudioBytes("Hello"))
	}
}
