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

// stripCredentialQuery returns rawQuery without credential parameters;
// everything else keeps its bytes and order (some services sign or compare
// them), a query Go's url.ParseQuery refuses too. Azure splits pairs on '&'
// only, but some servers still split on ';' as well (Go did before 1.17), so
// each ';' piece of an '&' part is judged on its own: a piece that names a
// credential goes, the part's other pieces stay, joined by ';' as they were,
// and a part left empty goes whole.
func stripCredentialQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	var kept []string
	removed := false
	for part := range strings.SplitSeq(rawQuery, "&") {
		rest, dropped := withoutCredentialPieces(part)
		removed = removed || dropped
		if rest != "" || !dropped {
			kept = append(kept, rest)
		}
	}
	if !removed {
		return rawQuery
	}
	return strings.Join(kept, "&")
}

// withoutCredentialPieces returns part, one '&'-separated part of a query,
// without its ';' pieces that name a credential, and whether any did.
func withoutCredentialPieces(part string) (string, bool) {
	if !strings.Contains(part, ";") {
		if isCredentialParam(part) {
			return "", true
		}
		return part, false
	}
	var kept []string
	dropped := false
	for piece := range strings.SplitSeq(part, ";") {
		if isCredentialParam(piece) {
			dropped = true
			continue
		}
		kept = append(kept, piece)
	}
	if !dropped {
		return part, false
	}
	return strings.Join(kept, ";"), true
}

// isCredentialParam reports whether one name=value piece of a query names a
// credential: its name, %-decoded where it can be, without surrounding
// spaces, in any letter case.
func isCredentialParam(piece string) bool {
	name, _, _ := strings.Cut(piece, "=")
	if decoded, err := url.QueryUnescape(name); err == nil {
		name = decoded
	}
	return isCredentialName(strings.TrimSpace(name))
}
