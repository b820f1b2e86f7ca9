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
// Only GET and HEAD are served (405 with Allow otherwise); every other path is
// 404. ready must not be nil; it is called once per /readyz request and
// reports why the proxy is not ready in a short phrase such as
// "starting: no token yet", "token_unavailable: ..." or "draining".
func Handler(ready func() error, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	// A "GET" pattern also matches HEAD; ServeMux answers other methods with
	// 405 and an Allow header, and unknown paths with 404.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, status{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, status{Status: "not_ready", Reason: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, status{Status: "ready"})
	})
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
			// A collector that fails (say, the process collector on an
			// unusual kernel) must not hide every other metric.
			ErrorHandling: promhttp.ContinueOnError,
			// Scrapes are cheap, but a stuck scraper must not pile up work.
			MaxRequestsInFlight: 4,
		}))
	}
	return mux
}

// GuardHost refuses requests whose Host header allowed does not accept
// with 403 and the JSON error envelope the proxy uses,
// {"error":{"code":"host_not_allowed",...}}, and passes the rest to h.
// On a loopback admin listener (config's AdminHostCheck) this keeps a web
// page that rebinds its own host name to 127.0.0.1 (DNS rebinding) from
// reading /readyz and /metrics.
func GuardHost(allowed hosts.HostCheck, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowed.Allows(r.Host) {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := json.Marshal(map[string]any{"error": map[string]string{
			"code": "host_not_allowed",
			"message": fmt.Sprintf("Host %.100q is refused on this loopback admin listener (DNS rebinding protection); connect to %s",
				r.Host, strings.Join(allowed.Allowed(), ", ")),
		}})
		hdr := w.Header()
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusForbidden)
		w.Write(append(body, '\n'))
	})
}

// status is the body of /healthz and /readyz.
type status struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v status) {
	body, err := json.Marshal(v)
	if err != nil { // cannot happen for two strings
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
