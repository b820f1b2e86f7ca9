package proxy

import "encoding/binary"

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
)

// frameMeter follows a stream of WebSocket frames as it passes, without
// copying it: it counts data frames and payload bytes, notes the first close
// code, and knows whether the stream stands at a frame boundary. The wrapper
// uses it because koding/websocketproxy keeps its connections to itself.
type frameMeter struct {
	hdr     [14]byte
	hdrLen  int // header bytes seen of the current frame
	hdrWant int // full header length, known once two bytes are in
	left    uint64
	opcode  byte
	masked  bool

	closeBuf [2]byte // first two payload bytes of a close frame: the code
	closeLen int

	frames    int64
	bytes     int64
	closeCode int // 0 until a close frame has passed; 1005 when it had no code
}

// atBoundary reports whether the next byte starts a new frame.
func (m *frameMeter) atBoundary() bool { return m.hdrLen == 0 && m.left == 0 }

// need is how many more bytes reach the next boundary, as far as known: the
// payload left, or the rest of a header (1 while its length is unknown).
func (m *frameMeter) need() int {
	switch {
	case m.left > 0:
		return int(min(m.left, 1<<30))
	case m.hdrLen == 0:
		return 0
	case m.hdrWant == 0:
		return 1
	default:
		return m.hdrWant - m.hdrLen
	}
}

func (m *frameMeter) feed(b []byte) {
	for len(b) > 0 {
		if m.left > 0 {
			n := int(min(m.left, uint64(len(b))))
			if m.opcode == opClose {
				m.captureClose(b[:n])
			}
			m.left -= uint64(n)
			b = b[n:]
			if m.left == 0 {
				m.endFrame()
			}
			continue
		}
		m.hdr[m.hdrLen] = b[0]
		m.hdrLen++
		b = b[1:]
		if m.hdrLen == 2 {
			m.hdrWant = 2
			switch m.hdr[1] & 0x7f {
			case 126:
				m.hdrWant += 2
			case 127:
				m.hdrWant += 8
			}
			if m.hdr[1]&0x80 != 0 {
				m.hdrWant += 4
			}
		}
		if m.hdrLen >= 2 && m.hdrLen == m.hdrWant {
			m.startFrame()
		}
	}
}

func (m *frameMeter) startFrame() {
	m.opcode = m.hdr[0] & 0x0f
	m.masked = m.hdr[1]&0x80 != 0
	length := uint64(m.hdr[1] & 0x7f)
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(m.hdr[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(m.hdr[2:10])
	}
	m.closeLen = 0
	if m.opcode == opContinuation || m.opcode == opText || m.opcode == opBinary {
		m.frames++
		m.bytes += int64(length)
	}
	m.left = length
	m.hdrLen, m.hdrWant = 0, 0
	if length == 0 {
		m.endFrame()
	}
}

func (m *frameMeter) captureClose(payload []byte) {
	for _, c := range payload {
		if m.closeLen == 2 {
			return
		}
		if m.masked {
			c ^= m.hdr[m.hdrMaskOffset()+(m.closeLen%4)]
		}
		m.closeBuf[m.closeLen] = c
		m.closeLen++
	}
}

// hdrMaskOffset is where the masking key sits in the current header. The
// header bytes stay in hdr until the next frame starts.
func (m *frameMeter) hdrMaskOffset() int {
	switch m.hdr[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

func (m *frameMeter) endFrame() {
	if m.opcode != opClose || m.closeCode != 0 {
		return
	}
	m.closeCode = 1005 // no status received
	if m.closeLen == 2 {
		m.closeCode = int(binary.BigEndian.Uint16(m.closeBuf[:]))
	}
}

// maskedCloseFrame is a close frame as a client sends it (clients must mask;
// a zero key is valid), for injecting into a client's stream.
func maskedCloseFrame(code int, reason string) []byte {
	payload := len(reason) + 2
	f := make([]byte, 0, 6+payload)
	f = append(f, 0x80|opClose, 0x80|byte(payload), 0, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(code))
	return append(f, reason...)
}
