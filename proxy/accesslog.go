package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/entraproxy/entraproxy/metrics"
)

// accessEntry is one access-log line (README, Logs): one per HTTP
// request and one per WebSocket session or refused upgrade. Every line has
// the same fields; a WebSocket session adds frames and how it closed.
type accessEntry struct {
	r                   *http.Request
	start               time.Time
	status              int
	bytesIn, bytesOut   int64
	errCode             string // the proxy's error code, or why the answer was cut
	session             bool   // a WebSocket session ran: frames and close follow
	framesIn, framesOut int64
	closeCode           int
	closedBy            string
	// upstream is what went to the upstream and came back; nil or unsent
	// when nothing did.
	upstream *upstreamFacts
}

// logAccess writes e's line and counts it in the request metrics. Never a
// query, a credential or a token: paths are logged without their query, and
// of the headers only the ids that tie the line to the upstream's and the
// SDK's own logs (the upstream's request id, the client's X-ConnectionId).
func (p *Proxy) logAccess(e accessEntry) {
	d := time.Since(e.start)
	msg, protocol := "request", metrics.ProtocolHTTP
	ws := isWebSocketUpgrade(e.r)
	if ws {
		msg, protocol = "websocket", metrics.ProtocolWebSocket
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("method", e.r.Method), slog.String("path", logPath(e.r)),
		slog.Int("status", e.status), slog.Duration("duration", d),
		slog.Int64("bytes_in", e.bytesIn), slog.Int64("bytes_out", e.bytesOut))
	if u := e.upstream; u != nil && u.sent {
		attrs = append(attrs, slog.String("upstream_path", loggablePath(u.path)), slog.String("auth_form", u.form.String()),
			slog.Bool("auth_retried", u.retried), slog.Int("redirects", u.redirects()))
		if u.redirects() > 0 {
			attrs = append(attrs, slog.String("upstream_host", u.host))
		}
		if u.requestID != "" {
			attrs = append(attrs, slog.String("upstream_request_id", u.requestID))
		}
	}
	if ws {
		if id := connectionID(e.r); id != "" {
			attrs = append(attrs, slog.String("connection_id", id))
		}
	}
	if e.session {
		attrs = append(attrs,
			slog.Int64("frames_in", e.framesIn), slog.Int64("frames_out", e.framesOut),
			slog.Int("close_code", e.closeCode), slog.String("closed_by", e.closedBy))
	}
	if e.errCode != "" {
		attrs = append(attrs, slog.String("error", e.errCode))
	}
	p.logger.LogAttrs(e.r.Context(), slog.LevelInfo, msg, attrs...)
	p.metrics.ObserveRequest(protocol, e.status, d)
}

// maxLoggedPath bounds a path in a log line: a request line may be as long
// as the 64 KiB header limit, and every line about the request repeats it.
const maxLoggedPath = 1024

// logPath is r's path as the client sent it, escaped (so printable ASCII)
// and without the query, cut at maxLoggedPath bytes with "..." marking the
// cut.
func logPath(r *http.Request) string { return loggablePath(r.URL.EscapedPath()) }

func loggablePath(escaped string) string {
	if len(escaped) <= maxLoggedPath {
		return escaped
	}
	return escaped[:maxLoggedPath] + "..."
}
