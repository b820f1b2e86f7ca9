package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The proxy's garbage collection policy, when neither GOGC nor GOMEMLIMIT
// is set (either one, set, is Go's own policy, unchanged: see README,
// "Memory and garbage collection").
//
// A relay's heap is mostly garbage in flight: koding reads every WebSocket
// message whole into a fresh slice (gorilla's ReadMessage), about 7.5 KB
// per 3,200-byte audio frame, and drops it once written, while what lives
// on (a few KiB per session) grows only with sessions. With Go's default
// (GOGC=100, the next collection when the heap has grown by as much as was
// live after the last one) a proxy with 100 sessions collects every few
// MB, hundreds of times per 100,000 messages, and the collector took about
// 20% of its CPU (BENCHMARKS.md, Profiling). So the heap may grow by at
// least gcHeadroom between collections: the goal is live + max(live,
// gcHeadroom). With a small live heap that is a fixed headroom that makes
// collections rare; once live exceeds gcHeadroom (about 1,500 idle sessions)
// it is exactly GOGC=100, so memory per idle session at 10,000 sessions is
// what Go's default gives.
//
// Go has no setting for a floor under the heap goal (GOMEMLIMIT is a
// ceiling), so gcFloor re-computes GOGC after each collection from the
// live heap it found (runtime/metrics /gc/heap/live:bytes):
// GOGC = max(100, 100 × gcHeadroom / live), at most 800.
const gcHeadroom = 32 << 20

// gcPolicyMu guards gcPolicy, the policy installed by the serve running
// now, if any: the collector is the process's, so one serve owns it at a
// time (tests run several in one process).
var (
	gcPolicyMu sync.Mutex
	gcPolicy   *gcFloor
)

// startGCPolicy installs the proxy's collection policy, unless getenv has
// GOGC or GOMEMLIMIT, the runtime's own settings are not Go's defaults
// (another part of the process chose them), or another serve in this
// process owns the policy. It reports whether it installed it, and returns
// the function that takes it out again and restores GOGC=100.
func startGCPolicy(getenv func(string) string) (stop func(), installed bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}, false
	}
	gcPolicyMu.Lock()
	defer gcPolicyMu.Unlock()
	if gcPolicy != nil || gcPercent() != 100 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return func() {}, false
	}
	f := &gcFloor{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}, percent: 100}
	gcPolicy = f
	f.tune()
	f.arm()
	return func() {
		gcPolicyMu.Lock()
		defer gcPolicyMu.Unlock()
		if gcPolicy == f {
			gcPolicy = nil
			if f.percent != 0 && gcPercent() == f.percent {
				debug.SetGCPercent(100)
			}
		}
	}, true
}

// gcPercent reads the collector's GOGC, which the runtime offers only
// through setting it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// gcFloor keeps the heap goal at least gcHeadroom above the live heap.
// Its fields are guarded by gcPolicyMu.
type gcFloor struct {
	sample  []metrics.Sample
	percent int // the GOGC it last set; 0 once it has given up
}

// arm runs tune after the next collection: the finalizer of an object that
// nothing references runs once a collection has found it unreachable.
func (f *gcFloor) arm() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		gcPolicyMu.Lock()
		defer gcPolicyMu.Unlock()
		if gcPolicy == f && f.tune() {
			f.arm()
		}
	})
}

// gcSentinel is only allocated for its finalizer. It holds a pointer so
// that it gets an allocation of its own: an object without pointers under
// 16 bytes may share a block with others (the tiny allocator), and its
// finalizer would then wait for all of them to die (runtime.SetFinalizer's
// documentation); with a byte field the policy stopped for good in a test
// that kept one small object alive beside it.
type gcSentinel struct{ _ *byte }

// tune sets GOGC for the live heap the last collection found. It reports
// false, and the policy stops, when GOGC is no longer what it last set:
// something else in the process chose a value, which it keeps.
func (f *gcFloor) tune() bool {
	metrics.Read(f.sample)
	var live uint64 // 0 before the first collection
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	percent := gcPercentFor(live)
	if old := debug.SetGCPercent(percent); old != f.percent {
		debug.SetGCPercent(old)
		f.percent = 0
		return false
	}
	f.percent = percent
	return true
}

// gcPercentFor is the GOGC that puts the next collection at live +
// max(live, gcHeadroom) for a live heap of live bytes. Below gcMinLive the
// pacer's own floor does the work: Go never sets a goal under 4 MiB ×
// GOGC/100 (runtime/mgcpacer.go, heapMinimum), which at the highest
// percent here is gcHeadroom.
func gcPercentFor(live uint64) int {
	return int(max(100*gcHeadroom/max(live, gcMinLive), 100))
}

// gcMinLive is the Go runtime's defaultHeapMinimum (runtime/mgcpacer.go).
const gcMinLive = 4 << 20
