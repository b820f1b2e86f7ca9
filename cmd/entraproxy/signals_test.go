package main

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestWatchSignalsWindow pins the policy on a fake clock: signals within
// repeatWindow of the first are the same shutdown, whichever signal they
// are; the first one after it exits at once with exitRuntime.
func TestWatchSignalsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		signals := make(chan os.Signal, 4)
		var mu sync.Mutex
		var out strings.Builder
		shutdowns, exits := 0, []int(nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			watchSignals(signals, func() { mu.Lock(); shutdowns++; mu.Unlock() }, writerFunc(func(p []byte) {
				mu.Lock()
				out.Write(p)
				mu.Unlock()
			}), func(code int) { mu.Lock(); exits = append(exits, code); mu.Unlock() })
		}()
		state := func() (int, []int, string) {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return shutdowns, append([]int(nil), exits...), out.String()
		}

		signals <- syscall.SIGTERM
		signals <- syscall.SIGTERM
		time.Sleep(repeatWindow - time.Millisecond)
		signals <- os.Interrupt
		if s, e, o := state(); s != 1 || len(e) != 0 || strings.Count(o, sameShutdownNote) != 2 {
			t.Fatalf("within the window: shutdowns %d, exits %v, stderr %q; want 1 shutdown, no exit, 2 notes", s, e, o)
		}
		time.Sleep(time.Millisecond)
		if _, e, o := state(); len(e) != 0 || !strings.Contains(o, secondSignalHint) {
			t.Fatalf("at the window's end: exits %v, stderr %q; want no exit and the hint", e, o)
		}
		signals <- syscall.SIGTERM
		<-done
		if s, e, _ := state(); s != 1 || len(e) != 1 || e[0] != exitRuntime {
			t.Errorf("after the window: shutdowns %d, exits %v; want 1 shutdown, exit %d", s, e, exitRuntime)
		}
	})
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
