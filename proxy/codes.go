package proxy

// The codes of the errors the proxy answers itself, in the Azure error
// envelope {"error":{"code":"...","message":"...","target":"..."}}
// (README, Errors). Programs branch on the code and read the target; the
// message is for people and may change. entraproxy doctor reads them so.
const (
	// CodeBadRequest (400): an absolute-form URI, CONNECT, a malformed
	// WebSocket upgrade, an upgrade to anything but WebSocket, a request
	// body that cannot be read.
	CodeBadRequest = "bad_request"
	// CodeMethodNotAllowed (405): TRACE or TRACK, never forwarded.
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeInboundKeyRequired and CodeInboundKeyInvalid (401): gateway
	// mode, the key is missing or wrong.
	CodeInboundKeyRequired = "inbound_key_required"
	CodeInboundKeyInvalid  = "inbound_key_invalid"
	// CodeOriginNotAllowed and CodeHostNotAllowed (403): browser
	// protection.
	CodeOriginNotAllowed = "origin_not_allowed"
	CodeHostNotAllowed   = "host_not_allowed"
	// CodeUpstreamUnreachable (502): connect, DNS or TLS failure, too many
	// redirects.
	CodeUpstreamUnreachable = "upstream_unreachable"
	// CodeRedirectNotAllowed (502): an upstream redirect the proxy did not
	// follow. When the redirect's host is what was refused (not in
	// ENTRAPROXY_REDIRECT_HOSTS), the envelope's target is that host, with
	// its port when the Location has one, as ENTRAPROXY_REDIRECT_HOSTS
	// would list it. The field is the Microsoft REST API guidelines' error
	// target (https://github.com/microsoft/api-guidelines/blob/vNext/Guidelines.md#7102-error-condition-responses).
	CodeRedirectNotAllowed = "redirect_not_allowed"
	// CodeTokenUnavailable (503): the proxy holds no valid token.
	CodeTokenUnavailable = "token_unavailable"
	// CodeShuttingDown (503): the proxy is stopping.
	CodeShuttingDown = "shutting_down"
	// CodeUpstreamTimeout (504): no connection or handshake within
	// ENTRAPROXY_UPSTREAM_TIMEOUT, or no answer's headers within
	// ENTRAPROXY_RESPONSE_TIMEOUT.
	CodeUpstreamTimeout = "upstream_timeout"
)
