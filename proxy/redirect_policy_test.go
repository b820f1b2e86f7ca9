package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The redirect rule for answers the proxy cannot follow: no 3xx but 304 ever reaches
// the client, on HTTP or on a WebSocket handshake.
func TestUnfollowableRedirectsNeverPass(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		location string
		want     int
		code     string
	}{
		{"301 without Location", http.StatusMovedPermanently, "", http.StatusBadGateway, "redirect_not_allowed"},
		{"307 without Location", http.StatusTemporaryRedirect, "", http.StatusBadGateway, "redirect_not_allowed"},
		{"300 with Location", http.StatusMultipleChoices, "/elsewhere", http.StatusBadGateway, "redirect_not_allowed"},
		{"305 use proxy", http.StatusUseProxy, "http://127.0.0.1:1/", http.StatusBadGateway, "redirect_not_allowed"},
	}
	answer := func(status int, location string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if location != "" {
				w.Header().Set("Location", location)
			}
			w.WriteHeader(status)
		})
	}
	for _, tc := range tests {
		t.Run("http "+tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, answer(tc.status, tc.location), nil)
			resp, body := f.get(t, "/x")
			if resp.StatusCode != tc.want || resp.Header.Get("Location") != "" {
				t.Fatalf("status = %d, Location %q; want %d and none (body %s)", resp.StatusCode, resp.Header.Get("Location"), tc.want, body)
			}
			wantErrorBody(t, body, tc.code)
		})
		t.Run("websocket "+tc.name, func(t *testing.T) {
			up := newTestUpstream(t, answer(tc.status, tc.location))
			env := newWSFixture(t, up, nil)
			resp, body := env.rawUpgrade(t, http.MethodGet, "/ws", nil)
			if resp.Header.Get("Location") != "" {
				t.Errorf("Location %q reached the client", resp.Header.Get("Location"))
			}
			wsWantError(t, resp, body, tc.want, tc.code)
		})
	}
}

// 304 Not Modified is a cache answer, not a redirect: it passes.
func TestNotModifiedPasses(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	}), nil)
	resp, _ := f.get(t, "/cognitiveservices/voices/list")
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("ETag") != `"v1"` {
		t.Errorf("status = %d, ETag %q; want %d and the upstream's ETag", resp.StatusCode, resp.Header.Get("ETag"), http.StatusNotModified)
	}
}

func wantErrorBody(t *testing.T, body, code string) {
	t.Helper()
	if want := `"code":` + strconv.Quote(code); !strings.Contains(body, want) {
		t.Errorf("body = %s, want the JSON envelope with %s", body, want)
	}
}

// A redirect's Location is followed without the credential parameters it
// may carry, on HTTP and on a WebSocket handshake alike: the one credential
// the next hop gets is the proxy's Authorization.
func TestRedirectLocationLosesCredentials(t *testing.T) {
	const query = "api-key=from-location&X-ConnectionId=abc&Authorization=Bearer%20x"
	redirect := func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, base+"/landed?"+query+"#frag", http.StatusFound)
		})
	}
	t.Run("http", func(t *testing.T) {
		target := newRedirectTarget(t)
		f := newHTTPFixture(t, redirect(target.srv.URL), func(o *Options) { o.RedirectHosts = []string{target.host()} })
		if resp, body := f.get(t, "/x"); resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d (body %s), want 200", resp.StatusCode, body)
		}
		got := target.seen.last(t)
		if got.rawQuery != "X-ConnectionId=abc" {
			t.Errorf("redirect target query = %q, want %q", got.rawQuery, "X-ConnectionId=abc")
		}
		wantOnlyProxyCredential(t, got, "Bearer "+plantedToken)
	})
	t.Run("websocket", func(t *testing.T) {
		second := newTestUpstream(t, newWSAcceptor(t))
		env := newWSFixture(t, newTestUpstream(t, redirect(second.URL)), func(o *Options) { o.RedirectHosts = []string{second.host} })
		env.dial(t, "/x", nil)
		seen := second.seen.all()
		if len(seen) != 1 || seen[0].rawQuery != "X-ConnectionId=abc" {
			t.Fatalf("redirect target handshakes = %+v, want one with query %q", seen, "X-ConnectionId=abc")
		}
	})
}
