package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// credentialNames are the places clients put a credential. Inbound ones are
// never forwarded: the proxy sets the only Authorization itself. The JavaScript
// Speech SDK repeats its connection headers as query parameters
// (AZURE-NOTES.md, What SDKs send), so the query is cleaned too.
var credentialNames = [...]string{"Authorization", "Ocp-Apim-Subscription-Key", "Api-Key"}

func isCredentialName(name string) bool {
	for _, c := range credentialNames {
		if strings.EqualFold(name, c) {
			return true
		}
	}
	return false
}

// stripCredentialHeaders removes inbound credentials and client-supplied
// forwarding headers. http.Header keys from the server are canonical, but a
// Header built elsewhere may not be, so every key is compared without case.
func stripCredentialHeaders(h http.Header) {
	for k := range h {
		if isCredentialName(k) || strings.EqualFold(k, "Forwarded") || hasPrefixFold(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
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
