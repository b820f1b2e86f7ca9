package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testca"
)

// tlsClient trusts only ca. http2 chooses whether it offers h2 (ALPN) or
// HTTP/1.1 only. Every request opens a new connection, so each one shows
// the certificate served at that moment.
func tlsClient(t *testing.T, ca *testca.CA, http2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2: http2,
		DisableKeepAlives: true,
	}
	if !http2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: leakcheck.HangGuard}
}

func serialOf(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// restSynthesis is a REST TTS request as curl sends it, with a dummy key.
func restSynthesis(t *testing.T, base string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, base+"/cognitiveservices/v1",
		strings.NewReader(`<speak version="1.0" xml:lang="en-US"><voice name="en-US-AriaNeural">Hello over TLS</voice></speak>`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/ssml+xml")
	req.Header.Set("X-Microsoft-OutputFormat", "riff-16khz-16bit-mono-pcm")
	req.Header.Set("Ocp-Apim-Subscription-Key", "dummy")
	return req
}

// TestServeTLS runs the whole program with ENTRAPROXY_TLS_CERT_FILE and
// ENTRAPROXY_TLS_KEY_FILE in a Kubernetes-style Secret volume, against the
// fake Azure: HTTPS over HTTP/1.1 and HTTP/2 and a WSS Speech session work;
// then the volume is renewed in place (the ..data symlink swap cert-manager's
// renewals arrive by) while that session is open. New handshakes get the new
// certificate, the open session keeps its connection and synthesizes again,
// and the reload shows in the log and the metrics.
func TestServeTLS(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthBearer}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())

	ca := testca.New(t, "entraproxy TestServeTLS CA")
	first, renewed := ca.Issue(t, "entraproxy first", "127.0.0.1", "localhost"), ca.Issue(t, "entraproxy renewed", "127.0.0.1", "localhost")
	vol := testca.NewSecretVolume(t.TempDir())
	vol.Write(t, first)

	p := startInProcess(t, true, nil,
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"AZURE_CLIENT_ID", uniqueClientID(),
		"ENTRAPROXY_TLS_CERT_FILE", vol.CertFile(),
		"ENTRAPROXY_TLS_KEY_FILE", vol.KeyFile(),
	)
	base := "https://" + p.listen

	for _, tc := range []struct {
		name      string
		http2     bool
		wantProto string
	}{{"HTTP/1.1", false, "HTTP/1.1"}, {"HTTP/2", true, "HTTP/2.0"}} {
		t.Run("REST synthesis over "+tc.name, func(t *testing.T) {
			resp, err := tlsClient(t, ca, tc.http2).Do(restSynthesis(t, base))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("RIFF")) {
				t.Fatalf("synthesis = %d %q, want 200 and a RIFF WAV", resp.StatusCode, body[:min(len(body), 200)])
			}
			if resp.Proto != tc.wantProto {
				t.Errorf("protocol = %s, want %s", resp.Proto, tc.wantProto)
			}
			if got := serialOf(resp.TLS.PeerCertificates[0]); got != serialOf(first.Leaf) {
				t.Errorf("served certificate %s, want the first one %s", got, serialOf(first.Leaf))
			}
		})
	}

	// A Speech session over wss://, as the native SDK opens it with host="wss://...".
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, Subprotocols: []string{"USP"}, HandshakeTimeout: leakcheck.HangGuard}
	header := http.Header{"Ocp-Apim-Subscription-Key": {"dummy"}, "X-Connectionid": {"0123456789abcdef0123456789abcdef"}}
	session, resp, err := dialer.Dial("wss://"+p.listen+"/cognitiveservices/websocket/v1", header)
	if err != nil {
		t.Fatalf("wss handshake: %v (response %v)", err, resp)
	}
	defer session.Close()
	if got := serialOf(session.UnderlyingConn().(*tls.Conn).ConnectionState().PeerCertificates[0]); got != serialOf(first.Leaf) {
		t.Errorf("wss session got certificate %s, want the first one %s", got, serialOf(first.Leaf))
	}
	session.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
	if audio, err := fakeazure.Synthesize(session, "before the renewal", ""); err != nil || len(audio) == 0 {
		t.Fatalf("synthesis on the wss session: %d bytes, %v", len(audio), err)
	}

	vol.Write(t, renewed)

	resp, err = tlsClient(t, ca, false).Do(restSynthesis(t, base))
	if err != nil {
		t.Fatalf("request after the renewal: %v", err)
	}
	resp.Body.Close()
	if got := serialOf(resp.TLS.PeerCertificates[0]); resp.StatusCode != http.StatusOK || got != serialOf(renewed.Leaf) {
		t.Errorf("after the renewal: status %d, certificate %s; want 200 and the renewed %s", resp.StatusCode, got, serialOf(renewed.Leaf))
	}
	if audio, err := fakeazure.Synthesize(session, "after the renewal, same session", ""); err != nil || len(audio) == 0 {
		t.Fatalf("the session opened before the renewal: %d bytes, %v", len(audio), err)
	}
	if n := countWebSocketHandshakes(fake); n != 1 {
		t.Errorf("the fake saw %d WebSocket handshakes, want 1 (the session must have kept its connection)", n)
	}

	if !strings.Contains(p.logs.String(), `"msg":"tls certificate reloaded"`) || !strings.Contains(p.logs.String(), serialOf(renewed.Leaf)) {
		t.Errorf("no reload line naming serial %s in the log:\n%s", serialOf(renewed.Leaf), p.logs.String())
	}
	metrics := scrape(t, p.admin)
	for _, want := range []string{
		`entraproxy_tls_certificate_reloads_total{result="success"} 1`,
		`entraproxy_tls_certificate_reloads_total{result="failure"} 0`,
		fmt.Sprintf("entraproxy_tls_certificate_expiry_timestamp_seconds %s", promFloat(renewed.Leaf.NotAfter)),
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}

	t.Run("plain HTTP to the TLS listener", func(t *testing.T) {
		resp, err := testClient(t).Get("http://" + p.listen + "/cognitiveservices/voices/list")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("plain HTTP got %d %q, want 400 saying to use HTTPS", resp.StatusCode, body)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		c, err := tls.Dial("tcp", p.listen, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Error("a TLS 1.1 handshake succeeded, want it refused")
		}
	})

	session.Close()
	if err := p.stop(); err != nil {
		t.Errorf("run returned %v, want nil after a clean shutdown", err)
	}
}

func countWebSocketHandshakes(fake *fakeazure.Azure) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.WebSocket {
			n++
		}
	}
	return n
}

// scrape returns the admin listener's /metrics text.
func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := testClient(t).Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// promFloat writes a time as the Prometheus text format writes a gauge of
// Unix seconds (expfmt: strconv 'g', shortest); certificates carry whole
// seconds.
func promFloat(at time.Time) string {
	return strconv.FormatFloat(float64(at.Unix()), 'g', -1, 64)
}

// Bad TLS settings stop start-up with exit code 2 and say which file is
// wrong and how.
func TestTLSSettingsExitTwo(t *testing.T) {
	ca := testca.New(t, "entraproxy TestTLSSettingsExitTwo CA")
	dir := t.TempDir()
	a, b := ca.Issue(t, "a", "127.0.0.1"), ca.Issue(t, "b", "127.0.0.1")
	a.WriteFiles(t, filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"))
	b.WriteFiles(t, filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key"))
	for _, tc := range []struct {
		name      string
		cert, key string
		want      string
	}{
		{"certificate without key", filepath.Join(dir, "a.crt"), "", "set ENTRAPROXY_TLS_KEY_FILE too"},
		{"key without certificate", "", filepath.Join(dir, "a.key"), "set ENTRAPROXY_TLS_CERT_FILE too"},
		{"unreadable certificate", filepath.Join(dir, "missing.crt"), filepath.Join(dir, "a.key"), `ENTRAPROXY_TLS_CERT_FILE "` + filepath.Join(dir, "missing.crt") + `": does not exist`},
		{"key of another certificate", filepath.Join(dir, "a.crt"), filepath.Join(dir, "b.key"), `ENTRAPROXY_TLS_KEY_FILE "` + filepath.Join(dir, "b.key") + `": does not match the certificate in ` + filepath.Join(dir, "a.crt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), nil, environ(
				"ENTRAPROXY_UPSTREAM", "http://127.0.0.1:1",
				"ENTRAPROXY_LISTEN", "127.0.0.1:0", "ENTRAPROXY_ADMIN_LISTEN", "off",
				"ENTRAPROXY_TLS_CERT_FILE", tc.cert, "ENTRAPROXY_TLS_KEY_FILE", tc.key,
			), nil, io.Discard, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.want)
			}
		})
	}
}

// Inbound keys sent across a network in plain text are worth a warning at
// start: a non-loopback listener with keys and no TLS gets one; a loopback
// listener or TLS does not. Each run stops at a listener that cannot be
// opened (192.0.2.10 is TEST-NET-1, on no machine), after the warning would
// have been logged, so nothing listens beyond loopback.
func TestPlaintextInboundKeysWarning(t *testing.T) {
	ca := testca.New(t, "entraproxy TestPlaintextInboundKeysWarning CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Issue(t, "gateway", "192.0.2.10").WriteFiles(t, certFile, keyFile)
	const warning = `"msg":"inbound keys travel in plain text: ENTRAPROXY_LISTEN is not a loopback address and TLS is off; ` +
		`set ENTRAPROXY_TLS_CERT_FILE and ENTRAPROXY_TLS_KEY_FILE, or keep the network between the apps and the proxy private"`
	for _, tc := range []struct {
		name        string
		env         []string
		wantWarning bool
	}{
		{"non-loopback, keys, no TLS", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_INBOUND_KEYS", "k1"}, true},
		{"non-loopback, keys, TLS", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_INBOUND_KEYS", "k1",
			"ENTRAPROXY_TLS_CERT_FILE", certFile, "ENTRAPROXY_TLS_KEY_FILE", keyFile}, false},
		{"non-loopback, no keys (allowed unauthenticated)", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_ALLOW_UNAUTHENTICATED", "true"}, false},
		{"loopback, keys, no TLS", []string{"ENTRAPROXY_LISTEN", "127.0.0.1:0", "ENTRAPROXY_ADMIN_LISTEN", "192.0.2.10:0", "ENTRAPROXY_INBOUND_KEYS", "k1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := append([]string{"ENTRAPROXY_UPSTREAM", "http://127.0.0.1:1", "ENTRAPROXY_ADMIN_LISTEN", "off",
				"ENTRAPROXY_CREDENTIAL", "managed-identity", "ENTRAPROXY_LOG_FORMAT", "json"}, tc.env...)
			err := run(context.Background(), nil, environ(env...), nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), "192.0.2.10:0") {
				t.Fatalf("run = %v, want it to stop at listening on 192.0.2.10:0", err)
			}
			if got := strings.Contains(stderr.String(), warning); got != tc.wantWarning {
				t.Errorf("warning logged = %v, want %v; log:\n%s", got, tc.wantWarning, stderr.String())
			}
			if tc.wantWarning && !strings.Contains(stderr.String(), `"level":"WARN"`) {
				t.Errorf("the warning is not at WARN level:\n%s", stderr.String())
			}
		})
	}
}
