// Package leakcheck tells a test whether goroutines or open files outlived
// the work it did. It waits for the counts to come back and fails only when
// they never do: a hang guard, never a verdict about speed.
//
// Goroutines end, and files close, when the scheduler gets to them, which
// nothing announces: a busy machine may take seconds to wind down. So the
// counts are polled, and HangGuard only turns a leak into a failure.
package leakcheck

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// HangGuard is how long Check waits for the counts to come back before it
// calls them a leak, and the bound of every other wait in the repository's
// tests: a wait ends on its event (a log line, a channel, an exit), and
// this only turns one that never comes into a failure instead of a hung
// package. No working program takes this long, even under -race on a
// loaded 2-core machine; it is never a verdict about speed.
const HangGuard = 2 * time.Minute

// poll is the time between two looks at the counts.
const poll = 20 * time.Millisecond

// Counts are a process's goroutines and open file descriptors.
type Counts struct {
	Goroutines, Files int
}

// Now counts this process's goroutines and its open files (the entries of
// /proc/self/fd). Where there is no /proc it skips the test.
func Now(t testing.TB) Counts {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return Counts{Goroutines: runtime.NumGoroutine(), Files: len(entries)}
}

// Quiet runs settle (which should drop what a pool may keep, such as idle
// keep-alive connections) and waits until the counts stop falling: three
// looks in a row that agree. That is the baseline for Check. A baseline
// taken too early is only higher, which makes Check more lenient, never
// flaky.
func Quiet(t testing.TB, settle ...func()) Counts {
	t.Helper()
	for _, f := range settle {
		f()
	}
	last := Now(t)
	for same := 0; same < 3; {
		time.Sleep(poll)
		now := Now(t)
		if now == last {
			same++
		} else {
			same = 0
		}
		last = now
	}
	return last
}

// Check waits until goroutines and open files are back to at most base plus
// slack each, running settle before every look. After HangGuard it fails
// the test with the counts and a dump of every goroutine. what names the
// work in the message.
//
// slack is for runtime and library goroutines started lazily during the
// work; a leak per request or session exceeds it many times over.
func Check(t testing.TB, what string, base Counts, slack int, settle ...func()) {
	t.Helper()
	check(t, what, base, slack, HangGuard, settle)
}

func check(t testing.TB, what string, base Counts, slack int, hangGuard time.Duration, settle []func()) {
	t.Helper()
	guard := time.Now().Add(hangGuard)
	for {
		for _, f := range settle {
			f()
		}
		now := Now(t)
		if now.Goroutines <= base.Goroutines+slack && now.Files <= base.Files+slack {
			return
		}
		if time.Now().After(guard) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: goroutines = %d (baseline %d), open files = %d (baseline %d), slack %d, after %v\n%s",
				what, now.Goroutines, base.Goroutines, now.Files, base.Files, slack, hangGuard, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(poll)
	}
}
