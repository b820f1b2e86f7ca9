package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entraproxy/entraproxy/metrics"
)

// wsSession is one live WebSocket relay, from the client's upgrade to the
// end of koding's ServeHTTP.
type wsSession struct {
	s        *wsProxy
	r        *http.Request
	start    time.Time
	client   *clientConn
	upstream *meteredConn
	facts    *upstreamFacts // the handshakes that led here, for the log line

	closeDecided sync.Once
	closeInto    relayEnd // the connection koding owes a close frame when it closes both
}

// relayCloseGrace bounds how long closing a connection waits for the close
// frame koding is relaying into it (see beforeClose).
const relayCloseGrace = time.Second

func (s *wsProxy) startSession(r *http.Request, conn net.Conn, upstream *meteredConn, start time.Time, facts *upstreamFacts) *wsSession {
	sess := &wsSession{s: s, r: r, start: start, client: &clientConn{Conn: conn, wrote: newCloseWatch()}, upstream: upstream, facts: facts}
	sess.client.sess = sess
	upstream.sess.Store(sess)
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	closing := s.closing
	s.mu.Unlock()
	if closing { // upgraded while shutdown waited for its handshake
		sess.client.goAway()
	}
	s.p.metrics.SessionStarted()
	return sess
}

// finish logs the session and forgets it. koding has closed both
// connections by now.
func (sess *wsSession) finish() {
	s := sess.s
	st := sess.client.stats()
	s.p.logAccess(accessEntry{r: sess.r, start: sess.start, status: http.StatusSwitchingProtocols,
		bytesIn: st.in.bytes, bytesOut: st.out.bytes, session: true,
		framesIn: st.in.frames, framesOut: st.out.frames, closeCode: st.closeCode, closedBy: st.closedBy, upstream: sess.facts})
	s.p.metrics.AddFrames(metrics.DirectionClientToUpstream, int(st.in.frames), int(st.in.bytes))
	s.p.metrics.AddFrames(metrics.DirectionUpstreamToClient, int(st.out.frames), int(st.out.bytes))
	s.p.metrics.SessionEnded()

	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// enter counts an upgrade request in, from before its token is fetched to
// the end of its session, so shutdown waits for handshakes too, not only for
// sessions already up (net/http forgets a connection once it is hijacked).
// It reports false once shutdown has begun.
func (s *wsProxy) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.inflight == 0 {
		s.idle = make(chan struct{})
	}
	s.inflight++
	return true
}

func (s *wsProxy) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight--; s.inflight == 0 {
		close(s.idle)
	}
}

// shutdown refuses new upgrades, asks every live session to close with 1001
// (going away), and waits for sessions and handshakes to end. A session that
// comes up meanwhile is asked at once. When ctx ends first, it cuts the
// connections.
func (s *wsProxy) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		for sess := range s.sessions {
			sess.client.goAway()
		}
		n, idle := s.inflight, s.idle
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			s.mu.Lock()
			for sess := range s.sessions {
				sess.client.Conn.Close()
				sess.upstream.Conn.Close()
			}
			s.mu.Unlock()
			return ctx.Err()
		}
	}
}

// clientConn is the client's hijacked connection. It meters frames in both
// directions and, on shutdown, ends the client's frame stream with a close
// frame (1001) at the next frame boundary: gorilla answers it to the client,
// and koding passes it on to the upstream, each through their own writers,
// so no frame is ever cut in two.
type clientConn struct {
	net.Conn
	sess  *wsSession
	wrote *closeWatch // a close frame went out to the client, or a write failed

	goingAway   atomic.Bool
	upstream101 http.Header // writer only: the upstream's 101 headers, for gorilla's 101 (see with101Headers)
	injected    bool        // reader goroutine only
	pending     []byte      // reader goroutine only: injected bytes not yet read
	held        []byte      // reader goroutine only: a frame header's first bytes, kept until it is whole (readClient)
	message     uint64      // reader goroutine only: payload bytes of the client's current message
	tooBig      bool        // reader goroutine only: a message went over maxClientMessage

	mu         sync.Mutex
	in, out    frameMeter // client to upstream, upstream to client
	headerSeen int        // bytes of "\r\n\r\n" matched in the 101 response
	closeCode  int
	closedBy   string
	dropped    bool // the client's stream ended without a close frame
}

const goingAwayReason = "entraproxy is shutting down"

func (c *clientConn) goAway() {
	if c.goingAway.CompareAndSwap(false, true) {
		c.Conn.SetReadDeadline(time.Now()) // wake a blocked Read
	}
}

func (c *clientConn) Read(b []byte) (int, error) {
	for {
		if c.goingAway.Load() && !c.injected {
			c.mu.Lock()
			boundary, need := c.in.atBoundary(), c.in.need()
			c.mu.Unlock()
			if boundary {
				c.pending, c.injected = maskedCloseFrame(1001, goingAwayReason), true
				c.Conn.SetReadDeadline(time.Time{})
			} else if need < len(b) {
				b = b[:need] // read exactly to the boundary
			}
		}
		if len(c.pending) > 0 {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			c.account(b[:n], "proxy")
			return n, nil
		}
		n, err := c.readClient(b)
		if n == 0 && err == nil && len(c.pending) > 0 {
			continue // the message limit queued a close frame
		}
		c.account(b[:n], "client")
		if err != nil && c.goingAway.Load() && !c.injected && errors.Is(err, os.ErrDeadlineExceeded) {
			c.Conn.SetReadDeadline(time.Time{})
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.dropped = c.dropped || c.in.closeCode == 0
			c.mu.Unlock()
		}
		return n, err
	}
}

func (c *clientConn) account(b []byte, who string) {
	c.mu.Lock()
	c.in.feed(b)
	if c.closedBy == "" && c.in.closeCode != 0 {
		c.closedBy, c.closeCode = who, c.in.closeCode
	}
	c.mu.Unlock()
}

func (c *clientConn) Write(b []byte) (int, error) {
	if c.headerSeen == 0 && c.upstream101 != nil {
		// The first write is gorilla's 101, in one piece.
		if head, ok := with101Headers(b, c.upstream101); ok {
			c.upstream101 = nil
			if _, err := c.Conn.Write(head); err != nil {
				return 0, err
			}
			c.mu.Lock()
			skipHead(&c.headerSeen, b)
			c.mu.Unlock()
			return len(b), nil
		}
	}
	c.mu.Lock()
	if c.closedBy == "" {
		// Note a relayed close before it goes out: the client's answer to
		// it can be read (and taken for the client's own close) before
		// this Write returns.
		seen, ahead := c.headerSeen, c.out
		ahead.feed(skipHead(&seen, b))
		if ahead.closeCode != 0 {
			c.closedBy, c.closeCode = "upstream", ahead.closeCode
		}
	}
	c.mu.Unlock()
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	// The first bytes are gorilla's 101 response; frames start after it.
	c.out.feed(skipHead(&c.headerSeen, b[:n]))
	if c.out.closeCode != 0 || err != nil {
		c.wrote.fire()
	}
	c.mu.Unlock()
	return n, err
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
	return c.headerSeen == 4
}

// sourceEnded reports whether the client's stream has ended: a close frame
// (the client's or the one injected on shutdown) or a read error.
func (c *clientConn) sourceEnded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.closeCode != 0 || c.dropped
}

type sessionStats struct {
	in, out   frameMeter
	closeCode int
	closedBy  string
}

func (c *clientConn) stats() sessionStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := sessionStats{in: c.in, out: c.out, closeCode: c.closeCode, closedBy: c.closedBy}
	if st.closedBy == "" && c.dropped {
		st.closedBy, st.closeCode = "client", 1006
	}
	return st
}

// meteredConn is the upstream connection (above TLS). It notes whether the
// upstream said anything, which tells a refused handshake from a silent one,
// and when a close frame has been written to it.
type meteredConn struct {
	net.Conn
	respSeen int                       // reader only: bytes of "\r\n\r\n" matched in the response
	head     []byte                    // reader only until headRead: the response head, at most maxKeptHead bytes
	headRead atomic.Bool               // the whole response head has been read
	sess     atomic.Pointer[wsSession] // once the client is upgraded

	mu       sync.Mutex
	headSeen int        // bytes of "\r\n\r\n" matched in the handshake request
	out      frameMeter // frames written to the upstream
	wrote    *closeWatch
}

func (c *meteredConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.out.feed(skipHead(&c.headSeen, b[:n]))
	if c.out.closeCode != 0 || err != nil {
		c.wrote.fire()
	}
	c.mu.Unlock()
	return n, err
}

// Close is koding (or gorilla, after a failed handshake) closing the
// upstream connection.
func (c *meteredConn) Close() error {
	if sess := c.sess.Load(); sess != nil {
		sess.beforeClose(c)
	}
	return c.Conn.Close()
}

func (c *meteredConn) closeWritten() <-chan struct{} { return c.wrote.done }

func (c *meteredConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.headRead.Load() {
		head := b[:n-len(skipHead(&c.respSeen, b[:n]))]
		c.head = append(c.head, head[:min(len(head), maxKeptHead-len(c.head))]...)
		c.headRead.Store(c.respSeen == 4)
	}
	return n, err
}

// maxKeptHead bounds the upstream's handshake answer kept for its header.
const maxKeptHead = 8 << 10

// responseHeader is the header of the upstream's handshake answer, once
// answered: koding passes on only its subprotocol and cookies, and the
// request id is worth a log field. Nil before, or if the head did not parse.
func (c *meteredConn) responseHeader() http.Header {
	if !c.answered() {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.head)), nil)
	if err != nil {
		return nil
	}
	resp.Body.Close()
	return resp.Header
}

// answered reports whether a whole response head came from the upstream:
// only then is a failed handshake the upstream's answer rather than koding's
// own error page.
func (c *meteredConn) answered() bool { return c.headRead.Load() }

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
func (sess *wsSession) beforeClose(conn relayEnd) {
	sess.closeDecided.Do(func() {
		switch {
		case !sess.client.relaying(): // the upgrade failed: nothing relays
		case sess.client.sourceEnded():
			sess.closeInto = sess.upstream
		default:
			sess.closeInto = sess.client
		}
	})
	if sess.closeInto == nil || sess.closeInto != conn {
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

// skipHead consumes the HTTP head (through "\r\n\r\n") that precedes the
// frames on a WebSocket connection; seen carries the match across calls.
// It returns what follows the head.
func skipHead(seen *int, p []byte) []byte {
	for *seen < 4 && len(p) > 0 {
		if p[0] == "\r\n\r\n"[*seen] {
			*seen++
		} else if p[0] == '\r' {
			*seen = 1
		} else {
			*seen = 0
		}
		p = p[1:]
	}
	return p
}
