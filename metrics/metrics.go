// Package metrics owns entraproxy's Prometheus collectors: their names, labels
// and the small set of events that move them.
//
// Every label comes from a fixed, small set (protocol, status code, direction,
// result, auth form), never from a request's path, query or headers, so no
// client can grow the number of series.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values the callers pass. Other values are accepted (a typo must not
// panic a proxy) but these are the ones the README documents.
const (
	ProtocolHTTP      = "http"
	ProtocolWebSocket = "websocket"

	DirectionClientToUpstream = "client_to_upstream"
	DirectionUpstreamToClient = "upstream_to_client"

	ResultSuccess = "success"
	ResultFailure = "failure"

	FormBearer = "bearer"
	FormAAD    = "aad"
)

// BuildInfo is exported as the labels of entraproxy_build_info.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string
}

// Metrics holds entraproxy's collectors. A nil *Metrics is valid: every method
// is then a no-op, so packages can be tested without a registry.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	sessionsActive  prometheus.Gauge
	frames          *prometheus.CounterVec
	bytes           *prometheus.CounterVec
	tokenRefreshes  *prometheus.CounterVec
	tokenExpiry     prometheus.Gauge
	redirects       prometheus.Counter
	authRetries     *prometheus.CounterVec
	tlsReloads      *prometheus.CounterVec
	tlsExpiry       prometheus.Gauge
}

// durationBuckets span what a proxy in front of Azure AI sees: a cached 401
// in a millisecond up to a long speech synthesis or streamed completion.
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New creates entraproxy's collectors and registers them, with the Go and
// process collectors and entraproxy_build_info, on reg. It panics if reg
// already holds any of them (as prometheus.MustRegister does): that is a
// programming error, found by the first test that runs it.
func New(reg prometheus.Registerer, build BuildInfo) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_requests_total",
			Help: "HTTP requests and WebSocket sessions handled, by protocol and the status code returned to the client.",
		}, []string{"protocol", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "entraproxy_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its response (for WebSocket, the whole session).",
			Buckets: durationBuckets,
		}, []string{"protocol"}),
		sessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "entraproxy_websocket_sessions_active",
			Help: "WebSocket sessions currently open.",
		}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_websocket_frames_total",
			Help: "WebSocket frames forwarded, by direction.",
		}, []string{"direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_websocket_bytes_total",
			Help: "WebSocket payload bytes forwarded, by direction.",
		}, []string{"direction"}),
		tokenRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_token_refreshes_total",
			Help: "Entra ID token fetches, by result.",
		}, []string{"result"}),
		tokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "entraproxy_token_expiry_timestamp_seconds",
			Help: "Unix time at which the token held now expires; 0 before the first token.",
		}),
		redirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "entraproxy_redirects_followed_total",
			Help: "Upstream redirects followed to an allowed host.",
		}),
		authRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_auth_retries_total",
			Help: "Requests replayed after an upstream 401, by the Authorization form used for the retry.",
		}, []string{"form"}),
		tlsReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "entraproxy_tls_certificate_reloads_total",
			Help: "Reads of changed TLS certificate files, by result; on failure the previous certificate is still served.",
		}, []string{"result"}),
		tlsExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "entraproxy_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the TLS certificate served now expires; 0 when the proxy serves plain HTTP.",
		}),
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "entraproxy_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version":   build.Version,
			"commit":    build.Commit,
			"goversion": build.GoVersion,
		},
	})
	info.Set(1)

	// Pre-create the series of the fixed label sets, so dashboards and alerts
	// see 0 rather than "no data" before the first event.
	for _, p := range []string{ProtocolHTTP, ProtocolWebSocket} {
		m.requestDuration.WithLabelValues(p)
	}
	for _, d := range []string{DirectionClientToUpstream, DirectionUpstreamToClient} {
		m.frames.WithLabelValues(d)
		m.bytes.WithLabelValues(d)
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		m.tokenRefreshes.WithLabelValues(r)
		m.tlsReloads.WithLabelValues(r)
	}
	for _, f := range []string{FormBearer, FormAAD} {
		m.authRetries.WithLabelValues(f)
	}

	reg.MustRegister(
		m.requests, m.requestDuration, m.sessionsActive, m.frames, m.bytes,
		m.tokenRefreshes, m.tokenExpiry, m.redirects, m.authRetries, info,
		m.tlsReloads, m.tlsExpiry,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveRequest records one finished HTTP request or WebSocket session with
// the status code the client got and how long it took.
func (m *Metrics) ObserveRequest(protocol string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(protocol, strconv.Itoa(code)).Inc()
	m.requestDuration.WithLabelValues(protocol).Observe(d.Seconds())
}

// SessionStarted counts a WebSocket session as open.
func (m *Metrics) SessionStarted() {
	if m == nil {
		return
	}
	m.sessionsActive.Inc()
}

// SessionEnded counts a WebSocket session as closed.
func (m *Metrics) SessionEnded() {
	if m == nil {
		return
	}
	m.sessionsActive.Dec()
}

// AddFrames adds forwarded WebSocket frames and their payload bytes in one
// direction (DirectionClientToUpstream or DirectionUpstreamToClient).
func (m *Metrics) AddFrames(direction string, frames, bytes int) {
	if m == nil {
		return
	}
	m.frames.WithLabelValues(direction).Add(float64(frames))
	m.bytes.WithLabelValues(direction).Add(float64(bytes))
}

// TokenRefreshed records a token fetch (ResultSuccess or ResultFailure). On
// success expiresOn becomes entraproxy_token_expiry_timestamp_seconds; a
// failure leaves the expiry of the token still held.
func (m *Metrics) TokenRefreshed(result string, expiresOn time.Time) {
	if m == nil {
		return
	}
	m.tokenRefreshes.WithLabelValues(result).Inc()
	if result == ResultSuccess {
		m.tokenExpiry.Set(float64(expiresOn.UnixNano()) / 1e9)
	}
}

// RedirectFollowed counts one upstream redirect followed.
func (m *Metrics) RedirectFollowed() {
	if m == nil {
		return
	}
	m.redirects.Inc()
}

// AuthRetry counts a request replayed after an upstream 401 with the given
// Authorization form (FormBearer or FormAAD).
func (m *Metrics) AuthRetry(form string) {
	if m == nil {
		return
	}
	m.authRetries.WithLabelValues(form).Inc()
}

// TLSCertificateServed records the expiry of the TLS certificate served from
// now on.
func (m *Metrics) TLSCertificateServed(notAfter time.Time) {
	if m == nil {
		return
	}
	m.tlsExpiry.Set(float64(notAfter.UnixNano()) / 1e9)
}

// TLSCertificateReloaded counts a read of changed certificate files
// (ResultSuccess or ResultFailure); notAfter is the expiry of the certificate
// served after it, the new one or, on failure, the one kept.
func (m *Metrics) TLSCertificateReloaded(result string, notAfter time.Time) {
	if m == nil {
		return
	}
	m.tlsReloads.WithLabelValues(result).Inc()
	m.TLSCertificateServed(notAfter)
}
