package wsrelay

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/entraproxy/entraproxy/internal/wstest"
)

var testKey = []byte{0x37, 0xfa, 0x21, 0x3d}

// meterStream is a client's stream with every header size, masked and
// unmasked frames, a fragmented message, a ping and a close (4000). ends
// holds the offset just past each frame.
func meterStream() (stream []byte, ends []int, frames, payloadBytes int64) {
	parts := []struct {
		fin    bool
		opcode byte
		size   int
		key    []byte
		data   bool
	}{
		{true, opText, 5, nil, true},                    // 7-bit length
		{true, opBinary, 300, testKey, true},            // 16-bit length, masked
		{true, 0x9, 1, testKey, false},                  // ping: not data
		{true, opBinary, 70000, nil, true},              // 64-bit length
		{false, opText, 2, testKey, true},               // first fragment
		{true, opContinuation, 2, testKey, true},        // last fragment
		{true, opBinary, 0, testKey, true},              // empty data frame
		{true, opBinary, 65535, testKey, true},          // largest 16-bit length
		{true, opBinary, 65536, testKey, true},          // smallest 64-bit length
		{true, opBinary, 126, nil, true},                // smallest 16-bit length
		{true, opBinary, 125, nil, true},                // largest 7-bit length
		{true, 0xA, 0, nil, false},                      // pong: not data
		{true, opClose, 0, nil, false},                  // placeholder, replaced below
		{true, opText, 3, testKey, true},                // after the close: still counted
		{true, opBinary, 1, nil, true},                  // one byte
		{true, opBinary, 200, []byte{0, 0, 0, 0}, true}, // zero mask key
	}
	for i, p := range parts {
		payload := bytes.Repeat([]byte{byte('a' + i)}, p.size)
		if p.opcode == opClose {
			payload = wstest.ClosePayload(4000, "client done")
			p.key = testKey
		}
		stream = append(stream, wstest.Frame(p.fin, p.opcode, payload, p.key)...)
		ends = append(ends, len(stream))
		if p.data {
			frames++
			payloadBytes += int64(p.size)
		}
	}
	return stream, ends, frames, payloadBytes
}

func TestFrameMeterChunkingDoesNotChangeCounts(t *testing.T) {
	stream, ends, wantFrames, wantBytes := meterStream()
	for _, chunk := range []int{1, 2, 3, 7, 13, 4096, len(stream)} {
		t.Run("chunk "+strconv.Itoa(chunk), func(t *testing.T) {
			var m frameMeter
			for off := 0; off < len(stream); off += chunk {
				m.feed(stream[off:min(off+chunk, len(stream))])
			}
			if m.frames != wantFrames {
				t.Errorf("frames = %d, want %d", m.frames, wantFrames)
			}
			if m.bytes != wantBytes {
				t.Errorf("bytes = %d, want %d", m.bytes, wantBytes)
			}
			if m.closeCode != 4000 {
				t.Errorf("closeCode = %d, want 4000", m.closeCode)
			}
			if !m.atBoundary() {
				t.Errorf("atBoundary() = false at the end of the stream, want true")
			}
		})
	}

	t.Run("boundary after each byte", func(t *testing.T) {
		isEnd := make(map[int]bool)
		for _, e := range ends {
			isEnd[e] = true
		}
		var m frameMeter
		for i := range stream {
			m.feed(stream[i : i+1])
			if got, want := m.atBoundary(), isEnd[i+1]; got != want {
				t.Fatalf("after %d bytes: atBoundary() = %v, want %v", i+1, got, want)
			}
			if m.atBoundary() != (m.need() == 0) {
				t.Fatalf("after %d bytes: need() = %d with atBoundary() = %v", i+1, m.need(), m.atBoundary())
			}
		}
	})
}

func TestFrameMeterLengths(t *testing.T) {
	tests := []struct {
		name string
		size int
		key  []byte
	}{
		{"empty", 0, nil},
		{"7-bit max", 125, nil},
		{"16-bit min", 126, nil},
		{"16-bit masked", 3200, testKey},
		{"16-bit max", 65535, nil},
		{"64-bit min", 65536, testKey},
		{"64-bit 1 MiB", 1 << 20, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m frameMeter
			m.feed(wstest.Frame(true, opBinary, make([]byte, tc.size), tc.key))
			if m.frames != 1 || m.bytes != int64(tc.size) {
				t.Errorf("frames, bytes = %d, %d, want 1, %d", m.frames, m.bytes, tc.size)
			}
			if !m.atBoundary() {
				t.Errorf("atBoundary() = false after a whole frame, want true")
			}
		})
	}
}

func TestFrameMeterCloseCode(t *testing.T) {
	tests := []struct {
		name   string
		frames [][]byte
		want   int
	}{
		{"masked with reason", [][]byte{wstest.Frame(true, opClose, wstest.ClosePayload(1000, "bye"), testKey)}, 1000},
		{"unmasked application code", [][]byte{wstest.Frame(true, opClose, wstest.ClosePayload(4000, "x"), nil)}, 4000},
		{"masked code only", [][]byte{wstest.Frame(true, opClose, wstest.ClosePayload(1001, ""), []byte{0xff, 0x01, 0x80, 0x7f})}, 1001},
		{"no payload", [][]byte{wstest.Frame(true, opClose, nil, testKey)}, 1005},
		{"the first close wins", [][]byte{
			wstest.Frame(true, opClose, wstest.ClosePayload(4001, ""), testKey),
			wstest.Frame(true, opClose, wstest.ClosePayload(1000, ""), testKey),
		}, 4001},
		{"data only", [][]byte{wstest.Frame(true, opText, wstest.ClosePayload(1000, ""), nil)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, chunk := range []int{1, 1 << 20} {
				var m frameMeter
				stream := bytes.Join(tc.frames, nil)
				for off := 0; off < len(stream); off += chunk {
					m.feed(stream[off:min(off+chunk, len(stream))])
				}
				if m.closeCode != tc.want {
					t.Errorf("chunk %d: closeCode = %d, want %d", chunk, m.closeCode, tc.want)
				}
			}
		})
	}
}

func TestFrameMeterNeedAndBoundary(t *testing.T) {
	tests := []struct {
		name         string
		frame        []byte
		fed          int
		wantNeed     int
		wantBoundary bool
	}{
		{"nothing fed", wstest.Frame(true, opText, make([]byte, 5), nil), 0, 0, true},
		{"first header byte: length unknown", wstest.Frame(true, opText, make([]byte, 5), nil), 1, 1, false},
		{"7-bit header done", wstest.Frame(true, opText, make([]byte, 5), nil), 2, 5, false},
		{"mid payload", wstest.Frame(true, opText, make([]byte, 5), nil), 4, 3, false},
		{"frame done", wstest.Frame(true, opText, make([]byte, 5), nil), 7, 0, true},
		{"masked 7-bit: key pending", wstest.Frame(true, opText, make([]byte, 5), testKey), 2, 4, false},
		{"16-bit masked: length and key pending", wstest.Frame(true, opBinary, make([]byte, 300), testKey), 2, 6, false},
		{"16-bit masked: mid header", wstest.Frame(true, opBinary, make([]byte, 300), testKey), 5, 3, false},
		{"16-bit masked: header done", wstest.Frame(true, opBinary, make([]byte, 300), testKey), 8, 300, false},
		{"16-bit masked: mid payload", wstest.Frame(true, opBinary, make([]byte, 300), testKey), 108, 200, false},
		{"64-bit: length pending", wstest.Frame(true, opBinary, make([]byte, 70000), nil), 2, 8, false},
		{"64-bit: header done", wstest.Frame(true, opBinary, make([]byte, 70000), nil), 10, 70000, false},
		{"64-bit: one byte left", wstest.Frame(true, opBinary, make([]byte, 70000), nil), 70009, 1, false},
		{"empty frame done after 2 bytes", wstest.Frame(true, opBinary, nil, nil), 2, 0, true},
		{"empty masked frame: key pending", wstest.Frame(true, opBinary, nil, testKey), 2, 4, false},
		{"empty masked frame done", wstest.Frame(true, opBinary, nil, testKey), 6, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m frameMeter
			m.feed(tc.frame[:tc.fed])
			if got := m.need(); got != tc.wantNeed {
				t.Errorf("need() = %d, want %d", got, tc.wantNeed)
			}
			if got := m.atBoundary(); got != tc.wantBoundary {
				t.Errorf("atBoundary() = %v, want %v", got, tc.wantBoundary)
			}
		})
	}
}

func TestMaskedCloseFrameParsesBack(t *testing.T) {
	f := maskedCloseFrame(1001, GoingAwayReason)

	if f[0] != 0x80|opClose {
		t.Errorf("first byte = %#x, want FIN|close %#x", f[0], 0x80|opClose)
	}
	if f[1]&0x80 == 0 {
		t.Errorf("mask bit clear: a server rejects unmasked client frames")
	}
	n := int(f[1] & 0x7f)
	if n > 125 {
		t.Fatalf("payload length %d, want at most 125 (control frame)", n)
	}
	if got, want := len(f), 2+4+n; got != want {
		t.Fatalf("frame length = %d, want %d", got, want)
	}
	key, payload := f[2:6], bytes.Clone(f[6:])
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	if got := int(binary.BigEndian.Uint16(payload)); got != 1001 {
		t.Errorf("code = %d, want 1001", got)
	}
	if got := string(payload[2:]); got != GoingAwayReason {
		t.Errorf("reason = %q, want %q", got, GoingAwayReason)
	}

	var m frameMeter
	m.feed(f)
	if m.closeCode != 1001 || !m.atBoundary() || m.frames != 0 {
		t.Errorf("meter after the frame: closeCode %d, atBoundary %v, frames %d; want 1001, true, 0", m.closeCode, m.atBoundary(), m.frames)
	}
}

// chunkConn is a client connection that returns stream in reads of at most
// chunk bytes.
type chunkConn struct {
	net.Conn
	stream []byte
	chunk  int
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.stream) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.chunk)], c.stream)
	c.stream = c.stream[n:]
	return n, nil
}

// refFirstOver parses stream independently of frameMeter and returns the
// offset where the first data frame header that takes its message over
// limit starts, or -1.
func refFirstOver(stream []byte, limit uint64) int {
	var msg uint64
	for pos := 0; pos < len(stream); {
		if len(stream)-pos < 2 {
			return -1
		}
		b0, b1 := stream[pos], stream[pos+1]
		hdr, length := 2, uint64(b1&0x7f)
		switch length {
		case 126:
			if len(stream)-pos < 4 {
				return -1
			}
			length, hdr = uint64(binary.BigEndian.Uint16(stream[pos+2:])), 4
		case 127:
			if len(stream)-pos < 10 {
				return -1
			}
			length, hdr = binary.BigEndian.Uint64(stream[pos+2:]), 10
		}
		if b1&0x80 != 0 {
			hdr += 4
		}
		if len(stream)-pos < hdr {
			return -1
		}
		data := true
		switch b0 & 0x0f {
		case opText, opBinary:
			msg = length
		case opContinuation:
			msg += min(length, ^uint64(0)-msg)
		default:
			data = false // control frames are not part of a message
		}
		if data && msg > limit {
			return pos
		}
		if length > uint64(len(stream)-pos-hdr) {
			return -1
		}
		pos += hdr + int(length)
	}
	return -1
}

// Whatever the client sends and however the reads split it, gorilla gets
// exactly the stream up to the first data frame header that takes its
// message over the limit, then a close 1009, and nothing of that header;
// and the meter stands where a parse of what gorilla got would leave it.
func FuzzClientMessageLimit(f *testing.F) {
	small := wstest.Frame(true, opBinary, []byte("audio"), testKey)
	over := wstest.HeaderOnly(true, opBinary, 1<<62, testKey) // declares 2^62 bytes, sends none
	frag := append(wstest.Frame(false, opText, bytes.Repeat([]byte("x"), 300), testKey), wstest.Frame(true, 0x9, nil, nil)...)
	cont := wstest.HeaderOnly(true, opContinuation, MaxClientMessage, nil)
	f.Add(append(append([]byte{}, small...), over...), uint8(1))
	f.Add(append(append(append([]byte{}, small...), frag...), cont...), uint8(3))
	f.Add(append(append([]byte{}, frag...), small...), uint8(13))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		c := &clientConn{Conn: &chunkConn{stream: stream, chunk: int(chunk)%40 + 1}}
		var got []byte
		buf := make([]byte, 4096)
		for range len(stream) + 4 {
			n, err := c.readClient(buf)
			got = append(got, buf[:n]...)
			if err != nil || c.tooBig {
				break
			}
		}
		// Each byte is parsed once, as it is cut: the meter kept is the one
		// a second pass over what gorilla got would give.
		var ref frameMeter
		ref.feed(got)
		if c.in != ref {
			t.Fatalf("meter after %d bytes delivered = %+v, want %+v", len(got), c.in, ref)
		}
		cut := refFirstOver(stream, MaxClientMessage)
		if cut >= 0 {
			if !c.tooBig || !bytes.Equal(got, stream[:cut]) {
				t.Fatalf("delivered %d bytes (tooBig %v), want the %d before the oversized header at %d", len(got), c.tooBig, cut, cut)
			}
			if want := maskedCloseFrame(1009, MessageTooBigReason); !bytes.Equal(c.pending, want) {
				t.Fatalf("pending = %x, want the 1009 close frame", c.pending)
			}
			return
		}
		if c.tooBig || !bytes.Equal(got, stream[:len(got)]) || len(stream)-len(got) >= 14 { // the longest frame header (RFC 6455, section 5.2)
			t.Fatalf("delivered %d of %d bytes (tooBig %v), want all but at most an unfinished header", len(got), len(stream), c.tooBig)
		}
	})
}

// BenchmarkFrameMeterAudio is the meter's work for one 3,200-byte audio
// frame each way: the client's masked frame through cutFrames (as
// readClient sees it) and the upstream's unmasked one through feed (as
// clientConn.Write sees it).
func BenchmarkFrameMeterAudio(b *testing.B) {
	payload := bytes.Repeat([]byte{'a'}, 3200)
	in := wstest.Frame(true, opBinary, payload, testKey)
	out := wstest.Frame(true, opBinary, payload, nil)
	var m, o frameMeter
	var msg uint64
	b.SetBytes(int64(len(in) + len(out)))
	for b.Loop() {
		cut := cutFrames(m, msg, in, MaxClientMessage)
		m, msg = cut.meter, cut.msg
		o.feed(out)
	}
	if m.frames == 0 || o.frames == 0 {
		b.Fatal("no frames metered")
	}
}
