package proxy

import (
	"net/http"
	"testing"
)

// A page listed in ENTRAPROXY_ALLOWED_ORIGINS gets a preflight answered by
// the proxy itself: nothing is forwarded, no token is spent.
func TestCORSPreflightAnsweredByProxy(t *testing.T) {
	const allowed = "http://localhost:3000"
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedOrigins = []string{allowed} })
	req := newHTTPRequest(t, http.MethodOptions, f.url("/openai/deployments/gpt/chat/completions?api-version=2024-10-21"), nil)
	req.Header.Set("Origin", allowed)
	req.Header.Set("Sec-Fetch-Site", "same-site")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "api-key,content-type")
	resp, body := f.do(t, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204 (body %s)", resp.StatusCode, body)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      allowed,
		"Access-Control-Allow-Methods":     "POST",
		"Access-Control-Allow-Headers":     "api-key,content-type",
		"Access-Control-Max-Age":           corsMaxAge,
		"Access-Control-Allow-Credentials": "",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0 (a preflight is never forwarded)", n)
	}
	if n := f.tokens.tokenCount(); n != 0 {
		t.Errorf("Token calls = %d, want 0", n)
	}
}

// A preflight from any other origin is refused like every request from it.
func TestCORSPreflightForeignOriginRefused(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AllowedOrigins = []string{"http://localhost:3000"} })
	req := newHTTPRequest(t, http.MethodOptions, f.url("/openai/v1/models"), nil)
	req.Header.Set("Origin", "http://evil.test")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, body := f.do(t, req)
	wantGuardOutcome(t, f, resp, body, http.StatusForbidden, "origin_not_allowed")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin = %q on a refusal, want none", got)
	}
}

// The allowed page may read the answer: the proxy names the page's origin,
// and the upstream's own CORS headers (Azure's policy, not this proxy's)
// do not reach the browser beside it.
func TestCORSAnswerNamesAllowedOrigin(t *testing.T) {
	const allowed = "http://localhost:3000"
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Apim-Request-Id", "r1")
		w.Write([]byte("ok"))
	})
	t.Run("allowed origin", func(t *testing.T) {
		f := newHTTPFixture(t, upstream, func(o *Options) { o.AllowedOrigins = []string{allowed} })
		req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
		req.Header.Set("Origin", allowed)
		resp, body := f.do(t, req)
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("status = %d, body %q; want 200 ok", resp.StatusCode, body)
		}
		if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != allowed {
			t.Errorf("Access-Control-Allow-Origin = %q, want exactly [%q]", got, allowed)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Access-Control-Allow-Credentials = %q, want none", got)
		}
		if got := resp.Header.Get("Vary"); got != "Origin" {
			t.Errorf("Vary = %q, want Origin", got)
		}
		if got := resp.Header.Get("Apim-Request-Id"); got != "r1" {
			t.Errorf("Apim-Request-Id = %q, want the upstream's r1", got)
		}
	})
	t.Run("no Origin (SDK)", func(t *testing.T) {
		f := newHTTPFixture(t, upstream, func(o *Options) { o.AllowedOrigins = []string{allowed} })
		resp, _ := f.get(t, "/openai/v1/models")
		if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 0 {
			t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
		}
	})
}

// An OPTIONS request that is not a preflight (no Access-Control-Request-
// Method) is an ordinary request and is forwarded.
func TestCORSPlainOptionsForwarded(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, nil)
	resp, body := f.do(t, newHTTPRequest(t, http.MethodOptions, f.url("/openai/v1/models"), nil))
	wantGuardOutcome(t, f, resp, body, 0, "")
}

// Browsers ask every origin they show a page from for /favicon.ico, the
// proxy's own 403 pages included: it is answered here, never forwarded.
func TestFaviconNeverForwarded(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, nil)
			req := newHTTPRequest(t, method, f.url("/favicon.ico"), nil)
			// What Chromium sends after showing the proxy's 403 page in a
			// popup a hostile page opened.
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("Sec-Fetch-Mode", "no-cors")
			req.Header.Set("Sec-Fetch-Dest", "image")
			resp, _ := f.do(t, req)
			if resp.StatusCode != http.StatusNoContent {
				t.Errorf("status = %d, want 204", resp.StatusCode)
			}
			if n := f.seen.count(); n != 0 {
				t.Errorf("upstream requests = %d, want 0", n)
			}
			if n := f.tokens.tokenCount(); n != 0 {
				t.Errorf("Token calls = %d, want 0", n)
			}
		})
	}
}
