package proxy

import (
	"errors"
	"io"
	"math"
)

// maxClientMessage is the largest WebSocket message a client may send
// through the proxy. koding/websocketproxy relays whole messages: gorilla's
// ReadMessage holds each one in memory before it is written on, so without a
// bound one client message could make the proxy allocate any amount. Speech
// audio messages are a few KiB (100 ms of 16 kHz 16-bit PCM is 3,200 bytes),
// SSML and speech.config are text of a few KiB, and OpenAI realtime audio
// chunks are small too: 16 MiB leaves a wide margin for every real client.
// Messages from the upstream are not limited: the upstream is the one Azure
// resource the proxy is configured for, and it sends small messages (README,
// WebSocket).
const maxClientMessage = 16 << 20

// messageTooBigReason goes with the 1009 close sent in place of a client
// frame that would take its message over maxClientMessage.
const messageTooBigReason = "message too big: entraproxy relays client messages of at most 16 MiB"

// errClientMessageTooBig ends a session whose oversized frame header had
// already partly gone to gorilla, so no close frame could take its place.
// gorilla reads through a 4 KiB buffer, which always takes a whole header,
// so this is for completeness only.
var errClientMessageTooBig = errors.New("client WebSocket message over the 16 MiB limit")

// maxFrameHeader is the longest WebSocket frame header: 2 bytes, a 64-bit
// length and a 4-byte mask key (RFC 6455, section 5.2).
const maxFrameHeader = 14

// frameCut is where the bytes of one read from the client stop for now.
type frameCut struct {
	n    int    // bytes that may go to gorilla now
	msg  uint64 // payload bytes of the client's current message after those n
	hold bool   // p[n:] is the start of a frame header: keep it for the next read
	over bool   // p[n:] starts a data frame that takes its message over the limit
	late bool   // with over: that frame's header began in bytes already delivered
}

// cutFrames walks p, the client's next bytes after the stream state m (a
// copy) within a message of msg payload bytes so far, and says how many of
// them may go to gorilla now: all, unless p ends inside a frame header
// (hold) or a data frame's header would take its message past limit (over).
// A message's size is the sum of its data frames' lengths, text or binary
// and then continuations; control frames do not count.
func cutFrames(m frameMeter, msg uint64, p []byte, limit uint64) frameCut {
	pos := 0
	for pos < len(p) {
		if m.left > 0 {
			k := int(min(m.left, uint64(len(p)-pos)))
			m.feed(p[pos : pos+k])
			pos += k
			continue
		}
		start := pos - m.hdrLen // negative: the header began in an earlier read
		for pos < len(p) {
			m.feed(p[pos : pos+1])
			pos++
			if m.hdrLen == 0 { // whole: startFrame has run
				break
			}
		}
		if m.hdrLen != 0 {
			if start < 0 {
				return frameCut{n: len(p), msg: msg}
			}
			return frameCut{n: start, msg: msg, hold: true}
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
				return frameCut{n: 0, msg: msg, over: true, late: true}
			}
			return frameCut{n: start, msg: msg, over: true}
		}
		msg = next
	}
	return frameCut{n: len(p), msg: msg}
}

// readClient reads the client's frames into b for gorilla, enforcing
// maxClientMessage: frame headers reach gorilla only whole (one cut by the
// end of a read waits in held for its rest), so a data frame that would take
// its message over the limit is withheld entirely and a close frame 1009
// (message too big) is queued in its place. gorilla answers that close to
// the client and koding passes it to the upstream, as on shutdown. Reader
// goroutine only.
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
		cut := cutFrames(c.in, c.message, b[:n], maxClientMessage)
		c.message = cut.msg
		switch {
		case cut.over && cut.late:
			c.tooBig = true
			return cut.n, errClientMessageTooBig
		case cut.over:
			c.tooBig, c.injected = true, true
			c.pending = maskedCloseFrame(1009, messageTooBigReason)
			return cut.n, nil // Read hands over the close frame next
		case cut.hold && cut.n == 0 && n == len(b):
			// b cannot take a whole header: it goes in pieces.
			return n, err
		case cut.hold:
			c.held = append(c.held[:0], b[cut.n:n]...)
			if cut.n == 0 && err == nil {
				continue // only part of a header so far: read on
			}
			return cut.n, err
		}
		return n, err
	}
}
