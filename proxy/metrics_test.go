package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/entraproxy/entraproxy/metrics"
)

// seriesCount is the number of entraproxy_ series reg holds.
func seriesCount(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "entraproxy_") {
			n += len(f.GetMetric())
		}
	}
	return n
}

// Requests move the request metrics, and 1,000 distinct paths leave the
// number of series as one path did: no label takes a path.
func TestMetricsThroughProxy(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.BuildInfo{Version: "test"})
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), func(o *Options) { o.Metrics = m })

	// A request is counted when its handler returns, which may be just
	// after the client has the answer: wait for the count, never more.
	requests := func() float64 {
		return counterValue(t, reg, "entraproxy_requests_total", "protocol", "http", "code", "204")
	}
	f.get(t, "/first")
	wsEventually(t, "the first request counted", func() bool { return requests() >= 1 })
	if got := requests(); got != 1 {
		t.Fatalf("entraproxy_requests_total{http,204} = %v after one request, want 1", got)
	}
	before := seriesCount(t, reg)
	for i := range 1000 {
		f.get(t, fmt.Sprintf("/path/%d?q=%d", i, i))
	}
	wsEventually(t, "1,001 requests counted", func() bool { return requests() >= 1001 })
	if got := seriesCount(t, reg); got != before {
		t.Errorf("series after 1,000 distinct paths = %d, want %d", got, before)
	}
	if got := requests(); got != 1001 {
		t.Errorf("entraproxy_requests_total{http,204} = %v, want 1001", got)
	}
}

// counterValue reads the counter name{labels} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := make(map[string]string)
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
