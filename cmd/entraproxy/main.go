// Command entraproxy is a sidecar proxy that adds Microsoft Entra ID tokens to
// requests for Azure Cognitive Services, so apps that know only keys (or
// nothing) work unchanged.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go watchSignals(signals, cancel, os.Stderr, os.Exit)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// repeatWindow is how long after the first signal further ones count as the
// same request to shut down. One stop often arrives twice: coreutils
// timeout sends SIGTERM to its child and then to the child's process group
// (https://www.gnu.org/software/coreutils/manual/html_node/timeout-invocation.html,
// and timeout.c's cleanup), and a Ctrl-C reaches a process from the terminal
// and again from a wrapper that forwards it.
const repeatWindow = time.Second

const (
	sameShutdownNote = "taken as the same request to shut down"
	secondSignalHint = "still shutting down; a further signal exits at once"
)

// watchSignals turns the first signal into a graceful shutdown (shutdown
// cancels run's context). Signals within repeatWindow of it are the same
// request; one after it exits at once with exitRuntime, through exit, for an
// operator who does not want to wait for the drain. It returns when signals
// is closed or after calling exit.
func watchSignals(signals <-chan os.Signal, shutdown func(), stderr io.Writer, exit func(code int)) {
	first, ok := <-signals
	if !ok {
		return
	}
	shutdown()
	window := time.NewTimer(repeatWindow)
	defer window.Stop()
	for {
		select {
		case sig, ok := <-signals:
			if !ok {
				return
			}
			fmt.Fprintf(stderr, "entraproxy: %v within %v of %v, %s\n", sig, repeatWindow, first, sameShutdownNote)
		case <-window.C:
			fmt.Fprintf(stderr, "entraproxy: %s\n", secondSignalHint)
			if _, ok := <-signals; !ok {
				return
			}
			fmt.Fprintln(stderr, "entraproxy: second signal, exiting at once")
			exit(exitRuntime)
			return
		}
	}
}
