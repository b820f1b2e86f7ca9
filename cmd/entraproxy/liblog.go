package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// libraryLogger is a *log.Logger for what libraries log through Go's
// standard log package or an http.Server's ErrorLog: each line goes to
// logger at the level libraryLogLevel gives it. (slog.NewLogLogger would
// put every line at one level; net/http and koding/websocketproxy offer no
// other hook for these lines, and a ConnState callback sees a failed
// handshake only as a closed connection, without the line or its cause.)
func libraryLogger(logger *slog.Logger) *log.Logger {
	return log.New(libraryLogWriter{logger}, "", 0)
}

type libraryLogWriter struct{ logger *slog.Logger }

func (w libraryLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	w.logger.Log(context.Background(), libraryLogLevel(msg), msg)
	return len(p), nil
}

// libraryLogLevel is the level of one library log line: debug for the
// lines known to say nothing an operator should act on, or nothing the
// proxy does not log itself; warn for every other line, since a library
// logs what it could not handle.
//
//   - "http: TLS handshake error from ADDR: EOF": a TCP connection that
//     closed before sending a byte of its handshake. That is what kubelet
//     tcpSocket probes, load balancer health checks and port scans do,
//     every few seconds. net/http writes the line in (*conn).serve
//     (net/http/server.go: c.server.logf("http: TLS handshake error from
//     %s: %v", c.rwc.RemoteAddr(), reason)). Every other handshake error (a
//     plain HTTP request, an untrusted certificate, an old TLS version, a
//     reset) stays a warning: a client is set up wrong.
//   - "websocketproxy: couldn't dial to remote backend url ...": koding's
//     line for a failed upstream dial or handshake (websocketproxy.go,
//     ServeHTTP: log.Printf("websocketproxy: couldn't dial to remote
//     backend url %s", err), at 7ed82d81a28c), for which the proxy logs its
//     own warning, "websocket handshake failed", with the path and the
//     error's code.
func libraryLogLevel(msg string) slog.Level {
	switch {
	case strings.HasPrefix(msg, "http: TLS handshake error from ") && strings.HasSuffix(msg, ": EOF"):
		return slog.LevelDebug
	case strings.HasPrefix(msg, "websocketproxy: couldn't dial to remote backend url "):
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
