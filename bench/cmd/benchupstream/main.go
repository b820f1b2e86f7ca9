// Command benchupstream is the upstream of `make bench`: a plain-HTTP server
// on 127.0.0.1 fast enough not to be what a benchmark measures, plus the fake
// managed identity endpoint (internal/fakeazure) that gives entraproxy real
// tokens through azidentity and counts the credential calls.
//
// It prints one JSON line with its addresses, then serves until SIGINT or
// SIGTERM.
//
//	POST /echo        reads the request body, answers 4 KiB with a Content-Length
//	GET  /sse         text/event-stream: the first event at once, then 3 more
//	GET  /ws/echo     WebSocket: each message is sent back
//	GET  /ws/audio    WebSocket: 3,200-byte binary frames pushed as fast as the
//	                  connection takes them; the first 8 bytes are the send time
//	                  (Unix nanoseconds, big endian)
//	GET  /ws/tts      WebSocket, shaped like Speech synthesis: each text message
//	                  from the client starts a turn of ?frames= (default 30)
//	                  3,200-byte binary frames at real-time pace, one every
//	                  100 ms, the first at once, each stamped like /ws/audio's;
//	                  a small text message ends the turn
//	GET  /ws/idle     WebSocket: holds the session, reads until it closes
//	GET  /_bench/credential-calls   tokens the identity endpoint handed out
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
)

// Sizes from issue 7: a 1 KiB request answered by 4 KiB, and 100 ms of
// 16 kHz 16-bit mono audio per WebSocket frame.
const (
	responseSize  = 4096
	audioFrame    = 3200
	audioInterval = 100 * time.Millisecond
)

// ready is the line printed once the upstream listens.
type ready struct {
	URL              string `json:"url"`
	IdentityEndpoint string `json:"identity_endpoint"`
	IdentityHeader   string `json:"identity_header"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchupstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchupstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "host:port to serve on")
	lifetime := fs.Duration("token-lifetime", time.Hour, "lifetime of the tokens the identity endpoint issues")
	if err := fs.Parse(args); err != nil {
		return err
	}
	az, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{TokenLifetime: *lifetime}})
	if err != nil {
		return err
	}
	defer az.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	u := newUpstream(az)
	srv := &http.Server{Handler: u.mux(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })

	line, _ := json.Marshal(ready{URL: "http://" + ln.Addr().String(), IdentityEndpoint: az.IdentityEndpoint(), IdentityHeader: az.IdentityHeader()})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Close() // also ends hijacked WebSocket sessions through u.closeAll
	u.closeAll()
	wg.Wait()
	return nil
}

type upstream struct {
	az       *fakeazure.Azure
	response []byte
	upgrader websocket.Upgrader

	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

func newUpstream(az *fakeazure.Azure) *upstream {
	resp := make([]byte, responseSize)
	for i := range resp {
		resp[i] = 'a' + byte(i%26)
	}
	return &upstream{
		az:       az,
		response: resp,
		// Small buffers: at 10,000 idle sessions the upstream's memory is
		// not what is measured, but it must fit.
		upgrader: websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, WriteBufferPool: &sync.Pool{}},
		conns:    map[*websocket.Conn]struct{}{},
	}
}

func (u *upstream) mux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("/echo", u.echo)
	m.HandleFunc("/sse", u.sse)
	m.HandleFunc("/ws/echo", u.websocket(wsEcho))
	m.HandleFunc("/ws/audio", u.websocket(wsAudio))
	m.HandleFunc("/ws/tts", func(w http.ResponseWriter, r *http.Request) {
		frames, err := strconv.Atoi(r.URL.Query().Get("frames"))
		if err != nil || frames < 1 {
			frames = 30
		}
		u.websocket(func(c *websocket.Conn) { wsTTS(c, frames) })(w, r)
	})
	m.HandleFunc("/ws/idle", u.websocket(wsIdle))
	m.HandleFunc("/_bench/credential-calls", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", u.az.Issued())
	})
	return m
}

func (u *upstream) echo(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(u.response))}
	w.Write(u.response)
}

// sse sends the first event at once, as a streamed chat completion does, and
// three more right after it.
func (u *upstream) sse(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	rc := http.NewResponseController(w)
	for i := range 4 {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token %d\"}}]}\n\n", i)
		if err := rc.Flush(); err != nil {
			return
		}
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func (u *upstream) websocket(serve func(*websocket.Conn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := u.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			delete(u.conns, c)
			u.mu.Unlock()
			c.Close()
		}()
		serve(c)
	}
}

func (u *upstream) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		c.Close()
	}
}

// wsEcho sends each message back through one reused buffer.
func wsEcho(c *websocket.Conn) {
	buf := make([]byte, 0, 64<<10)
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return
		}
		b := readAll(buf[:0], r)
		if b == nil {
			return
		}
		if err := c.WriteMessage(mt, b); err != nil {
			return
		}
		buf = b
	}
}

// readAll reads r to the end into buf, or nil on an error.
func readAll(buf []byte, r io.Reader) []byte {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf
		}
		if err != nil {
			return nil
		}
	}
}

// wsAudio pushes frames until the client goes away; a reader notices the
// close.
func wsAudio(c *websocket.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
		}
	}()
	frame := make([]byte, audioFrame)
	for {
		select {
		case <-done:
			return
		default:
		}
		binary.BigEndian.PutUint64(frame, uint64(time.Now().UnixNano()))
		if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			<-done
			return
		}
	}
}

// turnEnd is the text message that ends a turn, as the Speech service's
// turn.end does.
var turnEnd = []byte("X-RequestId:0123456789abcdef0123456789abcdef\r\nPath:turn.end\r\n\r\n")

// wsTTS answers each text message (a synthesis request) with frames audio
// frames at real-time pace, then turnEnd. Each frame's first 8 bytes are its
// send time (Unix nanoseconds, big endian), taken right before it is
// written. The schedule is absolute (the turn's start plus k × 100 ms), so a
// late frame does not delay the ones after it. The client sends nothing
// during a turn, so reads wait until it ends; a client that leaves mid-turn
// makes the next write fail.
func wsTTS(c *websocket.Conn, frames int) {
	frame := make([]byte, audioFrame)
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		if mt != websocket.TextMessage {
			continue
		}
		start := time.Now()
		for k := range frames {
			time.Sleep(time.Until(start.Add(time.Duration(k) * audioInterval)))
			binary.BigEndian.PutUint64(frame, uint64(time.Now().UnixNano()))
			if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
				return
			}
		}
		if err := c.WriteMessage(websocket.TextMessage, turnEnd); err != nil {
			return
		}
	}
}

func wsIdle(c *websocket.Conn) {
	for {
		if _, _, err := c.NextReader(); err != nil {
			return
		}
	}
}
