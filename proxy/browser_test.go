package proxy

import (
	"errors"
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

// In gateway mode a page on an allowed origin must be able to call at all:
// browsers send no credentials on a preflight
// (https://fetch.spec.whatwg.org/#cors-preflight-fetch), so a preflight from
// an allowed origin is answered before the key is asked for (it spends
// nothing and reaches no upstream; the request it announces must still
// present the key). And the proxy's own refusals to an allowed origin name
// it in Access-Control-Allow-Origin, so the page can read the JSON error
// instead of an opaque network error. Other origins get no CORS headers and
// their preflights stay refused.
func TestCORSGatewayMode(t *testing.T) {
	const allowed = "http://localhost:3000"
	newGateway := func(t *testing.T) *fixture {
		return newHTTPFixture(t, upstreamOK, func(o *Options) {
			o.AllowedOrigins = []string{allowed}
			o.InboundKeys = []string{plantedKey}
		})
	}
	request := func(t *testing.T, f *fixture, method, origin, key string) *http.Request {
		req := newHTTPRequest(t, method, f.url("/openai/deployments/gpt/chat/completions?api-version=2024-10-21"), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if key != "" {
			req.Header.Set("Api-Key", key)
		}
		return req
	}
	wantCORS := func(t *testing.T, resp *http.Response, origin string) {
		t.Helper()
		if got := resp.Header.Values("Access-Control-Allow-Origin"); origin == "" && len(got) != 0 || origin != "" && (len(got) != 1 || got[0] != origin) {
			t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, origin)
		}
		if _, named := withoutToken(resp.Header.Values("Vary"), "Origin"); origin != "" && !named {
			t.Errorf("Vary = %q, want Origin among them", resp.Header.Values("Vary"))
		}
	}

	t.Run("preflight from the allowed origin", func(t *testing.T) {
		f := newGateway(t)
		req := request(t, f, http.MethodOptions, allowed, "")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "api-key,content-type")
		resp, body := f.do(t, req)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status = %d, want 204 (body %s)", resp.StatusCode, body)
		}
		wantCORS(t, resp, allowed)
		if got := resp.Header.Get("Access-Control-Allow-Headers"); got != "api-key,content-type" {
			t.Errorf("Access-Control-Allow-Headers = %q, want the ones asked for", got)
		}
		if n, tokens := f.seen.count(), f.tokens.tokenCount(); n != 0 || tokens != 0 {
			t.Errorf("upstream requests = %d, Token calls = %d; want 0, 0", n, tokens)
		}
	})
	for _, c := range []struct {
		name, key, code string
	}{
		{"no key", "", CodeInboundKeyRequired},
		{"wrong key", plantedWrong, CodeInboundKeyInvalid},
	} {
		t.Run(c.name+" from the allowed origin: a readable 401", func(t *testing.T) {
			f := newGateway(t)
			resp, body := f.do(t, request(t, f, http.MethodPost, allowed, c.key))
			wantGuardOutcome(t, f, resp, body, http.StatusUnauthorized, c.code)
			wantCORS(t, resp, allowed)
		})
	}
	t.Run("the key from the allowed origin", func(t *testing.T) {
		f := newGateway(t)
		resp, body := f.do(t, request(t, f, http.MethodPost, allowed, plantedKey))
		wantGuardOutcome(t, f, resp, body, 0, "")
		wantCORS(t, resp, allowed)
	})
	t.Run("the proxy's 503 to the allowed origin", func(t *testing.T) {
		f := newGateway(t)
		f.tokens.setErr(errors.New("token endpoint down"))
		resp, body := f.do(t, request(t, f, http.MethodPost, allowed, plantedKey))
		wantProxyError(t, resp, body, http.StatusServiceUnavailable, CodeTokenUnavailable)
		wantCORS(t, resp, allowed)
	})
	t.Run("shutting down, to the allowed origin", func(t *testing.T) {
		f := newGateway(t)
		if err := f.proxy.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		resp, body := f.do(t, request(t, f, http.MethodPost, allowed, plantedKey))
		wantProxyError(t, resp, body, http.StatusServiceUnavailable, CodeShuttingDown)
		wantCORS(t, resp, allowed)
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		f := newGateway(t)
		req := request(t, f, http.MethodOptions, "http://evil.test", "")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, body := f.do(t, req)
		wantGuardOutcome(t, f, resp, body, http.StatusForbidden, CodeOriginNotAllowed)
		wantCORS(t, resp, "")
	})
	t.Run("another origin, with the key", func(t *testing.T) {
		f := newGateway(t)
		resp, body := f.do(t, request(t, f, http.MethodPost, "http://evil.test", plantedKey))
		wantGuardOutcome(t, f, resp, body, http.StatusForbidden, CodeOriginNotAllowed)
		wantCORS(t, resp, "")
	})
	t.Run("the allowed origin and another one", func(t *testing.T) {
		f := newGateway(t)
		req := request(t, f, http.MethodOptions, allowed, "")
		req.Header.Add("Origin", "http://evil.test")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, body := f.do(t, req)
		wantGuardOutcome(t, f, resp, body, http.StatusForbidden, CodeOriginNotAllowed)
		wantCORS(t, resp, "")
	})
}
