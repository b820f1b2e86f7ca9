package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entraproxy/entraproxy/internal/testca"
)

// The TLS pair is checked at start: both files or neither, readable, a
// certificate and its own key. Each problem names the variable at fault and
// quotes the path.
func TestTLSFiles(t *testing.T) {
	const up = "https://name.cognitiveservices.azure.com"
	ca := testca.New(t, "config test CA")
	a, b := ca.Issue(t, "a", "127.0.0.1"), ca.Issue(t, "b", "127.0.0.1")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certA, keyA, keyB := write("a.crt", a.CertPEM), write("a.key", a.KeyPEM), write("b.key", b.KeyPEM)
	missing := filepath.Join(dir, "missing.crt")

	t.Run("valid pair", func(t *testing.T) {
		c, err := Load(environ("ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_TLS_CERT_FILE", certA, "ENTRAPROXY_TLS_KEY_FILE", keyA))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !c.TLS() || c.TLSCertFile != certA || c.TLSKeyFile != keyA {
			t.Errorf("TLS() = %v, files %q %q; want true, %q %q", c.TLS(), c.TLSCertFile, c.TLSKeyFile, certA, keyA)
		}
	})
	t.Run("no TLS by default", func(t *testing.T) {
		c, err := Load(environ("ENTRAPROXY_UPSTREAM", up))
		if err != nil || c.TLS() {
			t.Fatalf("Load = TLS %v, %v; want no TLS and no error", c != nil && c.TLS(), err)
		}
	})

	for _, tc := range []struct {
		name       string
		cert, key  string
		variable   string
		wantInLine string
	}{
		{"certificate without key", certA, "", "ENTRAPROXY_TLS_CERT_FILE", `ENTRAPROXY_TLS_CERT_FILE "` + certA + `": set ENTRAPROXY_TLS_KEY_FILE too`},
		{"key without certificate", "", keyA, "ENTRAPROXY_TLS_KEY_FILE", `ENTRAPROXY_TLS_KEY_FILE "` + keyA + `": set ENTRAPROXY_TLS_CERT_FILE too`},
		{"certificate file missing", missing, keyA, "ENTRAPROXY_TLS_CERT_FILE", `ENTRAPROXY_TLS_CERT_FILE "` + missing + `": does not exist`},
		{"certificate is a directory", dir, keyA, "ENTRAPROXY_TLS_CERT_FILE", "is a directory; give the file in it, e.g. " + filepath.Join(dir, "tls.crt")},
		{"files swapped", keyA, certA, "ENTRAPROXY_TLS_CERT_FILE", "are the certificate and key files swapped?"},
		{"key does not match", certA, keyB, "ENTRAPROXY_TLS_KEY_FILE", `ENTRAPROXY_TLS_KEY_FILE "` + keyB + `": does not match the certificate in ` + certA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(environ("ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_TLS_CERT_FILE", tc.cert, "ENTRAPROXY_TLS_KEY_FILE", tc.key))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if msg := err.Error(); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.wantInLine) {
				t.Errorf("error = %q, want one line containing %q", msg, tc.wantInLine)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tc.variable {
				t.Errorf("errors.As(*Error) Var = %v, want %s", ce, tc.variable)
			}
		})
	}
}
