package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// clientBody is the client's request body as the proxy reads it: it counts
// the bytes for the access log and marks a failed read as the client's
// (clientBodyError), so the answer is 400 or 499, never an upstream error.
//
// It wraps a copy of the request, never the server's own: net/http checks
// that request's Body after the handler returns, and with Expect:
// 100-continue it is the reader that sends "100 Continue" on the first
// read. Replaced, net/http would read (and ask for) up to 256 KiB of a body
// the upstream had refused before answering.
//
// n is atomic: when the client leaves mid-body, the handler returns and
// logs while the Transport's write loop may still be reading.
type clientBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// clientBodyError is a failure to read the client's request body: bad
// chunked framing, or a connection that ended before the body did.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "read the client's request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

func isClientBodyError(err error) bool {
	var ce *clientBodyError
	return errors.As(err, &ce)
}

// makeReplayable lets a known-length body of at most maxReplayBody be sent
// again after a 401 or a 307/308: what is read from the client is kept.
// Larger or chunked bodies stream and are sent once. Nothing is read ahead:
// the client's body is read only when the upstream asks for it, so an
// Expect: 100-continue upload the upstream refuses is never sent.
//
// The memory kept follows the bytes received, never the Content-Length
// alone: a client may declare 1 MiB and send 10 bytes, on as many
// connections as it likes.
func makeReplayable(req *http.Request) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength <= 0 || req.ContentLength > maxReplayBody {
		return
	}
	rb := &replayBuffer{src: req.Body, size: int(req.ContentLength)}
	req.Body = rb.reader()
	req.GetBody = func() (io.ReadCloser, error) { return rb.reader(), nil }
}

// replayBuffer keeps what has been read of a body, so that each of its
// readers gets the whole body: first what was kept, then more from src. A
// Transport may still be reading an abandoned attempt's reader while the
// next attempt reads its own; the mutex keeps them in step.
type replayBuffer struct {
	mu   sync.Mutex
	src  io.Reader
	size int    // the Content-Length
	kept []byte // what was read; its capacity grows with it (grow)
	err  error  // src's last error, io.EOF at the end: final
}

// replayFirstBuffer is the capacity, in bytes, kept for a body's first
// read. Larger bodies double it as they arrive, up to their length.
const replayFirstBuffer = 4 << 10

// grow makes room for the next read from src: at least twice what is
// kept, at most the rest of the Content-Length.
func (rb *replayBuffer) grow() {
	next := make([]byte, len(rb.kept), min(rb.size, max(2*cap(rb.kept), replayFirstBuffer)))
	copy(next, rb.kept)
	rb.kept = next
}

func (rb *replayBuffer) reader() *replayReader { return &replayReader{rb: rb} }

// replayReader is one reading of a replayBuffer. Closing it leaves the
// source open for the next attempt; ReverseProxy closes the source.
type replayReader struct {
	rb     *replayBuffer
	off    int
	closed bool
}

var errReplayClosed = errors.New("replayed request body read after close")

func (r *replayReader) Read(p []byte) (int, error) {
	rb := r.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if r.closed {
		return 0, errReplayClosed
	}
	if r.off == len(rb.kept) && rb.err == nil {
		if len(rb.kept) == cap(rb.kept) {
			rb.grow()
		}
		n, err := rb.src.Read(rb.kept[len(rb.kept):cap(rb.kept)])
		rb.kept = rb.kept[:len(rb.kept)+n]
		if err == nil && len(rb.kept) == rb.size {
			err = io.EOF // the Content-Length is read
		}
		rb.err = err
	}
	if r.off < len(rb.kept) {
		n := copy(p, rb.kept[r.off:])
		r.off += n
		return n, nil
	}
	return 0, rb.err
}

func (r *replayReader) Close() error {
	r.rb.mu.Lock()
	r.closed = true
	r.rb.mu.Unlock()
	return nil
}
