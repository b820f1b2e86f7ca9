package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A handshake still under way when shutdown begins is waited for, and its
// session, once up, is closed with 1001 like the others: net/http forgets a
// connection once it is hijacked, so nothing else would wait for it.
func TestWebSocketShutdownWaitsForHandshakes(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	upgraded := make(chan *websocket.Conn, 1)
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		c, err := wsUpstreamUpgrade(w, r)
		if err != nil {
			return
		}
		upgraded <- c
	}))
	env := newWSFixture(t, up, nil)

	dialed := make(chan *websocket.Conn, 1)
	go func() {
		c, _, err := env.tryDial(wsSpeechPath, nil)
		if err != nil {
			t.Errorf("dial: %v", err)
		}
		dialed <- c
	}()
	wsRecv(t, "handshake at the upstream", arrived)

	shutdownDone := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wsWait)
	defer cancel()
	go func() { shutdownDone <- env.proxy.Shutdown(ctx) }()
	wsEventually(t, "shutdown begun", func() bool {
		env.proxy.ws.mu.Lock()
		defer env.proxy.ws.mu.Unlock()
		return env.proxy.ws.closing
	})
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v while a handshake was under way", err)
	default:
	}

	close(release)
	client := wsRecv(t, "client upgraded", dialed)
	if client == nil {
		t.FailNow()
	}
	defer client.Close()
	upstream := wsRecv(t, "upstream upgraded", upgraded)
	defer upstream.Close()
	go wsReadUntilError(upstream)
	wsWantClose(t, "client", wsReadUntilError(client), websocket.CloseGoingAway, "")
	if err := wsRecv(t, "Shutdown", shutdownDone); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
}

// An upstream that sends half a response head and then stalls, or garbage,
// gets the proxy's JSON error, never koding's own text/plain 503 passed off
// as the upstream's answer.
func TestWebSocketHalfAnswerIsProxyError(t *testing.T) {
	// Only the stalled answer waits for the upstream timeout; the others
	// end at once, and under a short timeout a loaded machine could turn
	// their 502 into a 504 before the proxy has read them.
	tests := []struct {
		name   string
		send   string
		status int
		code   string
	}{
		{"half a head, then silence", "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n", http.StatusGatewayTimeout, "upstream_timeout"},
		{"half a head, then close", "HTTP/1.1 401 Unauthorized\r\nContent-", http.StatusBadGateway, "upstream_unreachable"},
		{"a 101 with a wrong accept key", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n", http.StatusBadGateway, "upstream_unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stall := tc.status == http.StatusGatewayTimeout
			done := make(chan struct{})
			t.Cleanup(func() { close(done) })
			up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				conn.Write([]byte(tc.send))
				if stall {
					<-done
				}
			}))
			timeout := wsWait
			if stall {
				timeout = 300 * time.Millisecond
			}
			env := newWSFixture(t, up, func(o *Options) { o.UpstreamTimeout = timeout })
			resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
			wsWantError(t, resp, body, tc.status, tc.code)
		})
	}
}

// panickyLog is the proxy's log with a handler that panics on the
// session's access line, which the proxy writes on the relay's own
// goroutine, where net/http's recovery does not reach.
type panickyLog struct{ slog.Handler }

func (h panickyLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "websocket" {
		panic("access log exploded")
	}
	return h.Handler.Handle(ctx, r)
}

// A panic while a session's end is reported costs that session's log line,
// nothing more: the process lives on, the panic is logged with its stack,
// and the session is counted out, so Shutdown does not wait for it.
func TestWebSocketPanicAtSessionEndIsRecovered(t *testing.T) {
	env := newWSFixture(t, nil, func(o *Options) { o.Logger = slog.New(panickyLog{o.Logger.Handler()}) })
	client, upstream := env.open(t, wsSpeechPath, nil)
	if err := client.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	wsWantClose(t, "upstream", wsReadUntilError(upstream), websocket.CloseNormalClosure, "")
	env.logs.waitFor(t, "the panic logged", func() bool { return strings.Contains(env.logs.String(), "access log exploded") })

	lines := env.logs.lines(t, "websocket relay panicked")
	if len(lines) != 1 || lines[0]["panic"] != "access log exploded" || !strings.Contains(fmt.Sprint(lines[0]["stack"]), "panickyLog.Handle") {
		t.Errorf("panic log lines %v, want one with the panic's value and its stack", lines)
	}
	// nil, not DeadlineExceeded: the session was counted out. The deadline
	// only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), wsWait)
	defer cancel()
	if err := env.proxy.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	env.proxy.ws.mu.Lock()
	live := len(env.proxy.ws.sessions)
	env.proxy.ws.mu.Unlock()
	if live != 0 {
		t.Errorf("%d sessions still tracked, want 0", live)
	}
}
