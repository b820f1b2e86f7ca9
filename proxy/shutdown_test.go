package proxy

import (
	"context"
	"net/http"
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
	up := newWSUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		c, err := wsUpstreamUpgrade(w, r)
		if err != nil {
			return
		}
		upgraded <- c
	}))
	env := newWSEnv(t, up, nil)

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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { shutdownDone <- env.p.Shutdown(ctx) }()
	wsEventually(t, "shutdown begun", func() bool {
		env.p.ws.mu.Lock()
		defer env.p.ws.mu.Unlock()
		return env.p.ws.closing
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
