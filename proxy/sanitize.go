package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// credentialNames are the names under which clients send a credential, as
// a header or a query parameter. Inbound ones are never forwarded: the proxy
// sets the only Authorization itself. The JavaScript Speech SDK repeats its
// connection headers as query parameters, so the query is cleaned too. Subscription-Key is API Management's default
// name for a key in the query
// (https://learn.microsoft.com/azure/api-management/api-management-subscriptions),
// the gateway Azure AI services' Ocp-Apim- headers come from.
var credentialNames = [...]string{"Authorization", "Ocp-Apim-Subscription-Key", "Api-Key", "Subscription-Key"}

func isCredentialName(name string) bool {
	for _, c := range credentialNames {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// credentialSubprotocol starts the WebSocket subprotocol in which the
// openai package's browser realtime client offers its API key beside
// "realtime", openai-insecure-api-key.<key>: a browser's WebSocket cannot
// set headers (https://github.com/openai/openai-node, src/realtime/websocket.ts).
const credentialSubprotocol = "openai-insecure-api-key."

func isCredentialSubprotocol(p string) bool {
	return hasPrefixFold(strings.TrimSpace(p), credentialSubprotocol)
}

// stripCredentialHeaders removes inbound credentials and client-supplied
// forwarding headers, and credential subprotocols from the ones a WebSocket
// client offers (keeping the others, in order). http.Header keys from the
// server are canonical, but a Header built elsewhere may not be, so every
// key is compared without case.
func stripCredentialHeaders(h http.Header) {
	for k, vs := range h {
		switch {
		case isCredentialName(k) || strings.EqualFold(k, "Forwarded") || hasPrefixFold(k, "X-Forwarded-"):
			delete(h, k)
		case strings.EqualFold(k, "Sec-Websocket-Protocol"):
			kept, removed := withoutCredentialSubprotocols(vs)
			switch {
			case !removed:
			case len(kept) == 0:
				delete(h, k)
			default:
				h[k] = []string{strings.Join(kept, ", ")}
			}
		}
	}
}

// withoutCredentialSubprotocols splits Sec-WebSocket-Protocol values into
// subprotocols and returns those that are not credentials, and whether any
// was.
func withoutCredentialSubprotocols(values []string) (kept []string, removed bool) {
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "":
			case isCredentialSubprotocol(p):
				removed = true
			default:
				kept = append(kept, p)
			}
		}
	}
	return kept, removed
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// stripCredentialQuery returns rawQuery without credential parameters. Other
// parameters keep their bytes and order: some services sign or compare them.
func stripCredentialQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	var kept []string
	removed := false
	for part := range strings.SplitSeq(rawQuery, "&") {
		if isCredentialParam(part) {
			removed = true
			continue
		}
		kept = append(kept, part)
	}
	if !removed {
		return rawQuery
	}
	return strings.Join(kept, "&")
}

// isCredentialParam reports whether one &-separated query part names a
// credential. Some servers still split on ';' too, so each ';' piece counts.
func isCredentialParam(part string) bool {
	for piece := range strings.SplitSeq(part, ";") {
		name, _, _ := strings.Cut(piece, "=")
		if decoded, err := url.QueryUnescape(name); err == nil {
			name = decoded
		}
		if isCredentialName(strings.TrimSpace(name)) {
			return true
		}
	}
	return false
}
