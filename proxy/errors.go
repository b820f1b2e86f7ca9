package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// apiError is a proxy-made error, answered as JSON in the Azure envelope
// {"error":{"code":"...","message":"..."}} so SDKs show it like a service
// error. Message says what to do and never holds a token or a key.
type apiError struct {
	status  int
	code    string
	message string
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
	errAbsoluteForm = &apiError{status: http.StatusBadRequest, code: "bad_request",
		message: "entraproxy forwards only to its configured upstream; send origin-form requests (GET /path), not absolute URIs or CONNECT"}
	errUpgradeNotWebSocket = &apiError{status: http.StatusBadRequest, code: "bad_request",
		message: "entraproxy switches protocols only to WebSocket; send the request without an Upgrade header"}
	errTraceRefused = &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		message: "entraproxy never forwards TRACE or TRACK: the answer would echo the token it adds"}
	errShuttingDown = &apiError{status: http.StatusServiceUnavailable, code: "shutting_down",
		message: "entraproxy is shutting down; retry against another instance"}
)

// logLevel is the level of the line that logs e's cause. A missing token
// is the token source's news, which it logs once per credential call with
// the same description: one more warning per request would only repeat it.
func (e *apiError) logLevel() slog.Level {
	if e.code == codeTokenUnavailable {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

const codeTokenUnavailable = "token_unavailable"

func tokenUnavailable(err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: codeTokenUnavailable,
		message: "entraproxy holds no valid Entra ID token; check its logs or run `entraproxy doctor`", cause: err}
}

func redirectNotAllowed(host string) *apiError {
	return &apiError{status: http.StatusBadGateway, code: "redirect_not_allowed",
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
		return &apiError{status: http.StatusBadRequest, code: "bad_request",
			message: "entraproxy could not read the request body (malformed chunked encoding, or shorter than its Content-Length); send a well-formed body", cause: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		// Answer timeouts were told apart by upstreamTransport.
		return &apiError{status: http.StatusGatewayTimeout, code: "upstream_timeout",
			message: "the upstream did not complete the connection (or the WebSocket handshake) within ENTRAPROXY_UPSTREAM_TIMEOUT", cause: err}
	}
	return &apiError{status: http.StatusBadGateway, code: "upstream_unreachable",
		message: "entraproxy could not reach the upstream; check ENTRAPROXY_UPSTREAM, DNS, HTTPS_PROXY and the network", cause: err}
}

// writeError answers e and returns the body's length.
func writeError(w http.ResponseWriter, e *apiError) int {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": e.code, "message": e.message}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	w.Write(body)
	return len(body)
}
