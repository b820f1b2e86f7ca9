package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/entraproxy/entraproxy/internal/fetchmeta"
	"github.com/entraproxy/entraproxy/internal/hosts"
)

// guard decides whether a request may spend the proxy's identity at all:
// browser protection, the Host check and, in gateway mode, inbound keys. It
// runs before any token is fetched or upstream dialed.
type guard struct {
	inboundKeys    [][sha256.Size]byte // digests: equal length, so comparing reveals no length
	allowedOrigins []string
	hosts          hosts.HostCheck // which Host values pass (DNS rebinding)
}

// check returns nil when r may reach the proxy at all (browser protection
// and the Host check), else the error to answer. What spends the identity
// must pass checkKey too; what the proxy answers itself (a CORS preflight,
// which browsers send without credentials) need not.
func (g *guard) check(r *http.Request) *apiError {
	if err := g.checkBrowser(r); err != nil {
		return err
	}
	if !g.hosts.AllowsRequest(r) {
		return hostNotAllowed(r.Host, g.hosts.Allowed())
	}
	return nil
}

// checkKey returns nil when no inbound key is required or r presents one
// of them, else the 401 to answer.
func (g *guard) checkKey(r *http.Request) *apiError {
	if len(g.inboundKeys) == 0 {
		return nil
	}
	presented, found := inboundKey(r)
	if !found {
		return &apiError{status: http.StatusUnauthorized, code: CodeInboundKeyRequired,
			message: "this gateway requires a key: send it as Ocp-Apim-Subscription-Key, api-key or Authorization: Bearer <key>, or on a WebSocket as the subprotocol openai-insecure-api-key.<key> (an SDK's key setting works)"}
	}
	if !g.validKey(presented) {
		return &apiError{status: http.StatusUnauthorized, code: CodeInboundKeyInvalid,
			message: "the key presented is not one of this gateway's ENTRAPROXY_INBOUND_KEYS"}
	}
	return nil
}

// checkBrowser keeps web pages from spending the identity, whatever kind of
// request they make. Browsers send Origin on CORS requests, POSTs and
// WebSocket upgrades (https://fetch.spec.whatwg.org/#origin-header); every
// Origin line must name an allowed origin, an empty or "null" one included.
// On plain GET and HEAD requests (<img>, <script>, <iframe>, navigations,
// no-cors fetch) they send no Origin, but they do send Fetch Metadata
// (https://www.w3.org/TR/fetch-metadata/): Sec-Fetch-Site says where the
// request comes from. Only "same-origin" (a page served by the proxy itself)
// and "none" (the user typed the URL or opened a bookmark) pass without an
// allowed Origin; "same-site" is refused too, since every port of
// 127.0.0.1 or localhost is the same site. Sec-Fetch-* are forbidden
// header names (https://fetch.spec.whatwg.org/#forbidden-request-header): a
// page cannot set or change them. SDKs and curl send neither header and are
// not affected.
func (g *guard) checkBrowser(r *http.Request) *apiError {
	origins := r.Header.Values("Origin")
	for _, o := range origins {
		if !g.originAllowed(o) {
			return &apiError{status: http.StatusForbidden, code: CodeOriginNotAllowed,
				message: "requests from browser origin " + quoteBounded(o) + " are refused; add it to ENTRAPROXY_ALLOWED_ORIGINS if this page should use the proxy"}
		}
	}
	if len(origins) > 0 {
		return nil // an allowed origin vouches for the request, cross-site or not
	}
	if site, cross := fetchmeta.CrossSite(r.Header); cross {
		return &apiError{status: http.StatusForbidden, code: CodeOriginNotAllowed,
			message: "a browser request from another site (Sec-Fetch-Site " + quoteBounded(site) + ") without an allowed Origin is refused, so that web pages cannot spend this proxy's identity; " +
				"a page listed in ENTRAPROXY_ALLOWED_ORIGINS must call with fetch or XMLHttpRequest in CORS mode, a crossorigin media element, or a WebSocket"}
	}
	return nil
}

func hostNotAllowed(host string, allowed []string) *apiError {
	return &apiError{status: http.StatusForbidden, code: CodeHostNotAllowed,
		message: "Host " + quoteBounded(host) + " is refused (DNS rebinding protection); connect to " + strings.Join(allowed, ", ") +
			", or list the name in ENTRAPROXY_ALLOWED_HOSTS"}
}

// originAllowed compares as browsers and RFC 6454 do: scheme and host
// without case, and a trailing "/" some users write is not part of it.
func (g *guard) originAllowed(origin string) bool {
	origin = strings.TrimSuffix(origin, "/")
	return slices.ContainsFunc(g.allowedOrigins, func(o string) bool {
		return strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// validKey compares the presented key's digest with every key's, in
// constant time: timing reveals neither which key matched, nor how much of
// one, nor its length.
func (g *guard) validKey(presented string) bool {
	d := sha256.Sum256([]byte(presented))
	ok := 0
	for _, k := range g.inboundKeys {
		ok |= subtle.ConstantTimeCompare(k[:], d[:])
	}
	return ok == 1
}

// inboundKey finds the key a client presented, in the places SDKs put one.
// The header forms win over the query.
func inboundKey(r *http.Request) (string, bool) {
	for _, name := range []string{"Ocp-Apim-Subscription-Key", "Api-Key"} {
		if v := r.Header.Get(name); v != "" {
			return v, true
		}
	}
	if v, ok := bearer(r.Header.Get("Authorization")); ok {
		return v, true
	}
	// The query in a fixed order of names, so the same request always
	// meets the same verdict.
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for _, want := range []string{"Ocp-Apim-Subscription-Key", "Api-Key", "Authorization"} {
		for name, vs := range q {
			if !strings.EqualFold(name, want) || len(vs) == 0 || vs[0] == "" {
				continue
			}
			if want != "Authorization" {
				return vs[0], true
			}
			if v, ok := bearer(vs[0]); ok {
				return v, true
			}
		}
	}
	// The browser realtime client's only place for a key.
	if isWebSocketUpgrade(r) {
		for _, v := range r.Header.Values("Sec-Websocket-Protocol") {
			for p := range strings.SplitSeq(v, ",") {
				p = strings.TrimSpace(p)
				if isCredentialSubprotocol(p) && len(p) > len(credentialSubprotocol) {
					return p[len(credentialSubprotocol):], true
				}
			}
		}
	}
	return "", false
}

func bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// quoteBounded quotes a client-supplied value for an error message, cut short
// so a hostile client cannot make the proxy echo kilobytes.
func quoteBounded(s string) string {
	const max = 100
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + strings.ToValidUTF8(strings.NewReplacer(`"`, `\"`, "\r", `\r`, "\n", `\n`).Replace(s), "?") + `"`
}
