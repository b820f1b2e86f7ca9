package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// responseRecorder notes the status and size of a response for the access
// log. Unwrap lets http.ResponseController (used by ReverseProxy to flush
// server-sent events) reach the real writer.
type responseRecorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	errCode string // set when the proxy made the answer

	// upstreamHost, clientScheme and clientHost are for pointLocationsAtProxy.
	upstreamHost, clientScheme, clientHost string
}

func (r *responseRecorder) WriteHeader(code int) {
	if code == http.StatusContinue {
		// ReverseProxy relays the upstream's 100 Continue, and net/http
		// sends its own when the client's body is first read, which the
		// Transport does once the upstream has asked: one is enough.
		return
	}
	if r.status == 0 && code >= 200 {
		r.status = code
		if code < 300 {
			pointLocationsAtProxy(r.Header(), r.upstreamHost, r.clientScheme, r.clientHost)
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// locationHeaders name resources the client is expected to call next: a
// created batch transcription (201 + Location), an Azure long-running
// operation (Operation-Location).
var locationHeaders = [...]string{"Location", "Content-Location", "Operation-Location"}

// pointLocationsAtProxy rewrites those headers of a 2xx answer when they point at the
// upstream, so the client's next call comes back through the proxy (and gets
// the token) instead of going to Azure without one, as nginx's proxy_redirect
// does. URLs on other hosts are left alone: the proxy forwards only to its
// upstream. Redirects (3xx) never get here; the proxy follows them.
// clientScheme is how the client reached the proxy: http, or https on a TLS
// listener.
func pointLocationsAtProxy(h http.Header, upstreamHost, clientScheme, clientHost string) {
	for _, name := range locationHeaders {
		v := h[name]
		if len(v) != 1 {
			continue // the common case: absent
		}
		u, err := url.Parse(v[0])
		if err != nil || !strings.EqualFold(u.Host, upstreamHost) || clientHost == "" {
			continue
		}
		u.Scheme, u.Host = clientScheme, clientHost
		h[name] = []string{u.String()}
	}
}
