package proxy

import (
	"net/http"
	"slices"
	"strings"
)

// allowedMethods is the Allow header of a 405: RFC 9110 section 15.5.6 asks
// for one, and these are the methods Azure's REST APIs use.
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// isTraceMethod reports whether method asks the server to echo the request:
// TRACE (RFC 9110 section 9.3.8) or Microsoft IIS's TRACK. Methods are
// case-sensitive, but some servers are not, so any letter case counts.
func isTraceMethod(method string) bool {
	return strings.EqualFold(method, "TRACE") || strings.EqualFold(method, "TRACK")
}

// methodOverrideHeaders name the method a server should use instead of the
// request line's: ASP.NET's HttpMethodOverride middleware and many other
// frameworks read X-HTTP-Method-Override, OData and older Microsoft APIs
// X-HTTP-Method, others X-Method-Override.
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// overridesToTrace reports whether a method-override header names TRACE or
// TRACK (on any of its lines, in a list, in any letter case): such a request
// is a TRACE to a server that honours the header. The names are compared
// without case too, for a Header not built by net/http's server.
func overridesToTrace(h http.Header) bool {
	for k, vs := range h {
		if !slices.ContainsFunc(methodOverrideHeaders[:], func(name string) bool { return strings.EqualFold(k, name) }) {
			continue
		}
		for _, v := range vs {
			for m := range strings.SplitSeq(v, ",") {
				if isTraceMethod(strings.TrimSpace(m)) {
					return true
				}
			}
		}
	}
	return false
}

// declineH2C removes an offer to switch to HTTP/2 in cleartext (Upgrade: h2c
// with HTTP2-Settings, RFC 7540 section 3.2; curl --http2 on an http:// URL
// sends it). A server that does not take an offer answers as if it had not
// been made (RFC 9110 section 7.8), as a plain Go server does; forwarded, it
// would ask the upstream to switch instead. Other upgrade tokens stay for the
// caller to judge.
func declineH2C(h http.Header) {
	h.Del("Http2-Settings") // connection-specific (RFC 7540 section 3.2.1)
	upgrades, declined := withoutToken(h.Values("Upgrade"), "h2c")
	if !declined {
		return
	}
	if len(upgrades) > 0 {
		h["Upgrade"] = []string{strings.Join(upgrades, ", ")}
		return
	}
	h.Del("Upgrade")
	options, _ := withoutToken(h.Values("Connection"), "upgrade")
	options, _ = withoutToken(options, "http2-settings")
	if len(options) == 0 {
		h.Del("Connection")
	} else {
		h["Connection"] = []string{strings.Join(options, ", ")}
	}
}

// withoutToken splits comma-separated header values into tokens and returns
// those not equal to token (any case), and whether any was.
func withoutToken(values []string, token string) (kept []string, removed bool) {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			switch {
			case t == "":
			case strings.EqualFold(t, token):
				removed = true
			default:
				kept = append(kept, t)
			}
		}
	}
	return kept, removed
}
