// Command entraproxy is a sidecar proxy that adds Microsoft Entra ID tokens to
// requests for Azure Cognitive Services, so apps that know only keys (or
// nothing) work unchanged.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		cancel() // first signal: drain and shut down gracefully
		<-signals
		fmt.Fprintln(os.Stderr, "entraproxy: second signal, exiting at once")
		os.Exit(exitRuntime)
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}
