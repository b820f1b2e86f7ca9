package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/entraproxy/entraproxy/metrics"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.BuildInfo{Version: "v1.2.3", Commit: "abc123", GoVersion: "go1.26.8"})
	return m, reg
}

// value gathers reg and returns the value of the one series of family name
// whose labels include want. It fails the test when there is no such series.
func value(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestEachMetricMoves(t *testing.T) {
	expiry := time.Unix(1_900_000_000, 0)
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		event  func(*metrics.Metrics)
		want   float64
	}{
		{"requests total", "entraproxy_requests_total", map[string]string{"protocol": "http", "code": "200"},
			func(m *metrics.Metrics) { m.ObserveRequest(metrics.ProtocolHTTP, 200, 30*time.Millisecond) }, 1},
		{"request duration", "entraproxy_request_duration_seconds", map[string]string{"protocol": "websocket"},
			func(m *metrics.Metrics) { m.ObserveRequest(metrics.ProtocolWebSocket, 101, 2*time.Second) }, 1},
		{"sessions started", "entraproxy_websocket_sessions_active", nil,
			func(m *metrics.Metrics) { m.SessionStarted(); m.SessionStarted() }, 2},
		{"sessions ended", "entraproxy_websocket_sessions_active", nil,
			func(m *metrics.Metrics) { m.SessionStarted(); m.SessionStarted(); m.SessionEnded() }, 1},
		{"frames", "entraproxy_websocket_frames_total", map[string]string{"direction": "client_to_upstream"},
			func(m *metrics.Metrics) { m.AddFrames(metrics.DirectionClientToUpstream, 3, 4096) }, 3},
		{"bytes", "entraproxy_websocket_bytes_total", map[string]string{"direction": "upstream_to_client"},
			func(m *metrics.Metrics) { m.AddFrames(metrics.DirectionUpstreamToClient, 2, 512) }, 512},
		{"token refresh success", "entraproxy_token_refreshes_total", map[string]string{"result": "success"},
			func(m *metrics.Metrics) { m.TokenRefreshed(metrics.ResultSuccess, expiry) }, 1},
		{"token refresh failure", "entraproxy_token_refreshes_total", map[string]string{"result": "failure"},
			func(m *metrics.Metrics) { m.TokenRefreshed(metrics.ResultFailure, time.Time{}) }, 1},
		{"token expiry", "entraproxy_token_expiry_timestamp_seconds", nil,
			func(m *metrics.Metrics) { m.TokenRefreshed(metrics.ResultSuccess, expiry) }, 1_900_000_000},
		{"token expiry kept on failure", "entraproxy_token_expiry_timestamp_seconds", nil,
			func(m *metrics.Metrics) {
				m.TokenRefreshed(metrics.ResultSuccess, expiry)
				m.TokenRefreshed(metrics.ResultFailure, time.Time{})
			}, 1_900_000_000},
		{"redirects", "entraproxy_redirects_followed_total", nil,
			func(m *metrics.Metrics) { m.RedirectFollowed() }, 1},
		{"auth retries aad", "entraproxy_auth_retries_total", map[string]string{"form": "aad"},
			func(m *metrics.Metrics) { m.AuthRetry(metrics.FormAAD) }, 1},
		{"auth retries bearer", "entraproxy_auth_retries_total", map[string]string{"form": "bearer"},
			func(m *metrics.Metrics) { m.AuthRetry(metrics.FormBearer) }, 1},
		{"tls certificate served", "entraproxy_tls_certificate_expiry_timestamp_seconds", nil,
			func(m *metrics.Metrics) { m.TLSCertificateServed(expiry) }, 1_900_000_000},
		{"tls reload success", "entraproxy_tls_certificate_reloads_total", map[string]string{"result": "success"},
			func(m *metrics.Metrics) { m.TLSCertificateReloaded(metrics.ResultSuccess, expiry) }, 1},
		{"tls reload failure keeps the served expiry", "entraproxy_tls_certificate_expiry_timestamp_seconds", nil,
			func(m *metrics.Metrics) {
				m.TLSCertificateServed(expiry)
				m.TLSCertificateReloaded(metrics.ResultFailure, expiry)
			}, 1_900_000_000},
		{"build info", "entraproxy_build_info", map[string]string{"version": "v1.2.3", "commit": "abc123", "goversion": "go1.26.8"},
			func(*metrics.Metrics) {}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			tc.event(m)
			if got := value(t, reg, tc.metric, tc.labels); got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
}

// Before any event, the fixed label sets already read 0, so an alert such as
// rate(entraproxy_token_refreshes_total{result="failure"}[5m]) > 0 has data.
func TestSeriesExistAtZero(t *testing.T) {
	_, reg := newMetrics(t)
	for _, s := range []struct {
		metric string
		labels map[string]string
	}{
		{"entraproxy_token_refreshes_total", map[string]string{"result": "failure"}},
		{"entraproxy_auth_retries_total", map[string]string{"form": "aad"}},
		{"entraproxy_websocket_frames_total", map[string]string{"direction": "upstream_to_client"}},
		{"entraproxy_redirects_followed_total", nil},
		{"entraproxy_tls_certificate_reloads_total", map[string]string{"result": "failure"}},
		{"entraproxy_websocket_sessions_active", nil},
	} {
		if got := value(t, reg, s.metric, s.labels); got != 0 {
			t.Errorf("%s%v = %v, want 0", s.metric, s.labels, got)
		}
	}
}

// The API takes no path, query or header, so 1,000 requests to distinct paths
// (which is what the proxy sees from a scanner or a buggy client) reach the
// metrics as 1,000 identical calls and cannot add series.
func TestDistinctPathsDoNotAddSeries(t *testing.T) {
	m, reg := newMetrics(t)
	m.ObserveRequest(metrics.ProtocolHTTP, 404, time.Millisecond)
	after1 := countSeries(t, reg)
	for range 1000 { // say /scan/0?q=0 ... /scan/999?q=999: the API has no place for them
		m.ObserveRequest(metrics.ProtocolHTTP, 404, time.Millisecond)
	}
	if got := countSeries(t, reg); got != after1 {
		t.Errorf("series after 1,000 requests = %d, want %d (as after 1)", got, after1)
	}
	if got := testutil.CollectAndCount(reg, "entraproxy_requests_total"); got != 1 {
		t.Errorf("entraproxy_requests_total series = %d, want 1", got)
	}
	if got := value(t, reg, "entraproxy_requests_total", map[string]string{"code": "404"}); got != 1001 {
		t.Errorf("entraproxy_requests_total{code=404} = %v, want 1001", got)
	}
}

func countSeries(t *testing.T, reg prometheus.Gatherer) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	n := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "entraproxy_") {
			n += len(mf.GetMetric())
		}
	}
	return n
}

func TestNoLabelTakesRequestData(t *testing.T) {
	m, reg := newMetrics(t)
	// Move everything, so vectors have series to show their labels.
	m.ObserveRequest(metrics.ProtocolHTTP, 200, time.Millisecond)
	m.SessionStarted()
	m.AddFrames(metrics.DirectionClientToUpstream, 1, 1)
	m.TokenRefreshed(metrics.ResultSuccess, time.Now())
	m.RedirectFollowed()
	m.AuthRetry(metrics.FormBearer)
	m.TLSCertificateReloaded(metrics.ResultSuccess, time.Now())

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	allowed := map[string]bool{"protocol": true, "code": true, "direction": true, "result": true, "form": true,
		"version": true, "commit": true, "goversion": true}
	forbidden := []string{"path", "url", "uri", "query", "header", "host", "origin"}
	var own int
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "entraproxy_") {
			continue
		}
		own++
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				l := strings.ToLower(lp.GetName())
				for _, f := range forbidden {
					if strings.Contains(l, f) {
						t.Errorf("%s has label %q, which could hold request data", name, lp.GetName())
					}
				}
				if !allowed[l] {
					t.Errorf("%s has label %q, not one of the documented fixed-set labels", name, lp.GetName())
				}
			}
		}
	}
	if own != 12 {
		t.Errorf("entraproxy_ families = %d, want 12", own)
	}
}

func TestGoAndProcessCollectorsRegistered(t *testing.T) {
	_, reg := newMetrics(t)
	if n := testutil.CollectAndCount(reg, "go_goroutines"); n != 1 {
		t.Errorf("go_goroutines series = %d, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "entraproxy_") && !strings.HasPrefix(mf.GetName(), "go_") &&
			!strings.HasPrefix(mf.GetName(), "process_") {
			t.Errorf("unexpected family %s", mf.GetName())
		}
	}
}

func TestNilReceiverIsNoOp(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveRequest(metrics.ProtocolHTTP, 200, time.Second)
	m.SessionStarted()
	m.SessionEnded()
	m.AddFrames(metrics.DirectionClientToUpstream, 1, 1)
	m.TokenRefreshed(metrics.ResultSuccess, time.Now())
	m.TokenRefreshed(metrics.ResultFailure, time.Time{})
	m.RedirectFollowed()
	m.AuthRetry(metrics.FormAAD)
	m.TLSCertificateServed(time.Now())
	m.TLSCertificateReloaded(metrics.ResultFailure, time.Now())
}

func TestSecondNewOnSameRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg, metrics.BuildInfo{})
	defer func() {
		if recover() == nil {
			t.Error("second New on one registry did not panic")
		}
	}()
	metrics.New(reg, metrics.BuildInfo{})
}
