package wsrelay

import (
	"io"
	"net"
	"testing"

	"github.com/entraproxy/entraproxy/internal/wstest"
)

// A frame to the client counts once written: one whose write fails (the
// session ended under it, as koding's other relay goroutine may find) was
// never relayed, and Stats must not say it was.
func TestStatsCountFramesToClientOnceWritten(t *testing.T) {
	conn, peer := net.Pipe()
	go io.Copy(io.Discard, peer)
	up, upPeer := net.Pipe()
	defer up.Close()
	defer upPeer.Close()
	s := newSession(conn, &upstreamConn{Conn: up, wrote: newCloseWatch()}, nil)

	frame := wstest.Frame(true, opBinary, make([]byte, 10), nil)
	for _, b := range [][]byte{[]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"), frame} {
		if _, err := s.client.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	if _, err := s.client.Write(frame); err == nil {
		t.Fatal("write to a closed connection succeeded")
	}
	if st := s.Stats(); st.FramesOut != 1 || st.BytesOut != 10 {
		t.Errorf("Stats: %d frames, %d bytes out, want 1 and 10 (the frame written)", st.FramesOut, st.BytesOut)
	}
}
