package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// TestRelaysWithStaticAuthorization: koding-bare relays a session both ways
// with the static Authorization header, the same path and query, and stops
// when its context ends.
func TestRelaysWithStaticAuthorization(t *testing.T) {
	var (
		mu   sync.Mutex
		seen *http.Request
	)
	upgrader := websocket.Upgrader{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r
		mu.Unlock()
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	defer up.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-upstream", up.URL}, pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))

	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/tts/cognitiveservices/websocket/v1?X-ConnectionId=abc", http.Header{"Authorization": {"Bearer client"}})
	if err != nil {
		t.Fatal(err)
	}
	frame := bytes.Repeat([]byte("a"), 3200)
	if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		t.Fatal(err)
	}
	mt, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if mt != websocket.BinaryMessage || !bytes.Equal(got, frame) {
		t.Errorf("echo = type %d, %d bytes, want binary, the %d bytes sent", mt, len(got), len(frame))
	}
	c.Close()

	mu.Lock()
	r := seen
	mu.Unlock()
	if got, want := r.Header.Get("Authorization"), "Bearer x"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if got, want := r.URL.RequestURI(), "/tts/cognitiveservices/websocket/v1?X-ConnectionId=abc"; got != want {
		t.Errorf("request URI = %q, want %q", got, want)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v, want nil after its context ended", err)
	}
}
