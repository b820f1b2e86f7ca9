// Package admin owns the admin listener's HTTP surface: /healthz, /readyz and
// /metrics, and Wait, the client side of /readyz used by `entraproxy wait`.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/entraproxy/entraproxy/internal/fetchmeta"
	"github.com/entraproxy/entraproxy/internal/hosts"
)

// Handler serves the admin endpoints:
//
//   - /healthz: 200 {"status":"ok"} for as long as the process serves; a
//     liveness probe must not fail because Entra ID is down, or the
//     orchestrator would restart a proxy that cannot do better after a restart.
//   - /readyz: 200 {"status":"ready"} when ready returns nil, else 503
//     {"status":"not_ready","reason":"<ready's error>"}.
//   - /metrics: gatherer in the Prometheus text (or negotiated) format. With a
//     nil gatherer /metrics is 404.
//
// Only GET and HEAD are served: other methods get 405 with Allow: GET, HEAD
// and every other path 404, both in the JSON error envelope the proxy uses
// ({"error":{"code":"method_not_allowed" or "not_found","message":...}}), so
// a script reads every answer of both listeners the same way. ready must
// not be nil; it is called once per /readyz request and reports why the
// proxy is not ready in a short phrase such as "starting: no token yet",
// "token_unavailable: ..." or "draining".
func Handler(ready func() error, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", getOnly(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, status{Status: "ok"})
	}))
	mux.Handle("/readyz", getOnly(func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, status{Status: "not_ready", Reason: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, status{Status: "ready"})
	}))
	if gatherer != nil {
		mux.Handle("/metrics", getOnly(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
			// A collector that fails (say, the process collector on an
			// unusual kernel) must not hide every other metric.
			ErrorHandling: promhttp.ContinueOnError,
			// Scrapes are cheap, but a stuck scraper must not pile up work.
			MaxRequestsInFlight: 4,
		}).ServeHTTP))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such admin endpoint; this listener serves /healthz, /readyz and /metrics")
	})
	return mux
}

// getOnly serves GET and HEAD with h, and answers other methods 405.
// (A ServeMux "GET /path" pattern would answer them itself, in plain text.)
func getOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "the admin endpoints answer GET and HEAD only")
			return
		}
		h(w, r)
	})
}

// Guard refuses, with 403 in the JSON error envelope the proxy uses, what
// a web page could send to read the admin endpoints, and passes the rest
// to h:
//
//   - a cross-site browser request (fetchmeta.CrossSite: Sec-Fetch-Site
//     present and neither same-origin nor none), on every address, as
//     origin_not_allowed. A page on any site could otherwise tell ready
//     from not ready by the load and error events of an <img> or <script>
//     pointed at /readyz. Kubelet probes and Prometheus scrapes send no
//     Sec-Fetch-Site and pass. ENTRAPROXY_ALLOWED_ORIGINS does not apply
//     here: no page needs the admin endpoints;
//   - a Host header allowed does not accept (config's AdminHostCheck: on a
//     loopback listener the loopback names), as host_not_allowed. This
//     keeps a page that rebinds its own host name to 127.0.0.1 (DNS
//     rebinding), which the browser then sends as same-origin, from
//     reading /readyz and /metrics.
func Guard(allowed hosts.HostCheck, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if site, cross := fetchmeta.CrossSite(r.Header); cross {
			writeError(w, http.StatusForbidden, "origin_not_allowed",
				fmt.Sprintf("a browser request from another site (Sec-Fetch-Site %.40q) is refused on the admin listener, so that web pages cannot probe this proxy's state; probes and scrapers send no Sec-Fetch-Site", site))
			return
		}
		if !allowed.AllowsRequest(r) {
			writeError(w, http.StatusForbidden, "host_not_allowed",
				fmt.Sprintf("Host %.100q is refused on this loopback admin listener (DNS rebinding protection); connect to %s",
					r.Host, strings.Join(allowed.Allowed(), ", ")))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// status is the body of /healthz and /readyz.
type status struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // cannot happen for strings
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Probes and load balancers must see the state now, never a cached one.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

// writeError answers in the Azure error envelope the proxy's own errors use,
// {"error":{"code":"...","message":"..."}}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
