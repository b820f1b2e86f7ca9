package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// An upstream whose certificate this machine does not trust (a private CA,
// a TLS-inspecting proxy) is named as a TLS failure with its fix, on HTTP
// as on a WebSocket handshake, and nothing reaches it.
func TestUpstreamCertificateNotTrusted(t *testing.T) {
	up := startTestUpstream(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), true)
	env := newWSFixture(t, up, func(o *Options) {
		o.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	})
	for _, tc := range []struct {
		name string
		send func() (*http.Response, []byte)
	}{
		{"HTTP", func() (*http.Response, []byte) {
			resp, body := env.get(t, "/cognitiveservices/voices/list")
			return resp, []byte(body)
		}},
		{"WebSocket", func() (*http.Response, []byte) { return env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.send()
			wsWantError(t, resp, body, http.StatusBadGateway, CodeUpstreamUnreachable)
			var envelope struct{ Error struct{ Message string } }
			json.Unmarshal(body, &envelope)
			for _, want := range []string{"TLS handshake with the upstream failed", "certificate", "entraproxy doctor"} {
				if !strings.Contains(envelope.Error.Message, want) {
					t.Errorf("message %q does not say %q", envelope.Error.Message, want)
				}
			}
		})
	}
	if n := len(up.seen.all()); n != 0 {
		t.Errorf("the upstream saw %d requests, want none", n)
	}
}
