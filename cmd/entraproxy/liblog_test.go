package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testca"
	"github.com/entraproxy/entraproxy/internal/testport"
)

// Which library log lines are worth a warning: the level of each known
// line, by its text as the library writes it.
func TestLibraryLogLevel(t *testing.T) {
	for _, tc := range []struct {
		line string
		want slog.Level
	}{
		// A TCP connect that sent nothing (kubelet tcpSocket probe, scan).
		{"http: TLS handshake error from 10.0.0.7:51234: EOF", slog.LevelDebug},
		{"http: TLS handshake error from [::1]:51234: EOF", slog.LevelDebug},
		// Real handshake failures.
		{"http: TLS handshake error from 10.0.0.7:51234: client sent an HTTP request to an HTTPS server", slog.LevelWarn},
		{"http: TLS handshake error from 10.0.0.7:51234: remote error: tls: unknown certificate authority", slog.LevelWarn},
		{"http: TLS handshake error from 10.0.0.7:51234: tls: client offered only unsupported versions: [302 301]", slog.LevelWarn},
		{"http: TLS handshake error from 10.0.0.7:51234: read tcp 10.0.0.5:8443->10.0.0.7:51234: read: connection reset by peer", slog.LevelWarn},
		{"http: TLS handshake error from 10.0.0.7:51234: EOF, and more", slog.LevelWarn},
		// koding's failed dial, which the proxy's own warning reports.
		{"websocketproxy: couldn't dial to remote backend url dial tcp 127.0.0.1:1: connect: connection refused", slog.LevelDebug},
		{"websocketproxy: couldn't dial to remote backend url websocket: bad handshake", slog.LevelDebug},
		// Everything else stays a warning.
		{"websocketproxy: couldn't upgrade websocket: the client is not using the websocket protocol", slog.LevelWarn},
		{"http: panic serving 127.0.0.1:1: boom", slog.LevelWarn},
		{"anything else", slog.LevelWarn},
	} {
		if got := libraryLogLevel(tc.line); got != tc.want {
			t.Errorf("libraryLogLevel(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

// The whole program at debug level, TLS on, the upstream refusing
// connections: a bare TCP connect to the TLS listener (a kubelet tcpSocket
// probe) is a debug line, not a warning; a plain HTTP request to it is
// still a warning; a WebSocket whose upstream dial fails is one warning
// (the proxy's), with koding's line of the same failure at debug.
func TestLibraryLogNoise(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	startRecordingIdentity(t, fake)
	ca := testca.New(t, "entraproxy TestLibraryLogNoise CA")
	vol := testca.NewSecretVolume(t.TempDir())
	vol.Write(t, ca.Issue(t, "entraproxy", "127.0.0.1"))
	refused := testport.Reserve(t)

	p := startInProcess(t, true, nil,
		"ENTRAPROXY_UPSTREAM", "http://"+refused.Addr(),
		"AZURE_CLIENT_ID", uniqueClientID(),
		"ENTRAPROXY_TLS_CERT_FILE", vol.CertFile(),
		"ENTRAPROXY_TLS_KEY_FILE", vol.KeyFile(),
		"ENTRAPROXY_LOG_LEVEL", "debug",
	)
	type line struct{ Level, Msg string }
	lines := func(log string, match func(line) bool) []line {
		var out []line
		for _, raw := range strings.Split(log, "\n") {
			var l line
			if json.Unmarshal([]byte(raw), &l) == nil && match(l) {
				out = append(out, l)
			}
		}
		return out
	}

	// A bare TCP connect, closed without a byte.
	conn, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	conn.Close()
	handshakeEOF := func(l line) bool { return l.Msg == "http: TLS handshake error from "+local+": EOF" }
	p.logs.waitFor(t, "the bare connect's handshake error", func(log string) bool { return len(lines(log, handshakeEOF)) > 0 })
	if got := lines(p.logs.String(), handshakeEOF); len(got) != 1 || got[0].Level != "DEBUG" {
		t.Errorf("bare connect logged %v, want one DEBUG line", got)
	}

	// Plain HTTP to the TLS listener: a client that is set up wrong.
	conn, err = net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	local = conn.LocalAddr().String()
	io.WriteString(conn, "GET /cognitiveservices/voices/list HTTP/1.1\r\nHost: localhost\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener: %v, %v; want 400", resp, err)
	}
	conn.Close()
	plainHTTP := func(l line) bool {
		return l.Msg == "http: TLS handshake error from "+local+": client sent an HTTP request to an HTTPS server"
	}
	p.logs.waitFor(t, "the plain HTTP request's handshake error", func(log string) bool { return len(lines(log, plainHTTP)) > 0 })
	if got := lines(p.logs.String(), plainHTTP); len(got) != 1 || got[0].Level != "WARN" {
		t.Errorf("plain HTTP request logged %v, want one WARN line", got)
	}

	// A WebSocket whose upstream refuses the connection: 502, one warning.
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, HandshakeTimeout: leakcheck.HangGuard}
	_, resp, err := dialer.Dial("wss://"+p.listen+"/cognitiveservices/websocket/v1", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("WebSocket to a refusing upstream: %v, %v; want 502", resp, err)
	}
	// koding logs its line before it returns to the proxy, which then logs
	// its own.
	p.logs.waitFor(t, "the proxy's warning", func(log string) bool { return strings.Contains(log, `"msg":"websocket handshake failed"`) })
	var warns, kodingDebug []line
	for _, l := range lines(p.logs.String(), func(line) bool { return true }) {
		if l.Level == "WARN" && l.Msg != "http: TLS handshake error from "+local+": client sent an HTTP request to an HTTPS server" {
			warns = append(warns, l)
		}
		if l.Level == "DEBUG" && strings.HasPrefix(l.Msg, "websocketproxy: couldn't dial to remote backend url ") {
			kodingDebug = append(kodingDebug, l)
		}
	}
	if len(warns) != 1 || warns[0].Msg != "websocket handshake failed" {
		t.Errorf("warnings = %v, want one: websocket handshake failed", warns)
	}
	if len(kodingDebug) != 1 {
		t.Errorf("koding's dial line at debug: %v, want one", kodingDebug)
	}
}
