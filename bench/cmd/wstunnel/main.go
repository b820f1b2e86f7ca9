// Command wstunnel is the smallest Go reverse proxy that adds a static
// Authorization header: httputil.ReverseProxy, which passes 101 upgrades
// through natively as a byte tunnel. `make bench` uses it as the reference
// for what a WebSocket relay in Go costs without per-message work. It is
// built only for the benchmark.
//
//	wstunnel -listen 127.0.0.1:0 -upstream http://127.0.0.1:PORT [-pprof-addr-file FILE]
//
// It prints "listening ADDR" on stdout and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/entraproxy/entraproxy/bench/benchprof"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to serve on")
	upstream := flag.String("upstream", "", "http://host:port to forward to")
	pprofFile := flag.String("pprof-addr-file", "", "serve net/http/pprof on 127.0.0.1 and write its address to this file (make bench-profile)")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		fmt.Fprintln(os.Stderr, "wstunnel: -upstream http://host:port is required")
		os.Exit(2)
	}
	if *pprofFile != "" {
		stop, err := benchprof.Serve(*pprofFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wstunnel:", err)
			os.Exit(1)
		}
		defer stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header["Authorization"] = []string{"Bearer x"}
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(slog.NewTextHandler(os.Stderr, nil), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wstunnel:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "wstunnel:", err)
		os.Exit(1)
	}
}
