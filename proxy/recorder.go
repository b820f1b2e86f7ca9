package proxy

import "net/http"

// responseRecorder notes the status and size of a response for the access
// log. Unwrap lets http.ResponseController (used by ReverseProxy to flush
// server-sent events) reach the real writer.
type responseRecorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	errCode string // set when the proxy made the answer
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
