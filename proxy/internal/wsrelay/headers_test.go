package wsrelay

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// The upstream handshake carries the caller's fields but those of the
// client's own connection (hop-by-hop, and what its Connection names) and
// those gorilla writes itself; koding's X-Forwarded-* are gone, Host is
// the target's, and Authorization the caller's, even when the client's
// Connection names it.
func TestHandshakeHeaderFields(t *testing.T) {
	client := http.Header{
		"Connection":               {"Upgrade, X-Hop, Authorization"},
		"Upgrade":                  {"websocket"},
		"X-Hop":                    {"client-only"},
		"Keep-Alive":               {"timeout=5"},
		"Proxy-Authorization":      {"Basic cHJveHk6c2VjcmV0"},
		"Te":                       {"trailers"},
		"Sec-Websocket-Key":        {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version":    {"13"},
		"Sec-Websocket-Extensions": {"permessage-deflate"},
		"Sec-Websocket-Protocol":   {"USP"},
		"Origin":                   {"http://localhost:3000", "http://localhost:3001"},
		"Cookie":                   {"a=1", "b=2"},
		"X-Connectionid":           {"abc"},
		"User-Agent":               {"SpeechSDK"},
		"Authorization":            {"Bearer client"},
	}
	koding := http.Header{"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Proto": {"http"}, "Host": {"127.0.0.1:8080"}}
	hs := Handshake{Target: &url.URL{Scheme: "wss", Host: "name.cognitiveservices.azure.com"}, Header: client.Clone(), Authorization: "Bearer proxy"}
	handshakeFields(koding, hs)
	want := http.Header{
		"Sec-Websocket-Protocol": {"USP"},
		"Origin":                 {"http://localhost:3000", "http://localhost:3001"},
		"Cookie":                 {"a=1", "b=2"},
		"X-Connectionid":         {"abc"},
		"User-Agent":             {"SpeechSDK"},
		"Authorization":          {"Bearer proxy"},
		"Host":                   {"name.cognitiveservices.azure.com"},
	}
	if !maps.EqualFunc(koding, want, slices.Equal) {
		t.Errorf("handshake fields = %v, want %v", koding, want)
	}
	if !maps.EqualFunc(hs.Header, client, slices.Equal) {
		t.Errorf("Handshake.Header changed to %v", hs.Header)
	}
}
