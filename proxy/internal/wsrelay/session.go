package wsrelay

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one relayed WebSocket session, from the client's upgrade to the
// end of koding's relay. Its methods are safe from any goroutine.
type Session struct {
	client   *clientConn
	upstream *upstreamConn

	closeDecided sync.Once
	closeInto    relayEnd // the connection koding owes a close frame when it closes both
}

// GoingAwayReason is the reason of the close 1001 that GoAway sends the
// upstream.
const GoingAwayReason = "entraproxy is shutting down"

// relayCloseGrace bounds how long closing a connection waits for the close
// frame koding is relaying into it (see beforeClose).
const relayCloseGrace = time.Second

func newSession(conn net.Conn, upstream *upstreamConn, upstream101 http.Header) *Session {
	s := &Session{client: &clientConn{Conn: conn, wrote: newCloseWatch(), upstream101: upstream101}, upstream: upstream}
	s.client.sess = s
	upstream.sess.Store(s)
	return s
}

// GoAway asks the session to end with close 1001 (going away): at the
// client's next frame boundary its stream ends with a close frame that the
// proxy writes in, which gorilla answers to the client and koding passes on
// to the upstream, each through their own writers, so no frame is ever cut
// in two. It returns at once; the session ends when both have closed.
func (s *Session) GoAway() {
	c := s.client
	if c.goingAway.CompareAndSwap(false, true) {
		c.Conn.SetReadDeadline(time.Now()) // wake a blocked Read
	}
}

// Cut closes both connections at once, mid-frame if need be. Unless a
// close frame or a drop was noted first, Stats then says 1006 by "proxy":
// koding's read errors that follow would otherwise pass for a side's drop.
func (s *Session) Cut() {
	c := s.client
	c.mu.Lock()
	if c.closedBy == "" {
		c.closedBy, c.closeCode = "proxy", 1006
	}
	c.mu.Unlock()
	c.Conn.Close()
	s.upstream.Conn.Close()
}

// Stats are what passed in a session, as the access log and the metrics
// tell it.
type Stats struct {
	// FramesIn and BytesIn count the data frames (text, binary,
	// continuation) and their payload bytes from the client to the
	// upstream; FramesOut and BytesOut the other way.
	FramesIn, BytesIn, FramesOut, BytesOut int64
	// CloseCode is the code of the first close frame to pass (1005 when it
	// had none), or 1006 (abnormal closure, RFC 6455 section 7.4.1) when
	// the client's or the upstream's stream ended without one first; the
	// other side then gets a close 1001 (ClientGoneReason,
	// UpstreamGoneReason), never 1006, which is not for the wire.
	CloseCode int
	// ClosedBy is who sent that close, or dropped: "client", "upstream",
	// or "proxy" (GoAway's 1001, the 1009 of the client message limit, or
	// 1006 when Cut ended the session);
	// "" when none passed and neither side dropped.
	ClosedBy string
}

// Stats is what has passed so far: the frames read from the client, and
// those written to it. Taken in Handshake.Ended, it holds every frame that
// passed before koding's relay returned; koding returns at the first relay
// error without waiting for its other relay goroutine, so a frame that
// goroutine was still reading or writing then can still be counted after
// Ended (a write that fails is never counted).
func (s *Session) Stats() Stats {
	c := s.client
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Stats{FramesIn: c.in.frames, BytesIn: c.in.bytes, FramesOut: c.out.frames, BytesOut: c.out.bytes,
		CloseCode: c.closeCode, ClosedBy: c.closedBy}
	return st
}

// clientConn is the client's hijacked connection, as gorilla reads and
// writes it for koding. It meters the frames in both directions, holds the
// client's frames to MaxClientMessage (readClient), writes the upstream's
// 101 headers into gorilla's 101, and ends the client's stream with a
// close frame when asked to (GoAway, the message limit).
type clientConn struct {
	net.Conn
	sess  *Session
	wrote *closeWatch // a close frame went out to the client, or a write failed

	goingAway   atomic.Bool
	upstream101 http.Header // writer only: the upstream's 101 fields, for gorilla's 101 (with101Headers)
	injected    bool        // reader only: a close frame of the proxy's is queued or read
	pending     []byte      // reader only: injected bytes not yet read
	held        []byte      // reader only: a frame header's first bytes, kept until it is whole (readClient)
	message     uint64      // reader only: payload bytes of the client's current message
	tooBig      bool        // reader only: a message went over MaxClientMessage

	mu        sync.Mutex
	in, out   frameMeter // client to upstream, upstream to client
	head      httpHead   // gorilla's 101, written before the frames
	closeCode int
	closedBy  string
	dropped   bool // the client's stream ended without a close frame
}

func (c *clientConn) Read(b []byte) (int, error) {
	for {
		if c.goingAway.Load() && !c.injected {
			b = c.toBoundary(b)
		}
		if len(c.pending) > 0 {
			return c.readPending(b), nil
		}
		n, err := c.readClient(b)
		switch {
		case n == 0 && err == nil && len(c.pending) > 0:
			continue // the message limit queued a close frame
		case err != nil && c.goingAway.Load() && !c.injected && errors.Is(err, os.ErrDeadlineExceeded):
			// GoAway's wake-up (its read deadline), not the client's end.
			c.Conn.SetReadDeadline(time.Time{})
			if n == 0 {
				continue
			}
			return n, nil
		case err != nil:
			c.mu.Lock()
			if c.in.closeCode == 0 && !c.dropped {
				// Noted now: the upstream's answer to the close that koding
				// sends it next must not pass for the first close.
				c.dropped = true
				if c.closedBy == "" {
					c.closedBy, c.closeCode = "client", 1006
				}
			}
			c.mu.Unlock()
		}
		return n, err
	}
}

// toBoundary serves GoAway: at a frame boundary it queues the close 1001 to
// be read next; inside a frame it cuts b so the read ends at the boundary.
func (c *clientConn) toBoundary(b []byte) []byte {
	c.mu.Lock()
	boundary, need := c.in.atBoundary(), c.in.need()
	c.mu.Unlock()
	switch {
	case boundary:
		c.pending, c.injected = maskedCloseFrame(1001, GoingAwayReason), true
		c.Conn.SetReadDeadline(time.Time{})
	case need < len(b):
		b = b[:need]
	}
	return b
}

// readPending hands gorilla the next bytes of a close frame the proxy
// writes into the client's stream.
func (c *clientConn) readPending(b []byte) int {
	n := copy(b, c.pending)
	c.mu.Lock()
	c.in.feed(c.pending[:n])
	c.noteClose("proxy")
	c.mu.Unlock()
	c.pending = c.pending[n:]
	return n
}

// noteClose notes who sent the stream's first close frame, once c.in has
// seen one. c.mu must be held.
func (c *clientConn) noteClose(who string) {
	if c.closedBy == "" && c.in.closeCode != 0 {
		c.closedBy, c.closeCode = who, c.in.closeCode
	}
}

func (c *clientConn) Write(b []byte) (int, error) {
	if !c.head.done() && c.upstream101 != nil {
		// The first write is gorilla's 101, in one piece.
		if head, ok := with101Headers(b, c.upstream101); ok {
			c.upstream101 = nil
			if _, err := c.Conn.Write(head); err != nil {
				return 0, err
			}
			c.mu.Lock()
			c.head.skip(b)
			c.mu.Unlock()
			return len(b), nil
		}
	}
	// Metered before it goes out, once: the client's answer to a relayed
	// close can be read (and taken for the client's own close) before
	// this Write returns. (A write fails only as the session ends.) The
	// data frames and bytes, though, count once written: koding's other
	// relay goroutine may still write as the session ends, and a frame
	// that fails then never reached the client.
	c.mu.Lock()
	countedFrames, countedBytes := c.out.frames, c.out.bytes
	frames, wire := c.head.skip(b), b
	if len(frames) == len(b) && c.out.atBoundary() && isCloseFrame(b) && c.sess.upstream.dropped.Load() {
		// koding's close for the upstream's drop: 1006, which must not
		// go on the wire, or 1000 with a read error's text.
		wire = closeFrame(1001, UpstreamGoneReason, false)
		frames = wire
		if c.closedBy == "" {
			c.closedBy, c.closeCode = "upstream", 1006
		}
	}
	c.out.feed(frames)
	if c.closedBy == "" && c.out.closeCode != 0 {
		c.closedBy, c.closeCode = "upstream", c.out.closeCode
	}
	closing := c.out.closeCode != 0
	newFrames, newBytes := c.out.frames-countedFrames, c.out.bytes-countedBytes
	c.out.frames, c.out.bytes = countedFrames, countedBytes
	c.mu.Unlock()
	n, err := c.Conn.Write(wire)
	if closing || err != nil {
		c.wrote.fire()
	}
	if err != nil {
		return n, err
	}
	c.mu.Lock()
	c.out.frames += newFrames
	c.out.bytes += newBytes
	c.mu.Unlock()
	return len(b), nil
}

// Close is koding closing the client's connection.
func (c *clientConn) Close() error {
	c.sess.beforeClose(c)
	return c.Conn.Close()
}

func (c *clientConn) closeWritten() <-chan struct{} { return c.wrote.done }

// relaying reports whether the 101 went out, so koding's relay runs.
func (c *clientConn) relaying() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.head.done()
}

// droppedStream reports whether the client's stream ended without a close
// frame.
func (c *clientConn) droppedStream() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// sourceEnded reports whether the client's stream has ended: a close frame
// (the client's or one the proxy wrote in) or a read error.
func (c *clientConn) sourceEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.closeCode != 0 || c.dropped
}

// upstreamConn is the upstream connection (above TLS) as gorilla reads and
// writes it for koding. It keeps the upstream's answer to the handshake,
// which tells a refused handshake from a silent one and holds the 101's
// fields koding drops, and notes when a close frame has been written to
// the upstream.
type upstreamConn struct {
	net.Conn
	respHead httpHead                // reader only: the answer's head, read before the frames
	kept     []byte                  // reader only until answered: the answer's head, at most maxKeptHead bytes
	headRead atomic.Bool             // the whole head of the answer has been read
	sess     atomic.Pointer[Session] // once the client is upgraded
	dropped  atomic.Bool             // a read failed in the session: the upstream's stream ended without a close frame

	mu      sync.Mutex
	reqHead httpHead   // the handshake request, written before the frames
	out     frameMeter // frames written to the upstream
	wrote   *closeWatch
}

func (c *upstreamConn) Write(b []byte) (int, error) {
	wire := b
	if sess := c.sess.Load(); sess != nil && isCloseFrame(b) && sess.client.droppedStream() {
		c.mu.Lock()
		if c.out.atBoundary() {
			// koding's close for the client's drop: 1006, which must not
			// go on the wire, or 1000 with a read error's text.
			wire = closeFrame(1001, ClientGoneReason, true)
		}
		c.mu.Unlock()
	}
	n, err := c.Conn.Write(wire)
	c.mu.Lock()
	c.out.feed(c.reqHead.skip(wire[:n]))
	if c.out.closeCode != 0 || err != nil {
		c.wrote.fire()
	}
	c.mu.Unlock()
	if err == nil {
		n = len(b)
	}
	return n, err
}

// Close is koding (or gorilla, after a failed handshake) closing the
// upstream connection.
func (c *upstreamConn) Close() error {
	if sess := c.sess.Load(); sess != nil {
		sess.beforeClose(c)
	}
	return c.Conn.Close()
}

func (c *upstreamConn) closeWritten() <-chan struct{} { return c.wrote.done }

func (c *upstreamConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.sess.Load() != nil {
		// gorilla stops reading at the upstream's close frame, so a read
		// that fails in the session is the upstream's drop (or the
		// session's end, when nothing more is relayed to the client).
		c.dropped.Store(true)
	}
	if !c.headRead.Load() {
		head := b[:n-len(c.respHead.skip(b[:n]))]
		c.kept = append(c.kept, head[:min(len(head), maxKeptHead-len(c.kept))]...)
		c.headRead.Store(c.respHead.done())
	}
	return n, err
}

// maxKeptHead bounds the upstream's handshake answer kept for its fields.
const maxKeptHead = 8 << 10

// answered reports whether a whole answer head came from the upstream: only
// then is a failed handshake the upstream's answer rather than koding's own
// error page.
func (c *upstreamConn) answered() bool { return c.headRead.Load() }

// responseHeader is the header of the upstream's handshake answer, once
// answered; nil before, or if the head did not parse (or was longer than
// maxKeptHead).
func (c *upstreamConn) responseHeader() http.Header {
	if !c.answered() {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.kept)), nil)
	if err != nil {
		return nil
	}
	resp.Body.Close()
	return resp.Header
}

// relayEnd is one of a session's two connections, as beforeClose sees it.
type relayEnd interface {
	closeWritten() <-chan struct{}
	SetWriteDeadline(time.Time) error
}

// beforeClose runs when koding closes conn. koding ends a session at the
// first relay error and at once closes both connections, while the relay
// goroutine that saw the error has yet to write the close frame (with the
// peer's code and reason) into the other connection: it sends the error
// before it writes. Closed first, that connection would see 1006 instead of
// the code (and the JS Speech SDK cancels on anything but 1000). So the
// connection owed a close frame is closed once the frame is out, the write
// failed, or relayCloseGrace passed. koding closes the client first: its
// ServeHTTP defers connBackend.Close() before connPub.Close(), and deferred
// calls run last in, first out (websocketproxy.go at 7ed82d81a28c). So the
// first call decides, before any close of ours can end the other stream.
func (s *Session) beforeClose(conn relayEnd) {
	s.closeDecided.Do(func() {
		switch {
		case !s.client.relaying(): // the upgrade failed: nothing relays
		case s.client.sourceEnded():
			s.closeInto = s.upstream
		default:
			s.closeInto = s.client
		}
	})
	if s.closeInto == nil || s.closeInto != conn {
		return
	}
	conn.SetWriteDeadline(time.Now().Add(relayCloseGrace)) // a write stuck on a full window fails by then
	t := time.NewTimer(relayCloseGrace)
	defer t.Stop()
	select {
	case <-conn.closeWritten():
	case <-t.C: // the relay had nothing to write (its peer had already closed)
	}
}

// closeWatch is closed once a close frame has been written to a connection,
// or a write to it failed: either way nothing more will go out.
type closeWatch struct {
	once sync.Once
	done chan struct{}
}

func newCloseWatch() *closeWatch { return &closeWatch{done: make(chan struct{})} }

func (w *closeWatch) fire() { w.once.Do(func() { close(w.done) }) }

// httpHead finds the end of the HTTP head (through "\r\n\r\n") that
// precedes the frames on a WebSocket connection, across writes or reads.
type httpHead struct{ matched int } // bytes of "\r\n\r\n" matched so far

// skip consumes what of p belongs to the head and returns what follows it.
func (h *httpHead) skip(p []byte) []byte {
	for h.matched < 4 && len(p) > 0 {
		switch {
		case p[0] == "\r\n\r\n"[h.matched]:
			h.matched++
		case p[0] == '\r':
			h.matched = 1
		default:
			h.matched = 0
		}
		p = p[1:]
	}
	return p
}

// done reports whether the whole head has passed.
func (h *httpHead) done() bool { return h.matched == 4 }

// ClientGoneReason and UpstreamGoneReason go with the close 1001 (going
// away) that the proxy sends one side when the other dropped its connection
// without a close frame.
const (
	ClientGoneReason   = "the client closed its connection without a close frame"
	UpstreamGoneReason = "the upstream closed its connection without a close frame"
)
