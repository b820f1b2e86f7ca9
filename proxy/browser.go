package proxy

import (
	"net/http"
	"strings"
)

// What the proxy answers browsers itself, without spending a token.

// isFavicon reports whether r asks for /favicon.ico. Browsers ask for it on
// their own for every page they show from an origin: a hostile page that
// opens the proxy in a popup gets a 403 page there, and the browser then
// asks for the icon as a same-origin request, which browser protection lets
// through (Sec-Fetch-Site: same-origin). Azure's APIs have no icon, so
// forwarding it would only spend the identity on a 404.
func isFavicon(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.EscapedPath() == "/favicon.ico"
}

// answerNoFavicon says there is no icon, and that it is worth remembering
// for a day.
func answerNoFavicon(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}

// CORS for the pages in ENTRAPROXY_ALLOWED_ORIGINS. The browser talks to
// the proxy, so which pages may read its answers is the proxy's decision:
// the guard has already refused every other origin, and Azure's own CORS
// answers (if any) name Azure's policy, not this one. The rules are the
// Fetch standard's (https://fetch.spec.whatwg.org/#http-cors-protocol); no
// credentials are involved (the proxy adds the only one), so
// Access-Control-Allow-Credentials is never sent.

// corsMaxAge is how long, in seconds, a browser may reuse a preflight
// answer; Chromium caps it at 2 hours.
const corsMaxAge = "600"

// isPreflight reports whether r is a CORS preflight: OPTIONS with the
// method the page is about to use.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// answerPreflight grants a preflight from an allowed origin (the guard
// checked it) for the method and headers asked for. It is never forwarded:
// it spends no token, and the upstream may not answer OPTIONS at all.
func answerPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Set("Access-Control-Allow-Methods", r.Header.Get("Access-Control-Request-Method"))
	if asked := r.Header.Values("Access-Control-Request-Headers"); len(asked) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(asked, ","))
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// allowOrigin lets the page at r's Origin, which the guard allowed, read
// the answer: its status, body and headers.
func allowOrigin(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "*")
	h.Add("Vary", "Origin")
}

// dropUpstreamCORS removes the upstream's Access-Control-* answer headers,
// which would otherwise repeat or contradict the proxy's (two
// Access-Control-Allow-Origin lines fail the browser's check).
func dropUpstreamCORS(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}
