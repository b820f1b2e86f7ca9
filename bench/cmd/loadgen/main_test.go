package main

import (
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWSTTS runs the Speech-shaped load against a fake /ws/tts that answers
// each request at once with ?frames= frames stamped an hour in the past and
// a turn.end: every session asks for turns, counts 3,200-byte frames, and
// takes each frame's delay from its stamp.
func TestWSTTS(t *testing.T) {
	var requests atomic.Int64
	upgrader := websocket.Upgrader{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("frames"); got != "2" {
			t.Errorf("frames = %q, want %q", got, "2")
		}
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		frame := make([]byte, 3200)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if mt != websocket.TextMessage || !strings.Contains(string(msg), "Path:ssml") {
				t.Errorf("request = type %d %q, want a text ssml request", mt, msg)
			}
			requests.Add(1)
			for range 2 {
				binary.BigEndian.PutUint64(frame, uint64(time.Now().Add(-time.Hour).UnixNano()))
				if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
					return
				}
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("Path:turn.end\r\n\r\n")); err != nil {
				return
			}
		}
	}))
	defer up.Close()

	const sessions = 4
	res, err := runWSTTS([]string{"-url", "ws" + strings.TrimPrefix(up.URL, "http") + "/ws/tts", "-sessions", "4", "-frames", "2", "-d", "200ms", "-warmup", "50ms"})
	if err != nil {
		t.Fatal(err)
	}
	r := res.(Result)
	if r.Errors != 0 || r.Sessions != sessions {
		t.Errorf("errors %d, sessions %d; want 0, %d", r.Errors, r.Sessions, sessions)
	}
	// Every session reads at least the first frame of its first turn.
	if r.Total < sessions || requests.Load() < sessions {
		t.Errorf("frames %d, requests %d; want at least %d of each", r.Total, requests.Load(), sessions)
	}
	if r.Ops > 0 && r.P50us < float64(time.Hour.Microseconds()) {
		t.Errorf("delay p50 = %.0f µs, want at least an hour: the frames were stamped an hour ago", r.P50us)
	}
}
