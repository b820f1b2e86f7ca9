package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

func TestGCPercentFor(t *testing.T) {
	tests := []struct {
		live uint64
		want int
	}{
		{0, 800},        // before the first collection: the pacer's floor, 4 MiB × 8
		{4 << 20, 800},  // goal 36 MiB
		{8 << 20, 400},  // goal 40 MiB: live + 32 MiB
		{16 << 20, 200}, // goal 48 MiB
		{32 << 20, 100}, // from here on Go's default
		{1 << 30, 100},
	}
	for _, tc := range tests {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

func TestGCPolicyLeavesGoSettingsAlone(t *testing.T) {
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		getenv := func(k string) string {
			if k == name {
				return "200"
			}
			return ""
		}
		stop, installed := startGCPolicy(getenv)
		stop()
		if installed {
			t.Errorf("with %s set, startGCPolicy installed the proxy's policy", name)
		}
	}
	// A GOGC that something else in the process chose is kept too.
	defer debug.SetGCPercent(debug.SetGCPercent(300))
	stop, installed := startGCPolicy(func(string) string { return "" })
	stop()
	if installed || gcPercent() != 300 {
		t.Errorf("with GOGC 300 set by the program, installed = %v and GOGC = %d, want false and 300", installed, gcPercent())
	}
}

// The policy follows the live heap collection after collection (with a
// small object that lives on beside its sentinel, which stopped it for good
// while the sentinel shared a tiny block), gives up when the program sets
// GOGC itself, and stop restores Go's default.
func TestGCPolicyFollowsTheLiveHeap(t *testing.T) {
	stop, installed := startGCPolicy(func(string) string { return "" })
	defer stop()
	if !installed {
		t.Fatal("the policy was not installed")
	}
	keep := new([3]byte) // small, no pointers, lives as long as the test
	live := make([][]byte, 16)
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	// Nothing announces a finalizer's run: collect until it has happened, within the hang guard.
	collectUntil := func(what string, done func() bool) {
		t.Helper()
		for guard := time.Now().Add(leakcheck.HangGuard); !done(); {
			if time.Now().After(guard) {
				t.Fatalf("GOGC = %d after %v of collections, want %s", gcPercent(), leakcheck.HangGuard, what)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
	waitGOGC := func(what string, ok func(int) bool) {
		t.Helper()
		collectUntil(what, func() bool { return ok(gcPercent()) })
	}
	waitGOGC("between 100 and 200 with more than 16 MiB live", func(p int) bool { return p > 100 && p <= 200 })
	runtime.KeepAlive(live) // garbage from here on
	waitGOGC("800 again once the 16 MiB are garbage", func(p int) bool { return p == 800 })

	debug.SetGCPercent(300) // the program chooses
	// The policy sees it at its next run, after a collection, and gives up.
	collectUntil("the policy to give up", func() bool {
		gcPolicyMu.Lock()
		defer gcPolicyMu.Unlock()
		return gcPolicy != nil && gcPolicy.percent == 0
	})
	if p := gcPercent(); p != 300 {
		t.Errorf("GOGC = %d once the policy gave up, want the program's 300, kept", p)
	}
	runtime.KeepAlive(keep)
	debug.SetGCPercent(100)
}

// stop takes the policy out and restores Go's default.
func TestGCPolicyStopRestoresDefault(t *testing.T) {
	stop, installed := startGCPolicy(func(string) string { return "" })
	if !installed {
		t.Fatal("the policy was not installed")
	}
	if p := gcPercent(); p != 800 {
		t.Errorf("GOGC with a small live heap = %d, want 800", p)
	}
	stop()
	if p := gcPercent(); p != 100 {
		t.Errorf("GOGC after stop = %d, want 100", p)
	}
	stop, again := startGCPolicy(func(string) string { return "" })
	stop()
	if !again {
		t.Error("a second serve could not install the policy after the first stopped")
	}
}
