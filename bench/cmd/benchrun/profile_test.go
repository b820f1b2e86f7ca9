//go:build linux

package main

import (
	"math"
	"testing"
)

// A `go tool pprof -traces` excerpt (Go 1.26): a header, then one block per
// stack, leaf first.
const sampleTraces = `File: entraproxy
Type: cpu
-----------+-------------------------------------------------------
      30ms   internal/runtime/syscall.Syscall6
             syscall.write
             internal/poll.(*FD).Write
             net.(*conn).Write
             github.com/gorilla/websocket.(*Conn).WriteMessage
             github.com/koding/websocketproxy.(*WebsocketProxy).ServeHTTP.func1
-----------+-------------------------------------------------------
      10ms   runtime.memclrNoHeapPointers
             runtime.mallocgc
             io.ReadAll
             github.com/gorilla/websocket.(*Conn).ReadMessage
             github.com/koding/websocketproxy.(*WebsocketProxy).ServeHTTP.func1
-----------+-------------------------------------------------------
      1.50s  runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
     460ms   runtime.futex
             runtime.someOtherThing
-----------+-------------------------------------------------------
`

func TestParseTracesAndCategories(t *testing.T) {
	ts := parseTraces(sampleTraces)
	if len(ts) != 4 {
		t.Fatalf("parsed %d traces, want 4", len(ts))
	}
	if got, want := ts[2].value, 1.5e9; got != want {
		t.Errorf("third trace's value = %v ns, want %v", got, want)
	}
	if got, want := ts[0].frames[2], "internal/poll.(*FD).Write"; got != want {
		t.Errorf("first trace's third frame = %q, want %q", got, want)
	}
	want := map[string]float64{
		"GC: background marking, sweeping, scavenging":          75,
		"write system calls (internal/poll FD.Write and below)": 1.5,
		"heap allocation (mallocgc, growslice), not GC":         0.5,
		"other (runtime bookkeeping, timers, the rest)":         23,
	}
	var sum float64
	for _, s := range ts.partition(cpuCategories) {
		sum += s.pct
		if w, ok := want[s.what]; ok && math.Abs(s.pct-w) > 1e-9 {
			t.Errorf("partition %q = %.2f%%, want %.2f%%", s.what, s.pct, w)
		}
	}
	if math.Abs(sum-100) > 1e-9 {
		t.Errorf("partition sums to %.2f%%, want 100%%", sum)
	}
	for _, s := range ts.inclusive(cpuFrames) {
		if s.what == cpuFrames[0].what && math.Abs(s.pct-2) > 1e-9 {
			t.Errorf("inclusive %q = %.2f%%, want 2%%", s.what, s.pct)
		}
	}
}

func TestParseQuantity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{{"10ms", 1e7}, {"1.50s", 1.5e9}, {"512kB", 512 << 10}, {"3MB", 3 << 20}, {"42", 42}, {"7B", 7}} {
		if got, ok := parseQuantity(tc.in); !ok || got != tc.want {
			t.Errorf("parseQuantity(%q) = %v, %v; want %v, true", tc.in, got, ok, tc.want)
		}
	}
}

func TestCPUCount(t *testing.T) {
	for in, want := range map[string]int{"1": 1, "0,2": 2, "2-3": 2, "0,2-5": 5} {
		if got := cpuCount(in); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestRoundRatio: ratios are taken within each round, then the median.
func TestRoundRatio(t *testing.T) {
	r := results{}
	for _, v := range [][2]float64{{10, 20}, {30, 40}, {50, 10}} {
		r.add("f", "a", v[0])
		r.add("f", "b", v[1])
	}
	if got, ok := r.roundRatio("f", "a", "b"); !ok || got != 0.75 {
		t.Errorf("roundRatio = %v, %v; want 0.75 (the median of 0.5, 0.75, 5)", got, ok)
	}
	if got, ok := r.roundAdded("f", "a", "b"); !ok || got != -0.01 {
		t.Errorf("roundAdded = %v, %v; want -0.01 ms (the median of -10, -10, 40 µs)", got, ok)
	}
}
