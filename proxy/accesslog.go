package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/entraproxy/entraproxy/metrics"
)

// accessEntry is one access-log line (CONTRACT.md, Logs): one per HTTP
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
}

// logAccess writes e's line and counts it in the request metrics. Never a
// query, a header value or a token: the path is logged without its query.
func (p *Proxy) logAccess(e accessEntry) {
	d := time.Since(e.start)
	msg, protocol := "request", metrics.ProtocolHTTP
	if isWebSocketUpgrade(e.r) {
		msg, protocol = "websocket", metrics.ProtocolWebSocket
	}
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs,
		slog.String("method", e.r.Method), slog.String("path", logPath(e.r)),
		slog.Int("status", e.status), slog.Duration("duration", d),
		slog.Int64("bytes_in", e.bytesIn), slog.Int64("bytes_out", e.bytesOut))
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

func logPath(r *http.Request) string { return r.URL.EscapedPath() }
