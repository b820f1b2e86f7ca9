//go:build linux

package main

// `make bench-profile`: where the CPU time and the allocations of each Go
// WebSocket relay go under the 100-session echo load. The relays serve their
// profiles through bench/benchprof (entraproxy in a variant built with it,
// see bench/run.sh); perf, when installed, adds the kernel's side.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/entraproxy/entraproxy/bench/internal/procfs"
)

// profileSessions is the load profiled: the echo at 100 sessions, issue 16's
// main throughput figure.
const profileSessions = 100

// pprofAddrFile is where a contender started for profiling writes its
// benchprof address; empty when not profiling.
func (b *bench) pprofAddrFile(name string) string {
	if b.cfg.profile == "" {
		return ""
	}
	return filepath.Join(b.cfg.tmp, name+".pprof-addr")
}

// pprofEnv is the environment that makes the profiling variant of
// entraproxy serve its profiles.
func (b *bench) pprofEnv(name string) []string {
	if f := b.pprofAddrFile(name); f != "" {
		return []string{"BENCH_PPROF_ADDR_FILE=" + f}
	}
	return nil
}

// pprofArgs are the flags that make a bench relay serve its profiles.
func (b *bench) pprofArgs(name string) []string {
	if f := b.pprofAddrFile(name); f != "" {
		return []string{"-pprof-addr-file", f}
	}
	return nil
}

// profileFigures are the per-message costs of one relay over one profile.
type profileFigures struct {
	name          string
	echoRate      float64 // round trips per second (loadgen's window)
	messages      float64 // messages relayed during the profile (2 per round trip)
	userUs, sysUs float64 // CPU per message, µs
	reads, writes float64 // read and write system calls per message
	gcPer100k     float64 // GC cycles per 100,000 messages
	allocBytes    float64 // heap bytes allocated per message
	allocObjects  float64 // heap objects allocated per message
	gogc          float64
	exclusive     []share // the CPU profile, each sample in one category
	inclusive     []share // the CPU profile, samples whose stack holds a frame
	allocIncl     []share // the allocation profile (bytes), by frame
	perfDSO       string  // perf's split by binary (kernel, the program), when perf ran
	idle          idleFigures
	files         []string
}

// idleFigures are what one idle session holds, on a fresh process: (after
// − before) ÷ sessions, both read right after a forced GC.
type idleFigures struct {
	sessions          int
	rssKiB            float64
	stackKiB, heapKiB float64 // goroutine stacks; live heap objects
	goroutines        float64
	startingStackKiB  float64 // the runtime's current starting stack size
	heapTop           string  // the file with the idle heap's top allocation sites
}

type share struct {
	what string
	pct  float64
}

func runProfile(ctx context.Context, cfg config, p *procs) error {
	b := &bench{cfg: cfg, p: p, ctx: ctx, res: results{}}
	if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
		return err
	}
	if err := b.startUpstream(); err != nil {
		return err
	}
	var figs []profileFigures
	for _, c := range b.contenders() {
		switch c.name {
		case nameEntraproxy, nameKodingBare, nameTunnel:
		default:
			continue // not Go, or not a relay
		}
		if !cfg.runs(c.name) {
			continue
		}
		if err := b.startFresh(c); err != nil {
			return err
		}
		f, err := b.profileOne(c)
		b.p.stop(c.cmd)
		c.cmd = nil
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := b.startFresh(c); err != nil {
			return err
		}
		f.idle, err = b.idleBreakdown(c)
		b.p.stop(c.cmd)
		c.cmd = nil
		if err != nil {
			return fmt.Errorf("%s: idle sessions: %w", c.name, err)
		}
		f.files = append(f.files, f.idle.heapTop)
		figs = append(figs, f)
	}
	summary := profileSummary(cfg, figs)
	fmt.Fprint(os.Stderr, summary)
	return os.WriteFile(filepath.Join(cfg.profile, "summary.md"), []byte(summary), 0o644)
}

// profileOne runs the echo load through c and, inside its measured window,
// takes a CPU profile, an allocation profile, the runtime's GC and
// allocation counters, the process's CPU time and system calls, and (when
// perf is installed) perf's samples, all over the same seconds.
func (b *bench) profileOne(c *contender) (profileFigures, error) {
	f := profileFigures{name: c.name}
	addrBytes, err := os.ReadFile(b.pprofAddrFile(c.name))
	if err != nil {
		return f, fmt.Errorf("profiling address: %w (is this the profiling build?)", err)
	}
	base := "http://" + strings.TrimSpace(string(addrBytes))
	secs := b.cfg.profileSeconds
	pid := c.pid()

	// The load runs a second longer than the profile on both sides; the
	// profile starts once the sessions are open and warm.
	type loadOut struct {
		r   loadResult
		err error
	}
	loadDone := make(chan loadOut, 1)
	go func() {
		r, err := b.load("ws-echo", "-url", c.wsURL()+"/ws/echo", "-sessions", strconv.Itoa(profileSessions),
			"-warmup", "1s", "-d", (time.Duration(secs+2) * time.Second).String(), "-pid", strconv.Itoa(pid))
		loadDone <- loadOut{r, err}
	}()
	select {
	case <-time.After(1500 * time.Millisecond):
	case out := <-loadDone:
		return f, fmt.Errorf("the load ended before the profile began: %v", out.err)
	}

	rt0, err := runtimeMetrics(base)
	if err != nil {
		return f, err
	}
	io0, cpu0, t0 := procfs.IOOf(pid), procfs.CPUOf(pid), time.Now()
	prefix := filepath.Join(b.cfg.profile, c.name)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() {
		errs[0] = fetch(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), prefix+".cpu.pprof")
	})
	wg.Go(func() {
		errs[1] = fetch(fmt.Sprintf("%s/debug/pprof/allocs?seconds=%d", base, secs), prefix+".allocs.pprof")
	})
	perf, perfErr := exec.LookPath("perf")
	if perfErr == nil {
		wg.Go(func() {
			cmd := exec.CommandContext(b.ctx, perf, "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pid),
				"-o", prefix+".perf.data", "--", "sleep", strconv.Itoa(secs))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[2] = fmt.Errorf("perf record: %w: %s", err, out)
			}
		})
	}
	wg.Wait()
	io1, cpu1, t1 := procfs.IOOf(pid), procfs.CPUOf(pid), time.Now()
	rt1, err := runtimeMetrics(base)
	if err != nil {
		return f, err
	}
	out := <-loadDone
	if out.err != nil {
		return f, out.err
	}
	for _, e := range errs[:2] {
		if e != nil {
			return f, e
		}
	}
	f.files = append(f.files, prefix+".cpu.pprof", prefix+".allocs.pprof")

	f.echoRate = float64(out.r.Done) / out.r.Seconds
	f.messages = 2 * f.echoRate * t1.Sub(t0).Seconds()
	if f.messages == 0 {
		return f, fmt.Errorf("no message relayed")
	}
	cpu, sys := cpu1.Sub(cpu0), io1.Sub(io0)
	f.userUs, f.sysUs = cpu.User/f.messages*1e6, cpu.System/f.messages*1e6
	f.reads, f.writes = float64(sys.Reads)/f.messages, float64(sys.Writes)/f.messages
	d := func(k string) float64 { return rt1[k] - rt0[k] }
	f.gcPer100k = d("/gc/cycles/total:gc-cycles") / f.messages * 1e5
	f.allocBytes = d("/gc/heap/allocs:bytes") / f.messages
	f.allocObjects = d("/gc/heap/allocs:objects") / f.messages
	f.gogc = rt1["/gc/gogc:percent"]

	g := b.cfg.goTool
	for _, v := range []struct {
		file string
		args []string
	}{
		{prefix + ".cpu.top.txt", []string{"-top", "-nodecount=40", prefix + ".cpu.pprof"}},
		{prefix + ".cpu.cum.txt", []string{"-top", "-cum", "-nodecount=60", prefix + ".cpu.pprof"}},
		{prefix + ".allocs.top.txt", []string{"-sample_index=alloc_space", "-top", "-cum", "-nodecount=40", prefix + ".allocs.pprof"}},
	} {
		if err := goPprof(g, v.file, v.args...); err != nil {
			return f, err
		}
		f.files = append(f.files, v.file)
	}
	cpuTraces, err := pprofTraces(g, prefix+".cpu.pprof")
	if err != nil {
		return f, err
	}
	f.exclusive = cpuTraces.partition(cpuCategories)
	f.inclusive = cpuTraces.inclusive(cpuFrames)
	allocTraces, err := pprofTraces(g, "-sample_index=alloc_space", prefix+".allocs.pprof")
	if err != nil {
		return f, err
	}
	f.allocIncl = allocTraces.inclusive(allocFrames)

	switch {
	case perfErr != nil:
		f.perfDSO = "perf is not installed (Debian package linux-perf)"
	case errs[2] != nil:
		f.perfDSO = errs[2].Error()
	default:
		dso, err := perfReport(perf, prefix+".perf.data", prefix+".perf.txt")
		if err != nil {
			f.perfDSO = err.Error()
		} else {
			f.perfDSO = dso
			f.files = append(f.files, prefix+".perf.data", prefix+".perf.txt")
		}
	}
	logf("profiled %s: %.0f echoes/s, %.1f µs CPU per message", c.name, f.echoRate, f.userUs+f.sysUs)
	return f, nil
}

// profileIdleSessions is how many idle sessions the memory breakdown holds.
const profileIdleSessions = 1000

// idleBreakdown opens idle sessions through a fresh c and splits what each
// holds into goroutine stacks and live heap, with the heap's allocation
// sites (inuse_space, after minus before) in a file.
func (b *bench) idleBreakdown(c *contender) (idleFigures, error) {
	f := idleFigures{sessions: profileIdleSessions}
	addrBytes, err := os.ReadFile(b.pprofAddrFile(c.name))
	if err != nil {
		return f, err
	}
	base := "http://" + strings.TrimSpace(string(addrBytes))
	if _, err := b.load("ws-echo", "-url", c.wsURL()+"/ws/echo", "-sessions", "1", "-d", "200ms", "-warmup", "0s"); err != nil {
		return f, err
	}
	prefix := filepath.Join(b.cfg.profile, c.name)
	// heap?gc=1 runs a collection first, so both readings are of live
	// memory only.
	if err := fetch(base+"/debug/pprof/heap?gc=1", prefix+".idle-before.pprof"); err != nil {
		return f, err
	}
	rt0, err := runtimeMetrics(base)
	if err != nil {
		return f, err
	}
	rss0 := settledRSS(c.pid(), 2*time.Second)
	var (
		rt1        map[string]float64
		rss1       int64
		measureErr error
	)
	opened, err := b.holdIdle(c, profileIdleSessions, func() {
		rss1 = settledRSS(c.pid(), 5*time.Second)
		if measureErr = fetch(base+"/debug/pprof/heap?gc=1", prefix+".idle-after.pprof"); measureErr == nil {
			rt1, measureErr = runtimeMetrics(base)
		}
	})
	if err == nil {
		err = measureErr
	}
	if err != nil {
		return f, err
	}
	if opened == 0 || rt1 == nil {
		return f, fmt.Errorf("no idle session opened")
	}
	n := float64(opened)
	d := func(k string) float64 { return (rt1[k] - rt0[k]) / n }
	f.sessions = opened
	f.rssKiB = float64(rss1-rss0) / n
	f.stackKiB = d("/memory/classes/heap/stacks:bytes") / 1024
	f.heapKiB = d("/memory/classes/heap/objects:bytes") / 1024
	f.goroutines = d("/sched/goroutines:goroutines")
	f.startingStackKiB = rt1["/gc/stack/starting-size:bytes"] / 1024
	f.heapTop = prefix + ".idle-heap.top.txt"
	err = goPprof(b.cfg.goTool, f.heapTop, "-sample_index=inuse_space", "-top", "-cum", "-nodecount=40",
		"-base", prefix+".idle-before.pprof", prefix+".idle-after.pprof")
	logf("idle %s: %.1f KiB RSS per session (stacks %.1f, heap %.1f)", c.name, f.rssKiB, f.stackKiB, f.heapKiB)
	return f, err
}

func runtimeMetrics(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/debug/runtime")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func goPprof(goTool, outFile string, args ...string) error {
	out, err := exec.Command(goTool, append([]string{"tool", "pprof"}, args...)...).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %w", strings.Join(args, " "), err)
	}
	return os.WriteFile(outFile, out, 0o644)
}

// perfReport writes perf's top symbols (kernel and program, self time) to
// txt and returns its split by binary.
func perfReport(perf, data, txt string) (string, error) {
	dso, err := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "dso", "--percent-limit", "1").Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	sym, err := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "dso,sym", "--percent-limit", "0.7").Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	if err := os.WriteFile(txt, sym, 0o644); err != nil {
		return "", err
	}
	var parts []string
	for line := range strings.Lines(string(dso)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts = append(parts, strings.Join(strings.Fields(line), " "))
	}
	return strings.Join(parts, "; "), nil
}

// trace is one stack of a profile, leaf first, with its value (CPU
// nanoseconds or bytes).
type trace struct {
	value  float64
	frames []string
}

type traces []trace

// pprofTraces reads a profile's stacks from `go tool pprof -traces`, whose
// blocks are separated by lines of dashes; a block's first line holds its
// value, then the leaf frame.
func pprofTraces(goTool string, args ...string) (traces, error) {
	out, err := exec.Command(goTool, append([]string{"tool", "pprof", "-traces"}, args...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces %s: %w", strings.Join(args, " "), err)
	}
	return parseTraces(string(out)), nil
}

func parseTraces(text string) traces {
	var ts traces
	var cur *trace
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			cur = nil
			continue
		}
		if !strings.HasPrefix(line, " ") {
			continue // the header
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if cur == nil {
			v, ok := parseQuantity(fields[0])
			if !ok || len(fields) < 2 {
				continue
			}
			ts = append(ts, trace{value: v})
			cur = &ts[len(ts)-1]
			fields = fields[1:]
		}
		cur.frames = append(cur.frames, fields[0])
	}
	return ts
}

// parseQuantity reads pprof's "10ms", "1.50s", "512kB" or "3MB", in
// nanoseconds or bytes.
func parseQuantity(s string) (float64, bool) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	unit, ok := map[string]float64{
		"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "mins": 60e9, "hrs": 3600e9,
		"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40,
	}[s[i:]]
	return v * unit, ok
}

func (ts traces) total() float64 {
	var t float64
	for _, x := range ts {
		t += x.value
	}
	return t
}

// category names a part of the relay's work by the frames that mark it.
type category struct {
	what string
	re   *regexp.Regexp
}

func cat(what, re string) category { return category{what, regexp.MustCompile(re)} }

// cpuCategories split a CPU profile: each sample goes to the first category
// with a matching frame anywhere in its stack, so the order decides
// overlaps (an allocation inside koding's read is an allocation; a system
// call inside our meter's Read is a system call).
var cpuCategories = []category{
	cat("GC: background marking, sweeping, scavenging", `^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)$`),
	cat("GC: assists charged to allocating goroutines", `^runtime\.gcAssistAlloc`),
	cat("scheduler and network poller (goroutine switches, epoll)", `^runtime\.(schedule|findRunnable|park_m|netpoll|mcall|goschedImpl|wakep|startm|stopm|ready|injectglist|sysmon)$`),
	cat("write system calls (internal/poll FD.Write and below)", `^internal/poll\.\(\*FD\)\.(Write|Writev)$`),
	cat("read system calls (internal/poll FD.Read and below)", `^internal/poll\.\(\*FD\)\.Read$`),
	cat("heap allocation (mallocgc, growslice), not GC", `^runtime\.(mallocgc|growslice|newobject|makeslice)$`),
	cat("masking and unmasking payloads (gorilla maskBytes)", `^github\.com/gorilla/websocket\.maskBytes$`),
	cat("entraproxy's frame meter and message limit (frameMeter, cutFrames, httpHead)", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.(\(\*frameMeter\)\.|cutFrames|\(\*httpHead\)\.|\(\*clientConn\)\.readClient)`),
	cat("entraproxy's connection wrappers (clientConn, upstreamConn: locks, bookkeeping)", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*(clientConn|upstreamConn)\)\.`),
	cat("gorilla's read path (ReadMessage/NextReader: frame parsing, copies out of bufio)", `^github\.com/gorilla/websocket\.\(\*(Conn|messageReader)\)\.(ReadMessage|NextReader|Read|advanceFrame)$`),
	cat("gorilla's write path (WriteMessage: framing, copies into the write buffer)", `^github\.com/gorilla/websocket\.\(\*(Conn|messageWriter)\)\.`),
	cat("io.Copy and bufio (byte tunnels)", `^(io\.Copy|io\.copyBuffer|bufio\.)`),
	cat("handshakes (net/http, logs)", `^(net/http\.|log/slog\.)`),
}

// cpuFrames are functions whose whole subtree is worth knowing, each as a
// share of all samples (they overlap).
var cpuFrames = []category{
	cat("koding's relay loop (replicateWebsocketConn, everything below it)", `^github\.com/koding/websocketproxy\.\(\*WebsocketProxy\)\.ServeHTTP\.func`),
	cat("  ReadMessage (gorilla; io.ReadAll of each message)", `^github\.com/gorilla/websocket\.\(\*Conn\)\.ReadMessage$`),
	cat("  io.ReadAll", `^io\.ReadAll$`),
	cat("  WriteMessage (gorilla)", `^github\.com/gorilla/websocket\.\(\*Conn\)\.WriteMessage$`),
	cat("entraproxy clientConn.Read (client side, meter + limit + syscalls)", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*clientConn\)\.Read$`),
	cat("entraproxy clientConn.Write", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*clientConn\)\.Write$`),
	cat("entraproxy upstreamConn.Read (upstream side)", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*upstreamConn\)\.Read$`),
	cat("entraproxy upstreamConn.Write", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*upstreamConn\)\.Write$`),
	cat("frameMeter.feed", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*frameMeter\)\.feed$`),
	cat("cutFrames", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.cutFrames$`),
	cat("httputil ReverseProxy tunnel (go-reverseproxy)", `^net/http/httputil\.switchProtocolCopier\.`),
	cat("system calls (syscall.Syscall*, internal/runtime/syscall)", `^(syscall\.(Syscall|Syscall6|RawSyscall|RawSyscall6)|internal/runtime/syscall(/linux)?\.Syscall6)$`),
	cat("mallocgc", `^runtime\.mallocgc$`),
	cat("memmove (copies)", `^runtime\.memmove$`),
	cat("GC (gcBgMarkWorker + gcAssistAlloc + bgsweep)", `^runtime\.(gcBgMarkWorker|gcAssistAlloc|bgsweep)$`),
}

// allocFrames split the allocation profile's bytes by where they were
// allocated (inclusive).
var allocFrames = []category{
	cat("io.ReadAll (koding's ReadMessage: each message read whole)", `^io\.ReadAll$`),
	cat("gorilla NextWriter/WriteMessage (write buffers)", `^github\.com/gorilla/websocket\.\(\*Conn\)\.(NextWriter|WriteMessage|WriteControl)$`),
	cat("gorilla handshakes (Upgrade, Dial)", `^github\.com/gorilla/websocket\.(\(\*Upgrader\)\.Upgrade|\(\*Dialer\)\.DialContext)$`),
	cat("entraproxy per message (clientConn, upstreamConn)", `^github\.com/entraproxy/entraproxy/proxy/internal/wsrelay\.\(\*(clientConn|upstreamConn)\)\.(Read|Write)$`),
	cat("net/http", `^net/http\.`),
}

// partition puts each trace in the first category that matches one of its
// frames, and the rest in "other".
func (ts traces) partition(cats []category) []share {
	sums := make([]float64, len(cats)+1)
	for _, t := range ts {
		i := slices.IndexFunc(cats, func(c category) bool {
			return slices.ContainsFunc(t.frames, c.re.MatchString)
		})
		if i < 0 {
			i = len(cats)
		}
		sums[i] += t.value
	}
	total := ts.total()
	var out []share
	for i, s := range sums {
		what := "other (runtime bookkeeping, timers, the rest)"
		if i < len(cats) {
			what = cats[i].what
		}
		out = append(out, share{what, 100 * s / total})
	}
	return out
}

// inclusive is each category's share of the traces that hold a matching
// frame.
func (ts traces) inclusive(cats []category) []share {
	total := ts.total()
	var out []share
	for _, c := range cats {
		var s float64
		for _, t := range ts {
			if slices.ContainsFunc(t.frames, c.re.MatchString) {
				s += t.value
			}
		}
		out = append(out, share{c.what, 100 * s / total})
	}
	return out
}

func profileSummary(cfg config, figs []profileFigures) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("# make bench-profile: %d-session WebSocket echo (3,200-byte messages), %d s per relay\n\n", profileSessions, cfg.profileSeconds)
	p("Generated %s; relay on CPU %s, load and upstream on CPU %s. Per message = the counter's change over the profile's seconds ÷ (2 × echoes per second × seconds). Idle = (after − before) ÷ sessions on a fresh process, each reading right after a forced GC; the rest of RSS is buffers outside the Go heap accounting, page rounding and the runtime's free memory. Noisy on a shared machine: compare relays within one run.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cfg.proxyCPUs, cfg.loadCPUs)
	p("| | %s |\n|---|%s\n", strings.Join(names(figs), " | "), strings.Repeat("---|", len(figs)))
	row := func(label string, v func(profileFigures) string) {
		p("| %s |", label)
		for _, f := range figs {
			p(" %s |", v(f))
		}
		p("\n")
	}
	row("echoes/s (100 sessions)", func(f profileFigures) string { return num(f.echoRate) })
	row("CPU µs per message (user + system)", func(f profileFigures) string {
		return fmt.Sprintf("%.1f (%.1f + %.1f)", f.userUs+f.sysUs, f.userUs, f.sysUs)
	})
	row("read / write system calls per message", func(f profileFigures) string { return fmt.Sprintf("%.2f / %.2f", f.reads, f.writes) })
	row("heap bytes allocated per message", func(f profileFigures) string { return num(f.allocBytes) })
	row("heap objects allocated per message", func(f profileFigures) string { return fmt.Sprintf("%.2f", f.allocObjects) })
	row("GC cycles per 100,000 messages (GOGC)", func(f profileFigures) string { return fmt.Sprintf("%.1f (%.0f)", f.gcPer100k, f.gogc) })
	row(fmt.Sprintf("idle (%d sessions, fresh process): KiB RSS per session", profileIdleSessions), func(f profileFigures) string { return fmt.Sprintf("%.1f", f.idle.rssKiB) })
	row("&nbsp;&nbsp;of which goroutine stacks, KiB (goroutines per session; starting stack KiB)", func(f profileFigures) string {
		return fmt.Sprintf("%.1f (%.1f; %.0f)", f.idle.stackKiB, f.idle.goroutines, f.idle.startingStackKiB)
	})
	row("&nbsp;&nbsp;of which live heap objects, KiB", func(f profileFigures) string { return fmt.Sprintf("%.1f", f.idle.heapKiB) })
	cpuUs := func(f profileFigures) float64 { return f.userUs + f.sysUs }
	p("\n## Where the CPU time per message goes: µs per message (%% of the CPU profile's samples)\n\n")
	p("Each sample counts once, in the first category (in this order) with a matching frame anywhere in its stack; µs = share × CPU µs per message above.\n\n")
	shares(&w, figs, func(f profileFigures) []share { return f.exclusive }, cpuUs, "µs")
	p("\n## CPU under a function: µs per message (%% of samples whose stack holds it; these overlap)\n\n")
	shares(&w, figs, func(f profileFigures) []share { return f.inclusive }, cpuUs, "µs")
	p("\n## Allocations by allocating stack: bytes per message (%% of the bytes allocated during the profile; these overlap)\n\n")
	shares(&w, figs, func(f profileFigures) []share { return f.allocIncl }, func(f profileFigures) float64 { return f.allocBytes }, "B")
	p("\n## perf (cpu-clock samples, self time by binary)\n\n")
	for _, f := range figs {
		p("- %s: %s\n", f.name, f.perfDSO)
	}
	p("\n## Files\n\n")
	for _, f := range figs {
		for _, file := range f.files {
			p("- `%s`\n", file)
		}
	}
	p("\nRead a profile with `go tool pprof -http 127.0.0.1:0 FILE`, or `go tool pprof -list 'websocket.*ReadMessage' FILE`; perf's with `perf report -i FILE`.\n")
	return w.String()
}

func names(figs []profileFigures) []string {
	out := make([]string, len(figs))
	for i, f := range figs {
		out[i] = f.name
	}
	return out
}

// shares writes one row per category: scale × share, then the share.
func shares(w *strings.Builder, figs []profileFigures, get func(profileFigures) []share, scale func(profileFigures) float64, unit string) {
	fmt.Fprintf(w, "| | %s |\n|---|%s\n", strings.Join(names(figs), " | "), strings.Repeat("---|", len(figs)))
	if len(figs) == 0 {
		return
	}
	for i, s := range get(figs[0]) {
		fmt.Fprintf(w, "| %s |", s.what)
		for _, f := range figs {
			pct := get(f)[i].pct
			fmt.Fprintf(w, " %s %s (%.1f%%) |", num(pct/100*scale(f)), unit, pct)
		}
		fmt.Fprintln(w)
	}
}
