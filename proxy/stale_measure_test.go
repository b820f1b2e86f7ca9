package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStaleConnectionsMeasured measures the race between a front end that
// closes idle connections and a request that arrives just then: N POSTs and
// N GETs, about 100 ms apart, to an upstream that closes connections idle
// for 100 ms. It is a measurement, not a verdict (how often the race is hit
// depends on timing), so it runs only when asked:
//
//	ENTRAPROXY_STALE=300 go test -run TestStaleConnectionsMeasured -v ./proxy/
//
// docs/RELIABILITY.md has the results. TestRequestsOnClosedIdleConnection
// and TestWrittenRequestNotResent are the verdicts.
func TestStaleConnectionsMeasured(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ENTRAPROXY_STALE"))
	if n == 0 {
		t.Skip("set ENTRAPROXY_STALE=300 to measure")
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	up.Config.IdleTimeout = 100 * time.Millisecond
	up.Start()
	t.Cleanup(up.Close)
	var logs logBuffer
	f := newHTTPFixtureFor(t, up, &upstreamLog{}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	defer func() { t.Log(logs.String()) }()
	for _, method := range []string{"POST", "GET"} {
		failed := 0
		for range n {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader(`{"messages":[]}`)
			}
			resp, _ := f.do(t, newHTTPRequest(t, method, f.url("/x"), body))
			if resp.StatusCode != 200 {
				failed++
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: %d of %d failed", method, failed, n)
	}
}
