package fakeazure

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reasons a service request is refused, the keys of Rejections and the value
// of Request.Reject. Every one answers 401 except ReasonWrongHost (421).
const (
	// ReasonNoAuthorization: no Authorization header.
	ReasonNoAuthorization = "no_authorization"
	// ReasonSecondAuthorization: more than one Authorization header. A proxy
	// that adds its header without removing the client's sends two.
	ReasonSecondAuthorization = "second_authorization"
	// ReasonKeyHeader: an Ocp-Apim-Subscription-Key or api-key header, any
	// letter case, any value: the proxy must strip inbound credentials.
	ReasonKeyHeader = "key_header"
	// ReasonCredentialInQuery: Authorization, Ocp-Apim-Subscription-Key,
	// api-key or subscription-key as a query parameter, any letter case (the
	// JavaScript Speech SDK repeats its headers there).
	ReasonCredentialInQuery = "credential_in_query"
	// ReasonCredentialInSubprotocol: a WebSocket subprotocol
	// openai-insecure-api-key.<key>, any letter case (the openai package's
	// browser realtime client offers its key so).
	ReasonCredentialInSubprotocol = "credential_in_subprotocol"
	// ReasonMalformed: not "Bearer <jwt>" nor "Bearer aad#<id>#<jwt>".
	ReasonMalformed = "malformed_authorization"
	// ReasonWrongForm: bearer where only aad is accepted or the reverse
	// (Azure OpenAI accepts bearer only).
	ReasonWrongForm = "wrong_form"
	// ReasonWrongResourceID: the aad form with another resource id.
	ReasonWrongResourceID = "wrong_resource_id"
	// ReasonUnknownToken: a well-formed token this fake did not issue.
	ReasonUnknownToken = "unknown_token"
	// ReasonExpiredToken: a token this fake issued, now expired.
	ReasonExpiredToken = "expired_token"
	// ReasonWrongAudience: a token issued for another resource than Audience.
	ReasonWrongAudience = "wrong_audience"
	// ReasonNoCustomDomain: a regional request without
	// Ocp-Apim-Custom-Domain-Name naming the custom domain; regional endpoints
	// reject Entra tokens otherwise (docs/SPEECH-SDK-WIRE.md).
	ReasonNoCustomDomain = "no_custom_domain"
	// ReasonWrongHost: a Host header other than the listener's own. Azure
	// routes by host name, so a proxy that passes the client's Host on (as
	// koding/websocketproxy does by default) fails there; 421 Misdirected Request.
	ReasonWrongHost = "wrong_host"
)

// Request is one request a service listener saw, recorded before it was
// answered (streams and WebSocket sessions are recorded when they start).
// Credentials are redacted.
type Request struct {
	Time time.Time `json:"time"`
	// Listener is "custom" or "regional".
	Listener string `json:"listener"`
	Method   string `json:"method"`
	Host     string `json:"host"`
	Path     string `json:"path"`
	// Query is the raw query with the values of Authorization,
	// Ocp-Apim-Subscription-Key and api-key replaced by REDACTED.
	Query string `json:"query"`
	// Header holds every header; Authorization is shortened to
	// "Bearer aad#<rid>#eyJ…(redacted)" or "Bearer eyJ…(redacted)", keys to "(redacted)".
	Header http.Header `json:"header"`
	// WebSocket is true for an upgrade request.
	WebSocket bool `json:"websocket"`
	// Subprotocols are those the client asked for; Subprotocol is the one
	// accepted.
	Subprotocols []string `json:"subprotocols,omitempty"`
	Subprotocol  string   `json:"subprotocol,omitempty"`
	// Form is "bearer" or "aad" when the Authorization header parsed.
	Form string `json:"form,omitempty"`
	// TokenSeq is the issue number (1, 2, ...) of the token presented when this
	// fake issued it, else 0: it shows which token a proxy used without
	// revealing it.
	TokenSeq int `json:"tokenSeq,omitempty"`
	// Status is the status answered: 101 for an accepted WebSocket.
	Status int `json:"status"`
	// Reject is the refusal reason (a Reason constant), empty when accepted.
	Reject string `json:"reject,omitempty"`
}

// record appends req to the request log and counts its refusal.
func (a *Azure) record(req Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.requests) >= maxRequests {
		a.requests = append(a.requests[:0:0], a.requests[len(a.requests)-maxRequests+1:]...)
	}
	a.requests = append(a.requests, req)
	if req.Reject != "" {
		a.rejections[req.Reject]++
	}
	a.log.Debug("fakeazure request", "listener", req.Listener, "method", req.Method, "path", req.Path,
		"status", req.Status, "reject", req.Reject, "form", req.Form, "token_seq", req.TokenSeq)
}

// Requests returns a copy of the request log, oldest first.
func (a *Azure) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Request, len(a.requests))
	copy(out, a.requests)
	return out
}

// Rejections returns how many service requests were refused, by reason.
func (a *Azure) Rejections() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.rejections))
	for k, v := range a.rejections {
		out[k] = v
	}
	return out
}

// newRequest starts the record of r.
func newRequest(listener string, r *http.Request) Request {
	return Request{
		Time:         time.Now(),
		Listener:     listener,
		Method:       r.Method,
		Host:         r.Host,
		Path:         r.URL.Path,
		Query:        redactQuery(r.URL.RawQuery),
		Header:       redactHeader(r.Header),
		WebSocket:    isWebSocketUpgrade(r),
		Subprotocols: redactSubprotocols(subprotocols(r)),
	}
}

// redactSubprotocols hides the key of a credential subprotocol.
func redactSubprotocols(ps []string) []string {
	var out []string
	for _, p := range ps {
		if credentialSubprotocol(p) {
			p = p[:len("openai-insecure-api-key.")] + "(redacted)"
		}
		out = append(out, p)
	}
	return out
}

// credentialName reports whether name is one of the inbound credential names
// the proxy must strip, in any letter case: the three key and token names
// Azure AI services read, and API Management's default query name for a key.
func credentialName(name string) bool {
	return strings.EqualFold(name, "Authorization") ||
		strings.EqualFold(name, "Ocp-Apim-Subscription-Key") ||
		strings.EqualFold(name, "api-key") ||
		strings.EqualFold(name, "subscription-key")
}

// credentialSubprotocol reports whether a WebSocket subprotocol carries a key.
func credentialSubprotocol(p string) bool {
	const prefix = "openai-insecure-api-key."
	return len(p) >= len(prefix) && strings.EqualFold(p[:len(prefix)], prefix)
}

// queryParts splits a raw query into decoded keys and raw parts; it works on
// queries url.ParseQuery would refuse, so that a bad escape cannot hide a key.
func queryParts(raw string) (keys, parts []string) {
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, _, _ := strings.Cut(part, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		keys = append(keys, strings.TrimSpace(k))
		parts = append(parts, part)
	}
	return keys, parts
}

func redactQuery(raw string) string {
	keys, parts := queryParts(raw)
	changed := false
	for i, k := range keys {
		if credentialName(k) {
			name, _, _ := strings.Cut(parts[i], "=")
			parts[i] = name + "=REDACTED"
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}

func redactHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		cp := make([]string, len(vs))
		for i, v := range vs {
			switch {
			case strings.EqualFold(k, "Authorization"):
				cp[i] = redactAuthorization(v)
			case credentialName(k):
				cp[i] = "(redacted)"
			case strings.EqualFold(k, "Sec-Websocket-Protocol"):
				var ps []string
				for p := range strings.SplitSeq(v, ",") {
					ps = append(ps, strings.TrimSpace(p))
				}
				cp[i] = strings.Join(redactSubprotocols(ps), ", ")
			default:
				cp[i] = v
			}
		}
		out[k] = cp
	}
	return out
}

// redactAuthorization keeps the scheme, the aad prefix and three characters
// of the token: enough to see the form, never enough to use it.
func redactAuthorization(v string) string {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "(redacted)"
	}
	prefix := scheme + " "
	if strings.HasPrefix(rest, "aad#") {
		if i := strings.LastIndex(rest, "#"); i > 3 {
			prefix += rest[:i+1]
			rest = rest[i+1:]
		}
	}
	if len(rest) > 3 {
		rest = rest[:3]
	}
	return prefix + rest + "…(redacted)"
}

// checkCredentials applies the rules every service request must pass. mode is
// the accepted form; it returns the refusal reason, or "" and fills the
// form and token fields of req.
func (a *Azure) checkCredentials(r *http.Request, mode AuthMode, resourceID string, req *Request) string {
	for name := range r.Header {
		if credentialName(name) && !strings.EqualFold(name, "Authorization") {
			return ReasonKeyHeader
		}
	}
	keys, _ := queryParts(r.URL.RawQuery)
	for _, k := range keys {
		if credentialName(k) {
			return ReasonCredentialInQuery
		}
	}
	for _, p := range subprotocols(r) {
		if credentialSubprotocol(p) {
			return ReasonCredentialInSubprotocol
		}
	}
	var values []string
	for name, vs := range r.Header {
		if strings.EqualFold(name, "Authorization") {
			values = append(values, vs...)
		}
	}
	switch {
	case len(values) == 0:
		return ReasonNoAuthorization
	case len(values) > 1:
		return ReasonSecondAuthorization
	}
	scheme, cred, ok := strings.Cut(values[0], " ")
	if !ok || scheme != "Bearer" || cred == "" || strings.ContainsAny(cred, " \t,") {
		return ReasonMalformed
	}
	form, token := AuthBearer, cred
	if strings.HasPrefix(cred, "aad#") {
		parts := strings.Split(cred, "#")
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return ReasonMalformed
		}
		form, token = AuthAAD, parts[2]
		if mode != AuthBearer && parts[1] != resourceID {
			req.Form = string(form)
			return ReasonWrongResourceID
		}
	}
	if strings.Count(token, ".") != 2 {
		return ReasonMalformed
	}
	req.Form = string(form)
	if mode != AuthBoth && form != mode {
		return ReasonWrongForm
	}
	info, ok := a.lookupToken(token)
	if !ok {
		return ReasonUnknownToken
	}
	req.TokenSeq = info.seq
	if !time.Now().Before(info.expires) {
		return ReasonExpiredToken
	}
	if strings.TrimSuffix(info.audience, "/") != Audience {
		return ReasonWrongAudience
	}
	return ""
}

// rejectMessage is the refusal message; it names the rule, never the value.
func rejectMessage(reason string) string {
	return map[string]string{
		ReasonNoAuthorization:         "Authorization header is missing.",
		ReasonSecondAuthorization:     "More than one Authorization header.",
		ReasonKeyHeader:               "A subscription key header (Ocp-Apim-Subscription-Key or api-key) was sent; this resource accepts Microsoft Entra ID tokens only.",
		ReasonCredentialInQuery:       "A credential (Authorization, Ocp-Apim-Subscription-Key, api-key or subscription-key) was sent in the query string.",
		ReasonCredentialInSubprotocol: "A key was offered as a WebSocket subprotocol (openai-insecure-api-key.*); this resource accepts Microsoft Entra ID tokens only.",
		ReasonMalformed:               "Authorization must be 'Bearer <token>' or 'Bearer aad#<resource id>#<token>'.",
		ReasonWrongForm:               "This endpoint does not accept this Authorization form.",
		ReasonWrongResourceID:         "The resource id in the aad# token does not match this resource.",
		ReasonUnknownToken:            "The access token was not issued for this resource (unknown token).",
		ReasonExpiredToken:            "The access token is expired.",
		ReasonWrongAudience:           "The access token has the wrong audience; want https://cognitiveservices.azure.com.",
		ReasonNoCustomDomain:          "Microsoft Entra ID tokens on a regional endpoint need Ocp-Apim-Custom-Domain-Name naming the resource's custom domain.",
		ReasonWrongHost:               "The Host header does not name this endpoint.",
	}[reason]
}

// reject answers a refused request in Azure's error envelope. For a
// WebSocket upgrade this is the handshake response: the upgrade never happens.
func reject(w http.ResponseWriter, reason string) int {
	status := http.StatusUnauthorized
	if reason == ReasonWrongHost {
		status = http.StatusMisdirectedRequest
	}
	w.Header().Set("X-Fake-Reject-Reason", reason)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="fakeazure", error="invalid_token"`)
	}
	writeAzureError(w, status, strconv.Itoa(status), "Access denied: "+rejectMessage(reason)+" (fakeazure: "+reason+")")
	return status
}

// writeAzureError writes Azure's error envelope {"error":{"code","message"}}.
func writeAzureError(w http.ResponseWriter, status int, code, message string) {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, map[string]body{"error": {Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
