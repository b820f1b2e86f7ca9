package proxy

import "net/http"

// responseRecorder notes the status and size of a response for the access
// log; it changes nothing of what it passes on (edits of the upstream's
// answer are Proxy.modifyResponse's). Unwrap lets http.ResponseController
// (used by ReverseProxy to flush server-sent events) reach the real writer.
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
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// oneContinue passes everything on but the 100 Continue that ReverseProxy
// relays from the upstream: net/http's server sends its own when the
// client's body is first read, which the Transport does once the upstream
// has asked, and one is enough. It is the one edit made on the writer
// rather than in ModifyResponse, which never sees 1xx answers (ReverseProxy
// writes them from a client trace).
type oneContinue struct{ http.ResponseWriter }

func (w *oneContinue) WriteHeader(code int) {
	if code != http.StatusContinue {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *oneContinue) Unwrap() http.ResponseWriter { return w.ResponseWriter }
