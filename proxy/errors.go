package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/entraproxy/entraproxy/proxy/internal/wsrelay"
)

// apiError is a proxy-made error, answered as JSON in the Azure envelope
// {"error":{"code":"...","message":"..."}} so SDKs show it like a service
// error. Message says what to do and never holds a token or a key.
type apiError struct {
	status  int
	code    string
	message string
	target  string // what the error is about, for programs (codes.go); "" for none
	cause   error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.code + ": " + e.message + ": " + e.cause.Error()
	}
	return e.code + ": " + e.message
}

func (e *apiError) Unwrap() error { return e.cause }

var (
	errAbsoluteForm = &apiError{status: http.StatusBadRequest, code: CodeBadRequest,
		message: "entraproxy forwards only to its configured upstream; send origin-form requests (GET /path), not absolute URIs or CONNECT"}
	errUpgradeNotWebSocket = &apiError{status: http.StatusBadRequest, code: CodeBadRequest,
		message: "entraproxy switches protocols only to WebSocket; send the request without an Upgrade header"}
	errTraceRefused = &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
		message: "entraproxy never forwards TRACE or TRACK, nor a request whose X-HTTP-Method-Override, X-HTTP-Method or X-Method-Override names one: the answer would echo the token it adds"}
	errShuttingDown = &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown,
		message: "entraproxy is shutting down; retry against another instance"}
)

// logLevel is the level of the line that logs e's cause. A missing token
// is the token source's news, which it logs once per credential call with
// the same description: one more warning per request would only repeat it.
func (e *apiError) logLevel() slog.Level {
	if e.code == CodeTokenUnavailable {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func tokenUnavailable(err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeTokenUnavailable,
		message: "entraproxy holds no valid Entra ID token; check its logs or run `entraproxy doctor`", cause: err}
}

func redirectNotAllowed(host string) *apiError {
	return &apiError{status: http.StatusBadGateway, code: CodeRedirectNotAllowed, target: host,
		message: "the upstream redirected to " + strconv.Quote(host) + ", which ENTRAPROXY_REDIRECT_HOSTS does not allow"}
}

// classify turns an error from the upstream round trip into the answer the
// client gets.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if isClientBodyError(err) {
		return &apiError{status: http.StatusBadRequest, code: CodeBadRequest,
			message: "entraproxy could not read the request body (malformed chunked encoding, or shorter than its Content-Length); send a well-formed body", cause: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		// Answer timeouts were told apart by upstreamTransport.
		return &apiError{status: http.StatusGatewayTimeout, code: CodeUpstreamTimeout,
			message: "the upstream did not complete the connection (or the WebSocket handshake) within ENTRAPROXY_UPSTREAM_TIMEOUT", cause: err}
	}
	if isTLSFailure(err) {
		return &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
			message: "the TLS handshake with the upstream failed: its certificate is not trusted on this machine or does not name the host (a private CA, a TLS-inspecting proxy); check ENTRAPROXY_UPSTREAM, trust the CA, and run 'entraproxy doctor' for the steps", cause: err}
	}
	return &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
		message: "entraproxy could not reach the upstream; check ENTRAPROXY_UPSTREAM, DNS, HTTPS_PROXY and the network", cause: err}
}

// isTLSFailure reports a TLS handshake with the upstream that failed, on
// HTTP (net/http's *tls.CertificateVerificationError, a TLS alert or a
// non-TLS answer) or on a WebSocket handshake (wsrelay's *TLSError).
func isTLSFailure(err error) bool {
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	var ws *wsrelay.TLSError
	return errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &record) || errors.As(err, &ws)
}

// writeError answers e to r and returns the status written and the body's
// length. A refused WebSocket handshake (a GET with Upgrade: websocket) is
// answered as handshakeAnswer says; everything else with e's own status.
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) (status, n int) {
	fields := map[string]string{"code": e.code, "message": e.message}
	if e.target != "" {
		fields["target"] = e.target
	}
	body, _ := json.Marshal(map[string]any{"error": fields})
	if r.Method == http.MethodGet && isWebSocketUpgrade(r) {
		if status, ok := writeHandshakeRefusal(w, e, body); ok {
			return status, len(body)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	w.Write(body)
	return e.status, len(body)
}

// handshakeAnswer is the status and reason phrase a proxy-made refusal of a
// WebSocket upgrade is answered with, so that the app's Speech SDK shows
// the proxy's message (the body's JSON keeps the error code, which names the
// status a plain HTTP request gets):
//
//   - The native Speech SDK (C++ core: Python, C#, Java, C++) shows only a
//     fixed text for a 401, 403, 408, 429, 503 or 504 handshake answer
//     ("Authentication error (401). Please check subscription information
//     and region name."). For 400, 404, 409, 500 and 502 it shows the status
//     line's reason phrase in full, the URL, and the first bytes of the body
//     (those that came in the read that ended the headers, often none of the
//     message). So: 400 for the proxy's 4xx refusals (the client's request or
//     settings), 502 for its 5xx (the proxy or what is behind it), and the
//     code and message in the reason phrase.
//   - The JavaScript Speech SDK on Node (package ws) shows "Unexpected server
//     response: <status>" and nothing of the answer; in a browser, a failed
//     handshake shows nothing at all. The status is all they get.
//
// e2e/README.md has the text each SDK shows, produced by
// e2e/python/test_errors.py.
//
// Origin refusals keep their 403: only browsers send Origin, and a browser
// shows nothing of a failed handshake whatever its status.
func handshakeAnswer(e *apiError) (status int, reason string) {
	switch {
	case e.code == CodeOriginNotAllowed:
		status = e.status
	case e.status < 500:
		status = http.StatusBadRequest
	default:
		status = http.StatusBadGateway
	}
	return status, reasonPhrase("entraproxy " + e.code + ": " + e.message)
}

// reasonPhrase makes s a valid reason phrase (RFC 9112, section 4:
// HTAB, SP, VCHAR and obs-text): other bytes become a space.
func reasonPhrase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c != '\t' && (c < ' ' || c == 0x7f) {
			b[i] = ' '
		}
	}
	return string(b)
}

// writeHandshakeRefusal writes handshakeAnswer's status line, e's JSON body
// and closes the connection. net/http writes only the standard reason
// phrase, so the connection is taken over (an upgrade request is HTTP/1.1
// and is not answered yet). ok is false when it cannot be taken over
// (HTTP/2, a test recorder): then nothing was written.
func writeHandshakeRefusal(w http.ResponseWriter, e *apiError, body []byte) (status int, ok bool) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	status, reason := handshakeAnswer(e)
	h := w.Header().Clone() // what the caller set already (Allow, ...)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	fmt.Fprintf(brw, "HTTP/1.1 %03d %s\r\n", status, reason)
	h.Write(brw)
	brw.WriteString("\r\n")
	brw.Write(body)
	brw.Flush()
	return status, true
}
