// Package fetchmeta owns how entraproxy tells a request a web page made on
// behalf of another site from one an app made: Fetch Metadata's
// Sec-Fetch-Site header (https://www.w3.org/TR/fetch-metadata/). The
// proxy's browser protection and the admin listener both decide through it.
package fetchmeta

import "net/http"

// CrossSite reports whether h carries a Sec-Fetch-Site line that is
// neither "same-origin" (a page served by the listener itself) nor "none"
// (the user typed the URL or opened a bookmark), and returns that value
// for the message. Browsers send the header on every request
// (https://fetch.spec.whatwg.org/#sec-fetch-site-header), Origin or not:
// on <img>, <script>, <iframe>, navigations and no-cors fetch as well as
// on CORS requests. "same-site" counts as cross-site here, since every
// port of 127.0.0.1 or localhost is the same site. Sec-Fetch-* are
// forbidden header names (https://fetch.spec.whatwg.org/#forbidden-request-header):
// a page can neither set nor change them. Every line counts, in exact
// lower case as browsers write the values; an empty or unknown value is
// cross-site. SDKs, curl, kubelet probes and Prometheus send none.
func CrossSite(h http.Header) (site string, cross bool) {
	for _, site := range h.Values("Sec-Fetch-Site") {
		if site != "same-origin" && site != "none" {
			return site, true
		}
	}
	return "", false
}
