// Command loadgen is the load generator of `make bench`. Each subcommand runs
// for a fixed duration (after a warm-up that is not counted) or a fixed
// count, prints one JSON line with its result on stdout and exits.
//
//	loadgen http    -url URL -c 64 -d 2s -warmup 300ms   keep-alive POSTs of 1 KiB
//	loadgen sse     -url URL -n 300                      time to first event
//	loadgen ws-echo -url WSURL -sessions 100 -d 2s       3,200-byte echo round trips
//	loadgen ws-push -url WSURL -sessions 100 -d 2s       pushed 3,200-byte frames
//	loadgen ws-tts  -url WSURL -sessions 1000 -d 4s      Speech-shaped: real-time audio turns
//	loadgen ws-idle -url WSURL -sessions 1000            open, report, hold until stdin closes
//
// HTTP is spoken by hand over TCP (requests prebuilt, responses parsed just
// enough), so the generator spends little CPU per request: on a small
// machine it shares a core with the upstream, and the slower it is the
// lower the ceiling every contender is measured against. Latencies are
// recorded one by one and sorted (exact percentiles, no histogram buckets).
//
// With -pid, ws-echo and ws-tts also read the CPU time of that process and
// its descendants (the proxy under test) at the start and at the end of the
// measured window, so that the figure leaves out the handshakes and the
// warm-up.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/bench/internal/procfs"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen http|sse|ws-echo|ws-push|ws-tts|ws-idle [flags]")
		os.Exit(2)
	}
	var (
		res any
		err error
	)
	args := os.Args[2:]
	switch os.Args[1] {
	case "http":
		res, err = runHTTP(args)
	case "sse":
		res, err = runSSE(args)
	case "ws-echo":
		res, err = runWSEcho(args)
	case "ws-push":
		res, err = runWSPush(args)
	case "ws-tts":
		res, err = runWSTTS(args)
	case "ws-idle":
		res, err = runWSIdle(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

// Result is what every load subcommand prints.
type Result struct {
	// Ops is the number of operations (requests, round trips, frames)
	// completed inside the measured window; Total includes the warm-up.
	Ops, Total int64
	Errors     int64
	Seconds    float64
	PerSecond  float64
	P50us      float64 `json:"P50us"`
	P99us      float64 `json:"P99us"`
	P999us     float64 `json:"P999us,omitempty"`
	MaxUs      float64 `json:"MaxUs,omitempty"`
	Sessions   int     `json:",omitempty"`
	// Done is the number of operations that ended inside the measured
	// window, wherever they began: the work the CPU figures below paid for.
	Done int64 `json:",omitempty"`
	// CPUUser and CPUSystem are the CPU seconds the -pid process tree
	// used inside the measured window (utime and stime).
	CPUUser   float64 `json:",omitempty"`
	CPUSystem float64 `json:",omitempty"`
}

// window is the measured part of a run: operations that start after Start
// and end before End count.
type window struct {
	start, end time.Time
}

func newWindow(warmup, d time.Duration) window {
	now := time.Now()
	return window{start: now.Add(warmup), end: now.Add(warmup + d)}
}

func (w window) counts(begin, end time.Time) bool { return !begin.Before(w.start) && !end.After(w.end) }

func (w window) over(now time.Time) bool { return now.After(w.end) }

// ends reports whether an operation that ended at t ended inside w.
func (w window) ends(t time.Time) bool { return w.counts(t, t) }

// cpuMeter reads the CPU time of a process tree at the start and at the end
// of a window, from its own goroutine, so that a busy load does not move the
// readings.
type cpuMeter struct {
	done chan procfs.CPU
}

// meterCPU starts reading pid's CPU for w; pid 0 reads nothing.
func meterCPU(pid int, w window) *cpuMeter {
	m := &cpuMeter{done: make(chan procfs.CPU, 1)}
	if pid == 0 {
		m.done <- procfs.CPU{}
		return m
	}
	go func() {
		time.Sleep(time.Until(w.start))
		before := procfs.CPUOf(pid)
		time.Sleep(time.Until(w.end))
		m.done <- procfs.CPUOf(pid).Sub(before)
	}()
	return m
}

// into waits for the end of the window and records the CPU used in r.
func (m *cpuMeter) into(r *Result) {
	c := <-m.done
	r.CPUUser, r.CPUSystem = c.User, c.System
}

func summarize(lat [][]time.Duration, w window, total, errs int64) Result {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	secs := w.end.Sub(w.start).Seconds()
	r := Result{Ops: int64(len(all)), Total: total, Errors: errs, Seconds: secs, PerSecond: float64(len(all)) / secs}
	r.P50us = percentile(all, 0.50)
	r.P99us = percentile(all, 0.99)
	r.P999us = percentile(all, 0.999)
	if len(all) > 0 {
		r.MaxUs = float64(all[len(all)-1].Nanoseconds()) / 1e3
	}
	return r
}

// percentile of sorted durations, in microseconds (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// ---- HTTP ----

func runHTTP(args []string) (any, error) {
	fs := flag.NewFlagSet("http", flag.ContinueOnError)
	target := fs.String("url", "", "http://host:port/path")
	conc := fs.Int("c", 1, "concurrent keep-alive connections, one request in flight on each")
	d := fs.Duration("d", 2*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "warm-up before the measured window")
	bodySize := fs.Int("body", 1024, "request body bytes")
	maxReq := fs.Int64("max", 2_000_000, "stop after this many requests in all")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port/path", *target)
	}
	body := bytes.Repeat([]byte("q"), *bodySize)
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: entraproxy-bench\r\nContent-Type: application/json\r\nApi-Key: dummy\r\nContent-Length: %d\r\n\r\n", u.RequestURI(), u.Host, len(body))
	req = append(req, body...)

	w := newWindow(*warmup, *d)
	var total, errs atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	for i := range *conc {
		wg.Go(func() {
			c := &rawClient{addr: u.Host}
			defer c.close()
			l := make([]time.Duration, 0, 1<<14)
			for {
				begin := time.Now()
				if w.over(begin) || total.Load() >= *maxReq {
					break
				}
				_, err := c.do(req)
				end := time.Now()
				if err != nil {
					errs.Add(1)
					c.close()
					time.Sleep(time.Millisecond) // a refused connection must not spin
					continue
				}
				total.Add(1)
				if w.counts(begin, end) {
					l = append(l, end.Sub(begin))
				}
			}
			lat[i] = l
		})
	}
	wg.Wait()
	r := summarize(lat, w, total.Load(), errs.Load())
	return r, nil
}

// rawClient is one keep-alive HTTP/1.1 connection.
type rawClient struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends req and reads the whole response; it returns when the first body
// byte arrived. Any status but 200 is an error.
func (c *rawClient) do(req []byte) (time.Time, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return time.Time{}, err
		}
		c.conn = conn
		c.br = bufio.NewReaderSize(conn, 32<<10)
	}
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(req); err != nil {
		return time.Time{}, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return time.Time{}, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return time.Time{}, fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	var (
		length           int64 = -1
		chunked, closing bool
	)
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return time.Time{}, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	var first time.Time
	switch {
	case chunked:
		for {
			sz, err := c.br.ReadSlice('\n')
			if err != nil {
				return first, err
			}
			hexLen, _, _ := bytes.Cut(bytes.TrimSpace(sz), []byte(";"))
			n, err := strconv.ParseInt(string(hexLen), 16, 64)
			if err != nil {
				return first, fmt.Errorf("bad chunk size %q", sz)
			}
			if n == 0 {
				for { // trailers
					t, err := c.br.ReadSlice('\n')
					if err != nil {
						return first, err
					}
					if len(t) <= 2 {
						break
					}
				}
				break
			}
			if first.IsZero() {
				if _, err := c.br.Peek(1); err != nil {
					return first, err
				}
				first = time.Now()
			}
			if _, err := c.br.Discard(int(n) + 2); err != nil {
				return first, err
			}
		}
	case length > 0:
		if _, err := c.br.Peek(1); err != nil {
			return first, err
		}
		first = time.Now()
		if _, err := c.br.Discard(int(length)); err != nil {
			return first, err
		}
	case length < 0:
		// Until the connection closes.
		if _, err := c.br.Peek(1); err == nil {
			first = time.Now()
		}
		io.Copy(io.Discard, c.br)
		closing = true
	}
	if closing {
		c.close()
	}
	if status != "200" {
		return first, fmt.Errorf("status %s", status)
	}
	return first, nil
}

// ---- server-sent events ----

func runSSE(args []string) (any, error) {
	fs := flag.NewFlagSet("sse", flag.ContinueOnError)
	target := fs.String("url", "", "http://host:port/path of an event stream")
	n := fs.Int("n", 300, "measured requests, one after another on one connection")
	warmup := fs.Int("warmup", 30, "requests before the measured ones")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port/path", *target)
	}
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: entraproxy-bench\r\nAccept: text/event-stream\r\nApi-Key: dummy\r\n\r\n", u.RequestURI(), u.Host)
	c := &rawClient{addr: u.Host}
	defer c.close()
	var (
		ttfb       []time.Duration
		errs       int64
		start, end time.Time
	)
	for i := range *warmup + *n {
		if i == *warmup {
			start = time.Now()
		}
		begin := time.Now()
		first, err := c.do(req)
		if err != nil || first.IsZero() {
			errs++
			c.close()
			continue
		}
		if i >= *warmup {
			ttfb = append(ttfb, first.Sub(begin))
		}
	}
	end = time.Now()
	return summarize([][]time.Duration{ttfb}, window{start: start, end: end}, int64(*warmup+*n), errs), nil
}

// ---- WebSocket ----

// dialAll opens n sessions to target, at most 64 handshakes at a time, and
// returns those that opened.
func dialAll(target string, n int) ([]*websocket.Conn, int64) {
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}}
	conns := make([]*websocket.Conn, n)
	var failed atomic.Int64
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, _, err := dialer.Dial(target, nil)
			if err != nil {
				if failed.Add(1) == 1 {
					fmt.Fprintln(os.Stderr, "loadgen: dial:", err)
				}
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	return slices.DeleteFunc(conns, func(c *websocket.Conn) bool { return c == nil }), failed.Load()
}

func closeAll(conns []*websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, c := range conns {
		c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	}
}

// wsOptions are the flags every WebSocket load takes.
type wsOptions struct {
	target    string
	sessions  int
	d, warmup time.Duration
	pid       int
}

// wsFlags parses the common WebSocket flags; more adds a command's own.
func wsFlags(name string, args []string, more ...func(*flag.FlagSet)) (wsOptions, error) {
	var o wsOptions
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&o.target, "url", "", "ws://host:port/path")
	fs.IntVar(&o.sessions, "sessions", 1, "concurrent sessions")
	fs.DurationVar(&o.d, "d", 2*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "warm-up before the measured window")
	fs.IntVar(&o.pid, "pid", 0, "process (with its descendants) whose CPU time to report for the measured window; 0 for none")
	for _, f := range more {
		f(fs)
	}
	return o, fs.Parse(args)
}

func runWSEcho(args []string) (any, error) {
	o, err := wsFlags("ws-echo", args)
	if err != nil {
		return nil, err
	}
	conns, failed := dialAll(o.target, o.sessions)
	if len(conns) == 0 {
		return nil, errors.New("no session opened")
	}
	defer closeAll(conns)
	frame := bytes.Repeat([]byte("a"), 3200)
	w := newWindow(o.warmup, o.d)
	cpu := meterCPU(o.pid, w)
	var total, done, errs atomic.Int64
	errs.Add(failed)
	lat := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var l []time.Duration
			buf := make([]byte, 0, 4096)
			for {
				begin := time.Now()
				if w.over(begin) {
					break
				}
				c.SetReadDeadline(begin.Add(30 * time.Second))
				if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
					errs.Add(1)
					break
				}
				_, r, err := c.NextReader()
				if err == nil {
					buf, err = readInto(buf[:0], r)
				}
				if err != nil || len(buf) != len(frame) {
					errs.Add(1)
					break
				}
				end := time.Now()
				total.Add(1)
				if w.ends(end) {
					done.Add(1)
				}
				if w.counts(begin, end) {
					l = append(l, end.Sub(begin))
				}
			}
			lat[i] = l
		})
	}
	wg.Wait()
	r := summarize(lat, w, total.Load(), errs.Load())
	r.Sessions, r.Done = len(conns), done.Load()
	cpu.into(&r)
	return r, nil
}

// runWSPush reads pushed audio frames. The latency is one way, from the
// upstream's send time in the frame to its arrival here; under a flood it is
// mostly time queued in socket buffers, so only the rate means much.
func runWSPush(args []string) (any, error) {
	o, err := wsFlags("ws-push", args)
	if err != nil {
		return nil, err
	}
	conns, failed := dialAll(o.target, o.sessions)
	if len(conns) == 0 {
		return nil, errors.New("no session opened")
	}
	defer closeAll(conns)
	w := newWindow(o.warmup, o.d)
	var total, errs atomic.Int64
	errs.Add(failed)
	lat := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var l []time.Duration
			buf := make([]byte, 0, 4096)
			for {
				now := time.Now()
				if w.over(now) {
					break
				}
				c.SetReadDeadline(now.Add(30 * time.Second))
				_, r, err := c.NextReader()
				if err == nil {
					buf, err = readInto(buf[:0], r)
				}
				if err != nil || len(buf) < 8 {
					errs.Add(1)
					break
				}
				end := time.Now()
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf)))
				total.Add(1)
				// Frames arriving in the window count, however long they
				// queued: the upstream pushes faster than any relay.
				if w.counts(end, end) {
					l = append(l, end.Sub(sent))
				}
			}
			lat[i] = l
		})
	}
	wg.Wait()
	r := summarize(lat, w, total.Load(), errs.Load())
	r.Sessions = len(conns)
	return r, nil
}

// ttsRequest is the small text message that asks for a turn, shaped like
// the Speech SDK's synthesis request (headers, then SSML).
var ttsRequest = []byte("X-RequestId:0123456789abcdef0123456789abcdef\r\nPath:ssml\r\n" +
	"X-Timestamp:2026-01-01T00:00:00.000Z\r\nContent-Type:application/ssml+xml\r\n\r\n" +
	"<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='en-US'>" +
	"<voice name='en-US-AvaMultilingualNeural'>The quick brown fox jumps over the lazy dog.</voice></speak>")

// runWSTTS is the Speech-shaped load against /ws/tts: every session asks for
// a turn of synthesized audio with one small text message, receives its
// 3,200-byte frames at real-time pace (10 per second), and asks for the
// next turn when the turn.end text message comes. The sessions start spread
// over one frame interval, as independent clients would, not in lockstep.
// Each audio frame's delay is its arrival here minus the send time the
// upstream stamped in it (one clock: both run on this machine); frames that
// arrive inside the measured window count. At the end of the window every
// session stops reading and closes, mid-turn or not.
func runWSTTS(args []string) (any, error) {
	var frames int
	o, err := wsFlags("ws-tts", args, func(fs *flag.FlagSet) {
		fs.IntVar(&frames, "frames", 30, "audio frames per turn (100 ms each)")
	})
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(o.target)
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w", o.target, err)
	}
	q := u.Query()
	q.Set("frames", strconv.Itoa(frames))
	u.RawQuery = q.Encode()
	conns, failed := dialAll(u.String(), o.sessions)
	if len(conns) == 0 {
		return nil, errors.New("no session opened")
	}
	defer closeAll(conns)
	const interval = 100 * time.Millisecond
	t0 := time.Now()
	w := newWindow(o.warmup, o.d)
	cpu := meterCPU(o.pid, w)
	var total, errs atomic.Int64
	errs.Add(failed)
	fail := func(format string, args ...any) {
		if errs.Add(1) == failed+1 {
			fmt.Fprintf(os.Stderr, "loadgen: ws-tts: "+format+"\n", args...)
		}
	}
	lat := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			time.Sleep(time.Until(t0.Add(interval * time.Duration(i) / time.Duration(len(conns)))))
			var l []time.Duration
			buf := make([]byte, 0, 4096)
			if err := c.WriteMessage(websocket.TextMessage, ttsRequest); err != nil {
				fail("request: %v", err)
				return
			}
			for {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				mt, r, err := c.NextReader()
				if err == nil {
					buf, err = readInto(buf[:0], r)
				}
				now := time.Now()
				if err != nil {
					fail("read: %v", err)
					break
				}
				if mt == websocket.TextMessage { // turn.end: ask for the next turn
					if w.over(now) {
						break
					}
					if err := c.WriteMessage(websocket.TextMessage, ttsRequest); err != nil {
						fail("request: %v", err)
						break
					}
					continue
				}
				if len(buf) != 3200 {
					fail("audio frame of %d bytes, want 3200", len(buf))
					break
				}
				total.Add(1)
				if w.ends(now) {
					l = append(l, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(buf)))))
				}
				if w.over(now) {
					break
				}
			}
			lat[i] = l
		})
	}
	wg.Wait()
	r := summarize(lat, w, total.Load(), errs.Load())
	r.Sessions, r.Done = len(conns), r.Ops
	cpu.into(&r)
	return r, nil
}

// runWSIdle opens the sessions, prints how many opened, and holds them until
// stdin reaches its end, so the caller can measure the proxy in between.
func runWSIdle(args []string) (any, error) {
	o, err := wsFlags("ws-idle", args)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	conns, failed := dialAll(o.target, o.sessions)
	json.NewEncoder(os.Stdout).Encode(map[string]any{"Opened": len(conns), "Failed": failed, "Seconds": time.Since(start).Seconds()})
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return map[string]any{"Closed": len(conns)}, nil
}

// readInto reads r to its end into buf.
func readInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 4096)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
