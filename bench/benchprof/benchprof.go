// Package benchprof serves a benchmarked process's Go profiles and runtime
// metrics over HTTP on 127.0.0.1, for `make bench-profile`. Only benchmark
// builds link it: the harness's own relays (kodingbare, wstunnel) call Serve
// when asked, and bench/run.sh builds a profiling variant of entraproxy by
// adding, at build time only (go build -overlay), a file to its main
// package that calls FromEnv. entraproxy itself has no profiling endpoint.
package benchprof

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/metrics"
)

// AddrFileEnv names the file FromEnv writes the listener's address to.
const AddrFileEnv = "BENCH_PPROF_ADDR_FILE"

// FromEnv calls Serve when AddrFileEnv is set, and exits the process if it
// cannot: a profiling run without its profiles is of no use.
func FromEnv() {
	f := os.Getenv(AddrFileEnv)
	if f == "" {
		return
	}
	if _, err := Serve(f); err != nil {
		fmt.Fprintln(os.Stderr, "benchprof:", err)
		os.Exit(1)
	}
}

// Serve listens on a kernel-chosen port of 127.0.0.1, writes "host:port" to
// addrFile once it listens (the file appears whole: it is written under
// another name and renamed), and serves until stop is called:
//
//	/debug/pprof/...   net/http/pprof: profile?seconds=N (CPU),
//	                   allocs?seconds=N (allocations in the last N seconds)
//	/debug/runtime     the runtime/metrics samples in RuntimeMetrics, as a
//	                   JSON object of name to number
func Serve(addrFile string) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, addrFile); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/runtime", serveMetrics)
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "benchprof:", err)
		}
	}()
	return func() { srv.Close(); <-done }, nil
}

// RuntimeMetrics are the runtime/metrics samples /debug/runtime reports:
// what the garbage collector did and cost, how much was allocated, and
// where the memory in use sits (heap objects, goroutine stacks).
// The /cpu/classes figures are the runtime's own estimates; compare them
// only with each other (runtime/metrics documentation).
var RuntimeMetrics = []string{
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/live:bytes",
	"/gc/gogc:percent",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/scavenge/total:cpu-seconds",
	"/cpu/classes/user:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/sched/goroutines:goroutines",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/stack/starting-size:bytes",
}

func serveMetrics(w http.ResponseWriter, _ *http.Request) {
	samples := make([]metrics.Sample, len(RuntimeMetrics))
	for i, name := range RuntimeMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	out := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			out[s.Name] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			out[s.Name] = s.Value.Float64()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
