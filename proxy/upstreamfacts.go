package proxy

import (
	"context"
	"net/http"
	"strings"

	"github.com/entraproxy/entraproxy/tokens"
)

// upstreamFacts is what passed between the proxy and the upstream for one
// request or WebSocket handshake: what the access log needs to answer "why
// did Azure refuse this?". Whoever talks to the upstream notes it
// (authTransport, wsProxy.serve); the access-log line reads it once the
// request is done. Only the request's own goroutine touches it
// (RoundTrippers, http.Client's redirects and the WebSocket handshake all
// run there). The methods do nothing on nil, so a
// RoundTrip outside serveHTTP needs none.
type upstreamFacts struct {
	// attempts counts upstream requests: the first, then one per redirect
	// followed. A 401 retry is not an attempt of its own.
	attempts int
	// path and host are the last request's, after Speech path mapping.
	path, host string
	// sent reports that a request went out, with form.
	sent    bool
	form    tokens.Form
	retried bool // a 401 was answered by a retry with a fresh token or the other form
	// requestID is the upstream's id for its latest answer.
	requestID string
}

type upstreamFactsKey struct{}

// withUpstreamFacts returns ctx with a new upstreamFacts in it.
func withUpstreamFacts(ctx context.Context) (context.Context, *upstreamFacts) {
	f := &upstreamFacts{}
	return context.WithValue(ctx, upstreamFactsKey{}, f), f
}

// upstreamFactsOf is the upstreamFacts of the request ctx belongs to, or nil.
func upstreamFactsOf(ctx context.Context) *upstreamFacts {
	f, _ := ctx.Value(upstreamFactsKey{}).(*upstreamFacts)
	return f
}

// attempt notes an upstream request about to be made to u's host and path.
func (f *upstreamFacts) attempt(host, escapedPath string) {
	if f == nil {
		return
	}
	f.attempts++
	f.host, f.path = host, escapedPath
}

// sending notes that a request goes out with form.
func (f *upstreamFacts) sending(form tokens.Form) {
	if f == nil {
		return
	}
	f.sent, f.form = true, form
}

// retrying notes the retry after a 401.
func (f *upstreamFacts) retrying() {
	if f != nil {
		f.retried = true
	}
}

// answered notes the upstream's request id from the header of its answer,
// if any.
func (f *upstreamFacts) answered(h http.Header) {
	if f == nil {
		return
	}
	if id := upstreamRequestID(h); id != "" {
		f.requestID = id
	}
}

// redirects is how many redirects were followed.
func (f *upstreamFacts) redirects() int { return max(f.attempts-1, 0) }

// requestIDHeaders carry the id Azure gives each request, the one its
// support asks for: API Management's apim-request-id (Cognitive Services,
// Azure OpenAI), x-ms-request-id (Azure's common header), x-request-id.
var requestIDHeaders = [...]string{"Apim-Request-Id", "X-Ms-Request-Id", "X-Request-Id"}

// maxLoggedID bounds an id or X-ConnectionId in a log line: both are GUIDs,
// but the upstream's and the client's headers are not ours to trust.
const maxLoggedID = 128

// upstreamRequestID is the first request id header of h, or "".
func upstreamRequestID(h http.Header) string {
	for _, name := range requestIDHeaders {
		if v := h.Get(name); v != "" {
			return loggableID(v)
		}
	}
	return ""
}

// connectionID is the X-ConnectionId a Speech SDK sends with its WebSocket
// upgrade, as a header (native SDK) or a query parameter (JavaScript SDK),
// which Speech's own logs are keyed by.
func connectionID(r *http.Request) string {
	if v := r.Header.Get("X-ConnectionId"); v != "" {
		return loggableID(v)
	}
	return loggableID(r.URL.Query().Get("X-ConnectionId"))
}

// loggableID keeps an id's printable ASCII, at most maxLoggedID bytes.
func loggableID(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return -1
		}
		return r
	}, v)
	return v[:min(len(v), maxLoggedID)]
}
