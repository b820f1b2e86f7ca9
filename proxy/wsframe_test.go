package proxy

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
)

// wsTestFrame encodes one WebSocket frame (RFC 6455, section 5.2). A non-nil
// key masks the payload, as a client must.
func wsTestFrame(fin bool, opcode byte, payload, key []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var maskBit byte
	if key != nil {
		maskBit = 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit|byte(n))
	case n <= 0xffff:
		f = append(f, maskBit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if key == nil {
		return append(f, payload...)
	}
	f = append(f, key[:4]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

func wsClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

var wsTestKey = []byte{0x37, 0xfa, 0x21, 0x3d}

// wsMeterStream is a client's stream with every header size, masked and
// unmasked frames, a fragmented message, a ping and a close (4000). ends
// holds the offset just past each frame.
func wsMeterStream() (stream []byte, ends []int, frames, payloadBytes int64) {
	parts := []struct {
		fin    bool
		opcode byte
		size   int
		key    []byte
		data   bool
	}{
		{true, opText, 5, nil, true},                    // 7-bit length
		{true, opBinary, 300, wsTestKey, true},          // 16-bit length, masked
		{true, 0x9, 1, wsTestKey, false},                // ping: not data
		{true, opBinary, 70000, nil, true},              // 64-bit length
		{false, opText, 2, wsTestKey, true},             // first fragment
		{true, opContinuation, 2, wsTestKey, true},      // last fragment
		{true, opBinary, 0, wsTestKey, true},            // empty data frame
		{true, opBinary, 65535, wsTestKey, true},        // largest 16-bit length
		{true, opBinary, 65536, wsTestKey, true},        // smallest 64-bit length
		{true, opBinary, 126, nil, true},                // smallest 16-bit length
		{true, opBinary, 125, nil, true},                // largest 7-bit length
		{true, 0xA, 0, nil, false},                      // pong: not data
		{true, opClose, 0, nil, false},                  // placeholder, replaced below
		{true, opText, 3, wsTestKey, true},              // after the close: still counted
		{true, opBinary, 1, nil, true},                  // one byte
		{true, opBinary, 200, []byte{0, 0, 0, 0}, true}, // zero mask key
	}
	for i, p := range parts {
		payload := bytes.Repeat([]byte{byte('a' + i)}, p.size)
		if p.opcode == opClose {
			payload = wsClosePayload(4000, "client done")
			p.key = wsTestKey
		}
		stream = append(stream, wsTestFrame(p.fin, p.opcode, payload, p.key)...)
		ends = append(ends, len(stream))
		if p.data {
			frames++
			payloadBytes += int64(p.size)
		}
	}
	return stream, ends, frames, payloadBytes
}

func TestFrameMeterChunkingDoesNotChangeCounts(t *testing.T) {
	stream, ends, wantFrames, wantBytes := wsMeterStream()
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
		{"16-bit masked", 3200, wsTestKey},
		{"16-bit max", 65535, nil},
		{"64-bit min", 65536, wsTestKey},
		{"64-bit 1 MiB", 1 << 20, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m frameMeter
			m.feed(wsTestFrame(true, opBinary, make([]byte, tc.size), tc.key))
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
		{"masked with reason", [][]byte{wsTestFrame(true, opClose, wsClosePayload(1000, "bye"), wsTestKey)}, 1000},
		{"unmasked application code", [][]byte{wsTestFrame(true, opClose, wsClosePayload(4000, "x"), nil)}, 4000},
		{"masked code only", [][]byte{wsTestFrame(true, opClose, wsClosePayload(1001, ""), []byte{0xff, 0x01, 0x80, 0x7f})}, 1001},
		{"no payload", [][]byte{wsTestFrame(true, opClose, nil, wsTestKey)}, 1005},
		{"the first close wins", [][]byte{
			wsTestFrame(true, opClose, wsClosePayload(4001, ""), wsTestKey),
			wsTestFrame(true, opClose, wsClosePayload(1000, ""), wsTestKey),
		}, 4001},
		{"data only", [][]byte{wsTestFrame(true, opText, wsClosePayload(1000, ""), nil)}, 0},
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
		{"nothing fed", wsTestFrame(true, opText, make([]byte, 5), nil), 0, 0, true},
		{"first header byte: length unknown", wsTestFrame(true, opText, make([]byte, 5), nil), 1, 1, false},
		{"7-bit header done", wsTestFrame(true, opText, make([]byte, 5), nil), 2, 5, false},
		{"mid payload", wsTestFrame(true, opText, make([]byte, 5), nil), 4, 3, false},
		{"frame done", wsTestFrame(true, opText, make([]byte, 5), nil), 7, 0, true},
		{"masked 7-bit: key pending", wsTestFrame(true, opText, make([]byte, 5), wsTestKey), 2, 4, false},
		{"16-bit masked: length and key pending", wsTestFrame(true, opBinary, make([]byte, 300), wsTestKey), 2, 6, false},
		{"16-bit masked: mid header", wsTestFrame(true, opBinary, make([]byte, 300), wsTestKey), 5, 3, false},
		{"16-bit masked: header done", wsTestFrame(true, opBinary, make([]byte, 300), wsTestKey), 8, 300, false},
		{"16-bit masked: mid payload", wsTestFrame(true, opBinary, make([]byte, 300), wsTestKey), 108, 200, false},
		{"64-bit: length pending", wsTestFrame(true, opBinary, make([]byte, 70000), nil), 2, 8, false},
		{"64-bit: header done", wsTestFrame(true, opBinary, make([]byte, 70000), nil), 10, 70000, false},
		{"64-bit: one byte left", wsTestFrame(true, opBinary, make([]byte, 70000), nil), 70009, 1, false},
		{"empty frame done after 2 bytes", wsTestFrame(true, opBinary, nil, nil), 2, 0, true},
		{"empty masked frame: key pending", wsTestFrame(true, opBinary, nil, wsTestKey), 2, 4, false},
		{"empty masked frame done", wsTestFrame(true, opBinary, nil, wsTestKey), 6, 0, true},
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
	f := maskedCloseFrame(1001, goingAwayReason)

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
	if got := string(payload[2:]); got != goingAwayReason {
		t.Errorf("reason = %q, want %q", got, goingAwayReason)
	}

	var m frameMeter
	m.feed(f)
	if m.closeCode != 1001 || !m.atBoundary() || m.frames != 0 {
		t.Errorf("meter after the frame: closeCode %d, atBoundary %v, frames %d; want 1001, true, 0", m.closeCode, m.atBoundary(), m.frames)
	}
}
