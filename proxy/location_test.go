package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A 2xx that names the next URL to call (batch transcription's 201 +
// Location, long-running operations' Operation-Location) must send the
// client back through the proxy, not to Azure without a token.
func TestLocationsPointAtProxy(t *testing.T) {
	var upstreamHost string
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://"+upstreamHost+"/speechtotext/transcriptions/42?api-version=2024-11-15")
		w.Header().Set("Operation-Location", "https://"+upstreamHost+"/openai/operations/7")
		w.Header().Set("Content-Location", "https://elsewhere.example/x")
		w.WriteHeader(http.StatusCreated)
	}), nil)
	upstreamHost = strings.TrimPrefix(f.upstream.URL, "http://")

	resp, _ := f.get(t, "/speechtotext/transcriptions")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status = %d, want 201", resp.StatusCode)
	}
	proxyHost := strings.TrimPrefix(f.front.URL, "http://")
	for name, want := range map[string]string{
		"Location":           "http://" + proxyHost + "/speechtotext/transcriptions/42?api-version=2024-11-15",
		"Operation-Location": "http://" + proxyHost + "/openai/operations/7",
		"Content-Location":   "https://elsewhere.example/x",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestPointLocationsAtProxy(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://up.example:443/a?b=c", "http://127.0.0.1:8080/a?b=c"},
		{"https://UP.example:443/a", "http://127.0.0.1:8080/a"},
		{"https://up.example.evil:443/a", "https://up.example.evil:443/a"},
		{"/relative/path", "/relative/path"},
		{"https://other.example/up.example:443", "https://other.example/up.example:443"},
	}
	for _, tc := range tests {
		h := http.Header{"Location": {tc.in}}
		pointLocationsAtProxy(h, []string{"up.example:443"}, clientAddr{host: "127.0.0.1:8080"}) // hosts in lower case
		if got := h.Get("Location"); got != tc.want {
			t.Errorf("Location %q became %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Only 2xx answers name a next URL to call; an error's Location stays as
// the upstream wrote it.
func TestLocationOfErrorUntouched(t *testing.T) {
	var upstreamHost string
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", "https://"+upstreamHost+"/docs/error")
		w.WriteHeader(http.StatusBadRequest)
	}), nil)
	upstreamHost = strings.TrimPrefix(f.upstream.URL, "http://")
	resp, _ := f.get(t, "/x")
	if got, want := resp.Header.Get("Content-Location"), "https://"+upstreamHost+"/docs/error"; got != want {
		t.Errorf("Content-Location = %q, want %q", got, want)
	}
}

// A client that reached the proxy over TLS is sent back to it over TLS: the
// rewritten Location keeps the scheme the client used, not plain http.
func TestLocationsPointAtProxyOverTLS(t *testing.T) {
	var upstreamHost string
	up, seen := newRecordingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://"+upstreamHost+"/speechtotext/transcriptions/42")
		w.WriteHeader(http.StatusCreated)
	}))
	upstreamHost = strings.TrimPrefix(up.URL, "http://")
	f := newHTTPFixtureFor(t, up, seen, nil)
	front := httptest.NewTLSServer(f.proxy)
	t.Cleanup(front.Close)
	client := front.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	resp, err := client.Get(front.URL + "/speechtotext/transcriptions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), front.URL+"/speechtotext/transcriptions/42"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}
