package wsrelay

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
)

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
)

// frameMeter follows a stream of WebSocket frames as it passes, without
// copying it: it counts data frames and payload bytes, notes the first close
// code, and knows whether the stream stands at a frame boundary. The relay
// needs it because koding keeps its connections to itself.
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
		if m.hdrLen == 0 && len(b) >= 2 && len(b) >= headerLen(b[1]) {
			// The common case: a whole header at hand, taken at once.
			m.hdrWant = headerLen(b[1])
			m.hdrLen = copy(m.hdr[:m.hdrWant], b)
			b = b[m.hdrLen:]
			m.startFrame()
			continue
		}
		m.hdr[m.hdrLen] = b[0]
		m.hdrLen++
		b = b[1:]
		if m.hdrLen == 2 {
			m.hdrWant = headerLen(m.hdr[1])
		}
		if m.hdrLen >= 2 && m.hdrLen == m.hdrWant {
			m.startFrame()
		}
	}
}

// headerLen is the length of a frame header whose second byte is b1: the
// payload length's size and the masking key's (RFC 6455, section 5.2).
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
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
// a zero key is valid), for injecting into a client's stream, which only
// gorilla reads.
func maskedCloseFrame(code int, reason string) []byte {
	payload := len(reason) + 2
	f := make([]byte, 0, 6+payload)
	f = append(f, 0x80|opClose, 0x80|byte(payload), 0, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(code))
	return append(f, reason...)
}

// closeFrame is a close frame for the wire (reason at most 123 bytes):
// unmasked, as a server sends it, or masked with a fresh random key, as a
// client must (RFC 6455, section 5.3).
func closeFrame(code int, reason string, masked bool) []byte {
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	payload = append(payload, reason...)
	if !masked {
		return append([]byte{0x80 | opClose, byte(len(payload))}, payload...)
	}
	f := binary.LittleEndian.AppendUint32([]byte{0x80 | opClose, 0x80 | byte(len(payload))}, rand.Uint32())
	key := f[2:6]
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// isCloseFrame reports whether b, written at a frame boundary, begins a
// close frame.
func isCloseFrame(b []byte) bool { return len(b) > 0 && b[0]&0x0f == opClose }

// MaxClientMessage is the largest WebSocket message a client may send
// through the relay. koding relays whole messages: gorilla's ReadMessage
// holds each one in memory before it is written on, so without a bound one
// client message could make the proxy allocate any amount. Speech audio
// messages are a few KiB (100 ms of 16 kHz 16-bit PCM is 3,200 bytes), SSML
// and speech.config are text of a few KiB, and OpenAI realtime audio chunks
// are small too: 16 MiB leaves a wide margin for every real client.
// Messages from the upstream are not limited: the upstream is the one Azure
// resource the proxy is configured for, and it sends small messages.
const MaxClientMessage = 16 << 20

// MessageTooBigReason goes with the close 1009 sent to the upstream in place
// of a client frame that would take its message over MaxClientMessage.
const MessageTooBigReason = "message too big: entraproxy relays client messages of at most 16 MiB"

// errClientMessageTooBig ends a session whose oversized frame header had
// already partly gone to gorilla, so no close frame could take its place.
// gorilla reads through a 4 KiB buffer, which always takes a whole header,
// so this is for completeness only.
var errClientMessageTooBig = errors.New("client WebSocket message over the 16 MiB limit")

// frameCut is where the bytes of one read from the client stop for now.
type frameCut struct {
	n     int        // bytes that may go to gorilla now
	meter frameMeter // the stream's state after those n bytes
	msg   uint64     // payload bytes of the client's current message after those n
	hold  bool       // p[n:] is the start of a frame header: keep it for the next read
	over  bool       // p[n:] starts a data frame that takes its message over the limit
	late  bool       // with over: that frame's header began in bytes already delivered
}

// cutFrames walks p, the client's next bytes after the stream state m within
// a message of msg payload bytes so far, and says how many of them may go to
// gorilla now: all, unless p ends inside a frame header (hold) or a data
// frame's header would take its message past limit (over). A message's size
// is the sum of its data frames' lengths, text or binary and then
// continuations; control frames do not count. It parses each byte once:
// the state it returns is the meter the caller keeps.
func cutFrames(m frameMeter, msg uint64, p []byte, limit uint64) frameCut {
	before := m // the state before the bytes that go to gorilla end
	pos := 0
	for pos < len(p) {
		if m.left > 0 {
			k := int(min(m.left, uint64(len(p)-pos)))
			m.feed(p[pos : pos+k])
			pos += k
			continue
		}
		start := pos - m.hdrLen // negative: the header began in an earlier read
		if start >= 0 {
			before = m // at a boundary: the header starts here
		}
		if rest := p[pos:]; m.hdrLen == 0 && len(rest) >= 2 && len(rest) >= headerLen(rest[1]) {
			n := headerLen(rest[1])
			m.feed(rest[:n]) // the whole header at once; startFrame runs
			pos += n
		} else {
			for pos < len(p) {
				m.feed(p[pos : pos+1])
				pos++
				if m.hdrLen == 0 { // whole: startFrame has run
					break
				}
			}
		}
		if m.hdrLen != 0 {
			if start < 0 {
				return frameCut{n: len(p), meter: m, msg: msg}
			}
			return frameCut{n: start, meter: before, msg: msg, hold: true}
		}
		length := m.left // nothing of the payload is fed yet
		next := msg
		switch m.opcode {
		case opText, opBinary:
			next = length
		case opContinuation:
			next = msg + min(length, math.MaxUint64-msg)
		default:
			continue // a control frame: not part of the message
		}
		if next > limit {
			if start < 0 {
				return frameCut{n: 0, meter: before, msg: msg, over: true, late: true}
			}
			return frameCut{n: start, meter: before, msg: msg, over: true}
		}
		msg = next
	}
	return frameCut{n: len(p), meter: m, msg: msg}
}

// readClient reads the client's frames into b for gorilla, metering them and
// enforcing MaxClientMessage: frame headers reach gorilla only whole (one cut
// by the end of a read waits in held for its rest), so a data frame that
// would take its message over the limit is withheld entirely and a close
// frame 1009 (message too big) is queued in its place. gorilla answers that
// close to the client and koding passes it to the upstream, as on GoAway.
// Reader goroutine only.
func (c *clientConn) readClient(b []byte) (int, error) {
	if c.tooBig {
		return 0, io.EOF // nothing valid follows the close frame
	}
	for {
		n := copy(b, c.held)
		c.held = c.held[n:]
		var err error
		if len(c.held) == 0 && n < len(b) {
			var got int
			got, err = c.Conn.Read(b[n:])
			n += got
		}
		// c.in changes only on this goroutine, so reading it needs no lock.
		cut := cutFrames(c.in, c.message, b[:n], MaxClientMessage)
		if cut.hold && cut.n == 0 && n == len(b) {
			// b cannot take a whole header: it goes in pieces.
			cut.n, cut.meter = n, c.in
			cut.meter.feed(b[:n])
		}
		c.message = cut.msg
		c.mu.Lock()
		c.in = cut.meter
		c.noteClose("client")
		c.mu.Unlock()
		switch {
		case cut.over && cut.late:
			c.tooBig = true
			return cut.n, errClientMessageTooBig
		case cut.over:
			c.tooBig, c.injected = true, true
			c.pending = maskedCloseFrame(1009, MessageTooBigReason)
			return cut.n, nil // Read hands over the close frame next
		case cut.hold && cut.n < n:
			c.held = append(c.held[:0], b[cut.n:n]...)
			if cut.n == 0 && err == nil {
				continue // only part of a header so far: read on
			}
			return cut.n, err
		}
		return cut.n, err
	}
}
