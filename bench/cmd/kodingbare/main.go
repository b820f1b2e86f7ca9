// Command kodingbare is the floor of entraproxy's WebSocket relay for
// `make bench` (contender koding-bare): github.com/koding/websocketproxy
// alone, with nothing of entraproxy's around it. It has the same gorilla
// Upgrader and Dialer settings as entraproxy's wrapper (proxy/internal/wsrelay:
// the hijacked connection's read buffer for the client side, 4 KiB reads for
// the upstream side, one write-buffer pool for both, a net.Dialer with a
// 30 s timeout and 30 s keep-alive) and a static Authorization header, but no
// token source, no frame meter, no message limit, no redirect or 401
// handling, no access log, no metrics and no shutdown close. The gap
// between it and entraproxy is the wrapper's; the gap between it and
// go-reverseproxy is koding's own relay loop. It is built only for the
// benchmark.
//
//	kodingbare -listen 127.0.0.1:0 -upstream http://127.0.0.1:PORT [-pprof-addr-file FILE]
//
// GET /_bench/ready answers 200; every other request is relayed as a
// WebSocket session. It prints "listening ADDR" on stdout and serves until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/koding/websocketproxy"

	"github.com/entraproxy/entraproxy/bench/benchprof"
)

// timeout is entraproxy's default ENTRAPROXY_UPSTREAM_TIMEOUT, which its
// dialer and handshake use.
const timeout = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kodingbare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kodingbare", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "host:port to serve on")
	upstream := fs.String("upstream", "", "http://host:port to relay to")
	pprofFile := fs.String("pprof-addr-file", "", "serve net/http/pprof on 127.0.0.1 and write its address to this file (make bench-profile)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return errors.New("-upstream http://host:port is required")
	}
	if *pprofFile != "" {
		stop, err := benchprof.Serve(*pprofFile)
		if err != nil {
			return err
		}
		defer stop()
	}

	var writeBuffers sync.Pool
	wp := &websocketproxy.WebsocketProxy{
		Backend: func(r *http.Request) *url.URL {
			return &url.URL{Scheme: "ws", Host: target.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		},
		Director: func(_ *http.Request, out http.Header) {
			out.Set("Host", target.Host)
			out["Authorization"] = []string{"Bearer x"}
		},
		Upgrader: &websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, WriteBufferPool: &writeBuffers},
		Dialer: &websocket.Dialer{
			NetDialContext:   (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			HandshakeTimeout: timeout,
			WriteBufferPool:  &writeBuffers,
			ReadBufferSize:   4096,
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_bench/ready", func(http.ResponseWriter, *http.Request) {})
	mux.Handle("/", wp)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// entraproxy's server limits (cmd/entraproxy newProxyServer); koding
	// logs every session's end to the standard logger, which goes to
	// stderr.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	defer context.AfterFunc(ctx, func() { srv.Close() })()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
