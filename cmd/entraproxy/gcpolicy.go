package main

import (
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

var gcPolicyOnce sync.Once

// setGCPolicy installs the proxy's collection policy once per process,
// unless getenv has GOGC or GOMEMLIMIT, and reports whether it did.
func setGCPolicy(getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	gcPolicyOnce.Do(func() {
		f := &gcFloor{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}, percent: 100}
		f.tune()
		f.arm()
	})
	return true
}

// gcFloor keeps the heap goal at least gcHeadroom above the live heap.
type gcFloor struct {
	sample  []metrics.Sample
	percent int
}

// arm runs tune after the next collection: the finalizer of an object that
// nothing references runs once a collection has found it unreachable.
func (f *gcFloor) arm() {
	runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
		f.tune()
		f.arm()
	})
}

// gcSentinel is only allocated for its finalizer. It has a field because
// zero-size allocations share one address and are never collected.
type gcSentinel struct{ _ byte }

func (f *gcFloor) tune() {
	metrics.Read(f.sample)
	var live uint64 // 0 before the first collection
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	if percent := gcPercentFor(live); percent != f.percent {
		debug.SetGCPercent(percent)
		f.percent = percent
	}
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
