package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestTTSTurns: each text request on /ws/tts is answered by ?frames= audio
// frames of 3,200 bytes, stamped in send order, and one turn.end text
// message; a second request starts a second turn.
func TestTTSTurns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	var r ready
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.URL, "http")+"/ws/tts?frames=3", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for turn := range 2 {
		if err := c.WriteMessage(websocket.TextMessage, []byte("Path:ssml\r\n\r\n<speak/>")); err != nil {
			t.Fatal(err)
		}
		var last uint64
		for k := range 3 {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if mt != websocket.BinaryMessage || len(msg) != audioFrame {
				t.Fatalf("turn %d frame %d: type %d, %d bytes, want binary, %d", turn, k, mt, len(msg), audioFrame)
			}
			stamp := binary.BigEndian.Uint64(msg)
			if stamp < last {
				t.Errorf("turn %d frame %d: stamp %d before the previous frame's %d", turn, k, stamp, last)
			}
			last = stamp
		}
		mt, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt != websocket.TextMessage || !strings.Contains(string(msg), "Path:turn.end") {
			t.Errorf("turn %d: after the frames got type %d %q, want the turn.end text message", turn, mt, msg)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v, want nil", err)
	}
}
