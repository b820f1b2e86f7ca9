package proxy

import (
	"io"
	"net/http"
)

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
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countingBody counts the request bytes read for the access log.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
