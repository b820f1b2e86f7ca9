//go:build linux

// Command benchrun runs the benchmarks of `make bench` on 127.0.0.1 and
// writes the results into BENCHMARKS.md, between the results markers (the
// hand-written sections around them are kept).
//
// It starts the upstream (benchupstream, which also serves the fake managed
// identity endpoint), then every contender pinned to the proxy cores, and
// runs loadgen pinned to the load cores, several rounds, and reports the
// median of the rounds. bench/run.sh builds the binaries and calls it.
//
// Linux only: it pins processes to cores with taskset, ends them by process
// group and asks the kernel to kill them with their parent (Pdeathsig).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin, tmp, out       string
	proxyCPUs, loadCPUs string
	command             string
	baseline            string // another entraproxy binary to compare with, for development
	quick               bool
	only                map[string]bool // sections and contenders; empty means all
	rounds              int
	httpDur, warmup     time.Duration
	concurrency         []int
	sessions            []int
	idle                []int
	pushSessions        int
	sseN                int
	// The Speech-shaped load: sessions, audio frames per turn, and its own
	// (longer) window, so that p99 rests on tens of thousands of frames.
	ttsSessions, ttsFrames int
	ttsDur, ttsWarmup      time.Duration
	// profile, when set, makes the run `make bench-profile`: profiles of
	// the Go relays under the 100-session echo load, written to this
	// directory, for profileSeconds each; BENCHMARKS.md is not touched.
	profile        string
	profileSeconds int
	goTool         string // the go command, for go tool pprof
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "", "directory with entraproxy, benchupstream, loadgen and wstunnel")
	flag.StringVar(&cfg.tmp, "tmp", "", "scratch directory (configs, logs)")
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "report to update")
	flag.StringVar(&cfg.proxyCPUs, "proxy-cpus", "1", "taskset list for the proxy under test")
	flag.StringVar(&cfg.loadCPUs, "load-cpus", "0", "taskset list for the load generator and the upstream")
	flag.StringVar(&cfg.command, "command", "make bench", "the command to quote in the report")
	flag.BoolVar(&cfg.quick, "quick", false, "one short round: a smoke run")
	flag.StringVar(&cfg.baseline, "baseline", "", "another entraproxy binary, measured as contender "+nameBaseline+" (A/B during development)")
	rounds := flag.Int("rounds", 0, "rounds (default 3, quick 1)")
	only := flag.String("only", "", "comma-separated sections (http,sse,ws,tts,idle) and contenders to run, for development; the report then holds only those")
	conc := flag.String("c", "", "comma-separated HTTP concurrencies (default 1,16,64,256)")
	flag.StringVar(&cfg.profile, "profile", "", "profile the Go relays under the 100-session echo load into this directory instead of benchmarking (make bench-profile)")
	profileSeconds := flag.Int("profile-seconds", 0, "length of each profile in seconds (default 10, quick 3)")
	flag.StringVar(&cfg.goTool, "go", "go", "the go command, for go tool pprof")
	flag.Parse()
	if cfg.bin == "" || cfg.tmp == "" {
		fmt.Fprintln(os.Stderr, "benchrun: -bin and -tmp are required")
		os.Exit(2)
	}
	cfg.rounds, cfg.httpDur, cfg.warmup, cfg.sseN = 3, 1500*time.Millisecond, 300*time.Millisecond, 300
	cfg.concurrency = []int{1, 16, 64, 256}
	cfg.sessions = []int{1, 100, 1000}
	cfg.pushSessions = 100
	cfg.idle = []int{1000, 10000}
	cfg.ttsSessions, cfg.ttsFrames, cfg.ttsDur, cfg.ttsWarmup = 1000, 30, 4*time.Second, time.Second
	cfg.profileSeconds = 10
	if cfg.quick {
		cfg.rounds, cfg.httpDur, cfg.warmup, cfg.sseN = 1, 400*time.Millisecond, 100*time.Millisecond, 100
		cfg.idle = []int{1000}
		cfg.ttsDur, cfg.ttsWarmup = 1500*time.Millisecond, 500*time.Millisecond
		cfg.profileSeconds = 3
	}
	if *rounds > 0 {
		cfg.rounds = *rounds
	}
	if *profileSeconds > 0 {
		cfg.profileSeconds = *profileSeconds
	}
	if *conc != "" {
		cfg.concurrency = nil
		for _, f := range strings.Split(*conc, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				fmt.Fprintf(os.Stderr, "benchrun: -c %q: %v\n", *conc, err)
				os.Exit(2)
			}
			cfg.concurrency = append(cfg.concurrency, n)
		}
	}
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, f := range strings.Split(*only, ",") {
			cfg.only[f] = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	p := newProcs(filepath.Join(cfg.tmp, "pgids"))
	var err error
	if cfg.profile != "" {
		err = runProfile(ctx, cfg, p)
	} else {
		err = run(ctx, cfg, p)
	}
	p.stopAll()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

// results holds every sample: figure -> contender -> one value per round.
type results map[string]map[string][]float64

func (r results) add(figure, contender string, v float64) {
	if r[figure] == nil {
		r[figure] = map[string][]float64{}
	}
	r[figure][contender] = append(r[figure][contender], v)
}

type bench struct {
	cfg      config
	p        *procs
	ctx      context.Context
	upstream string // http://127.0.0.1:port
	identity struct{ endpoint, header string }
	res      results
	notes    []string // what could not be measured, and why
	maxIdle  int
	// fdHardLimit is the open-file hard limit, which decides maxIdle.
	fdHardLimit uint64
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, cfg config, p *procs) error {
	b := &bench{cfg: cfg, p: p, ctx: ctx, res: results{}}
	start := time.Now()
	if err := b.startUpstream(); err != nil {
		return err
	}
	b.maxIdle, b.fdHardLimit = maxIdleSessions()
	contenders := b.contenders()
	for _, c := range contenders {
		if c.unavailable != "" {
			b.notes = append(b.notes, c.unavailable)
		}
	}

	for round := range cfg.rounds {
		logf("round %d of %d (%s elapsed)", round+1, cfg.rounds, time.Since(start).Round(time.Second))
		// A different order each round, so that no contender always runs
		// right after the same neighbour.
		order := rotate(slices.DeleteFunc(slices.Clone(contenders), func(c *contender) bool { return !cfg.runs(c.name) }), round)
		for _, c := range order {
			if err := b.startFresh(c); err != nil {
				return err
			}
		}
		if cfg.runs("http") {
			if err := b.httpRound(order); err != nil {
				return err
			}
		}
		if cfg.runs("sse") {
			if err := b.sseRound(order); err != nil {
				return err
			}
		}
		if cfg.runs("ws") {
			if err := b.wsRound(order); err != nil {
				return err
			}
		}
		if cfg.runs("tts") {
			if err := b.ttsRound(order); err != nil {
				return err
			}
		}
		if cfg.runs("idle") {
			if err := b.memoryRound(order); err != nil {
				return err
			}
		}
		for _, c := range order {
			b.p.stop(c.cmd)
			c.cmd = nil
		}
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	env := collectEnv(cfg)
	env.duration = time.Since(start).Round(time.Second).String()
	return writeReport(cfg, env, contenders, b)
}

// runs reports whether a section or contender is selected by -only. A
// list of contenders alone runs every section, a list of sections alone
// every contender; direct always runs.
func (c config) runs(name string) bool {
	if len(c.only) == 0 || c.only[name] {
		return true
	}
	isSection := func(n string) bool { return n == "http" || n == "sse" || n == "ws" || n == "tts" || n == "idle" }
	sections, contenders := false, false
	for k := range c.only {
		if isSection(k) {
			sections = true
		} else {
			contenders = true
		}
	}
	if isSection(name) {
		return !sections
	}
	return !contenders || name == nameDirect
}

func rotate(cs []*contender, n int) []*contender {
	n %= len(cs)
	return append(append([]*contender{}, cs[n:]...), cs[:n]...)
}

// fdReserve is the descriptors a proxy holds besides its sessions
// (listeners, logs, epoll, the token endpoint), with room to spare.
const fdReserve = 100

// maxIdleSessions is how many idle WebSocket sessions fit the open-file limit
// of a proxy, which holds two descriptors per session. The hard limit
// counts: Go programs raise their soft limit to it (os package, Go 1.19+),
// nginx is given worker_rlimit_nofile, and bench/run.sh raised the soft
// limit it passes on. The load generator and the upstream hold one per
// session each, in processes of their own.
func maxIdleSessions() (sessions int, hardLimit uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000, 0
	}
	hard := min(lim.Max, 1<<30) // RLIM_INFINITY reads as the largest uint64
	return int(min(10000, (int64(hard)-fdReserve)/2)), lim.Max
}

func (b *bench) startUpstream() error {
	out, err := os.Create(filepath.Join(b.cfg.tmp, "benchupstream.out"))
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd, err := b.p.start(b.cfg.loadCPUs, nil, pw, out, filepath.Join(b.cfg.bin, "benchupstream"))
	if err != nil {
		return err
	}
	_ = cmd
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		return fmt.Errorf("benchupstream: %w", err)
	}
	go io.Copy(out, pr)
	var r struct {
		URL              string `json:"url"`
		IdentityEndpoint string `json:"identity_endpoint"`
		IdentityHeader   string `json:"identity_header"`
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return fmt.Errorf("benchupstream line %q: %w", line, err)
	}
	b.upstream, b.identity.endpoint, b.identity.header = r.URL, r.IdentityEndpoint, r.IdentityHeader
	return nil
}

// credentialCalls is how many tokens the fake identity endpoint issued.
func (b *bench) credentialCalls() (int, error) {
	resp, err := http.Get(b.upstream + "/_bench/credential-calls")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strconv.Atoi(strings.TrimSpace(string(body)))
}

// loadResult is what loadgen prints.
type loadResult struct {
	Ops, Total, Errors   int64
	Seconds, PerSecond   float64
	P50us, P99us, P999us float64
	Sessions             int
	Done                 int64
	CPUUser, CPUSystem   float64
}

func (b *bench) load(args ...string) (loadResult, error) {
	cmd := exec.CommandContext(b.ctx, "taskset", append([]string{"-c", b.cfg.loadCPUs, filepath.Join(b.cfg.bin, "loadgen")}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("loadgen %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("loadgen %s: %q: %w", strings.Join(args, " "), out, err)
	}
	if r.Errors > 0 {
		logf("loadgen %s: %d errors: %s", strings.Join(args, " "), r.Errors, strings.TrimSpace(stderr.String()))
	}
	return r, nil
}

func (b *bench) httpRound(order []*contender) error {
	for _, conc := range b.cfg.concurrency {
		for _, c := range order {
			if !c.http || !c.running() {
				continue
			}
			var calls0 int
			if c.name == nameEntraproxy {
				calls0, _ = b.credentialCalls()
			}
			cpu0 := c.cpu()
			r, err := b.load("http", "-url", c.url+"/echo", "-c", strconv.Itoa(conc), "-d", b.cfg.httpDur.String(), "-warmup", b.cfg.warmup.String())
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			cpu1 := c.cpu()
			suffix := "c" + strconv.Itoa(conc)
			b.res.add("http_rps_"+suffix, c.name, r.PerSecond)
			b.res.add("http_p50_"+suffix, c.name, r.P50us)
			b.res.add("http_p99_"+suffix, c.name, r.P99us)
			if r.Errors > 0 {
				b.res.add("http_errors_"+suffix, c.name, float64(r.Errors))
			}
			if conc == 64 && c.cmd != nil && r.Total > 0 {
				b.res.add("cpu_per_10k", c.name, (cpu1-cpu0)/float64(r.Total)*10000)
			}
			if c.name == nameEntraproxy && r.Total > 0 {
				calls1, err := b.credentialCalls()
				if err == nil {
					b.res.add("cred_per_10k_"+suffix, c.name, float64(calls1-calls0)/float64(r.Total)*10000)
				}
			}
			logf("http c=%-3d %-16s %8.0f req/s  p50 %7.0f us  p99 %7.0f us", conc, c.name, r.PerSecond, r.P50us, r.P99us)
		}
	}
	return nil
}

func (b *bench) sseRound(order []*contender) error {
	for _, c := range order {
		if !c.http || !c.running() {
			continue
		}
		r, err := b.load("sse", "-url", c.url+"/sse", "-n", strconv.Itoa(b.cfg.sseN))
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		b.res.add("sse_ttfb_p50", c.name, r.P50us)
		b.res.add("sse_ttfb_p99", c.name, r.P99us)
		logf("sse %-16s first event p50 %6.0f us  p99 %6.0f us", c.name, r.P50us, r.P99us)
	}
	return nil
}

func (b *bench) wsRound(order []*contender) error {
	for _, n := range b.cfg.sessions {
		for _, c := range order {
			if !c.ws || !c.running() {
				continue
			}
			r, err := b.load("ws-echo", "-url", c.wsURL()+"/ws/echo", "-sessions", strconv.Itoa(n), "-d", b.cfg.httpDur.String(), "-warmup", b.cfg.warmup.String(), "-pid", strconv.Itoa(c.pid()))
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			suffix := "s" + strconv.Itoa(n)
			if n > 1 && c.cmd != nil && r.Done > 0 {
				// CPU inside the measured window (no handshakes, no
				// warm-up) over the echoes that ended in it; each echo is
				// two messages through the proxy.
				b.res.add("ws_cpu_per_100k_"+suffix, c.name, (r.CPUUser+r.CPUSystem)/float64(2*r.Done)*100000)
			}
			b.res.add("ws_rate_"+suffix, c.name, r.PerSecond)
			b.res.add("ws_p50_"+suffix, c.name, r.P50us)
			b.res.add("ws_p99_"+suffix, c.name, r.P99us)
			logf("ws echo n=%-4d %-16s %8.0f msg/s  p50 %7.0f us  p99 %7.0f us", n, c.name, r.PerSecond, r.P50us, r.P99us)
		}
	}
	for _, c := range order {
		if !c.ws || !c.running() {
			continue
		}
		n := b.cfg.pushSessions
		r, err := b.load("ws-push", "-url", c.wsURL()+"/ws/audio", "-sessions", strconv.Itoa(n), "-d", b.cfg.httpDur.String(), "-warmup", b.cfg.warmup.String())
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		b.res.add("ws_push_rate", c.name, r.PerSecond)
		logf("ws push n=%d %-16s %8.0f frames/s", n, c.name, r.PerSecond)
	}
	return nil
}

// ttsRound runs the Speech-shaped load (loadgen ws-tts) through every
// WebSocket contender: the audio frames' delay, and the proxy's CPU inside
// the window as a share of its cores.
func (b *bench) ttsRound(order []*contender) error {
	for _, c := range order {
		if !c.ws || !c.running() {
			continue
		}
		r, err := b.load("ws-tts", "-url", c.wsURL()+"/ws/tts", "-sessions", strconv.Itoa(b.cfg.ttsSessions), "-frames", strconv.Itoa(b.cfg.ttsFrames),
			"-d", b.cfg.ttsDur.String(), "-warmup", b.cfg.ttsWarmup.String(), "-pid", strconv.Itoa(c.pid()))
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		b.res.add("tts_rate", c.name, r.PerSecond)
		b.res.add("tts_p50", c.name, r.P50us)
		b.res.add("tts_p99", c.name, r.P99us)
		b.res.add("tts_p999", c.name, r.P999us)
		if r.Errors > 0 {
			b.res.add("tts_errors", c.name, float64(r.Errors))
		}
		cpuPct := ""
		if c.cmd != nil && r.Seconds > 0 {
			core := (r.CPUUser + r.CPUSystem) / r.Seconds / float64(b.proxyCores()) * 100
			b.res.add("tts_cpu_core", c.name, core)
			cpuPct = fmt.Sprintf("  CPU %5.1f%% of a core", core)
		}
		logf("tts n=%d %-16s %7.0f frames/s  delay p50 %6.0f us  p99 %7.0f us%s", b.cfg.ttsSessions, c.name, r.PerSecond, r.P50us, r.P99us, cpuPct)
	}
	return nil
}

// proxyCores is how many cores the proxy under test may use.
func (b *bench) proxyCores() int { return cpuCount(b.cfg.proxyCPUs) }

// cpuCount counts the CPUs of a taskset list such as "1", "0,2" or "2-3".
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z, err2 := strconv.Atoi(hi)
		switch {
		case isRange && err1 == nil && err2 == nil && z >= a:
			n += z - a + 1
		default:
			n++
		}
	}
	return max(n, 1)
}

// memoryRound measures, on a fresh process each time, the resident memory
// that idle sessions add: VmRSS with the sessions open minus VmRSS before,
// after one warm-up session.
func (b *bench) memoryRound(order []*contender) error {
	for _, n := range b.cfg.idle {
		if n > b.maxIdle {
			note := fmt.Sprintf("%s idle sessions need about %s descriptors in the proxy (two per session, and %d for the rest); the open-file hard limit here is %s, which only a process with CAP_SYS_RESOURCE can raise, so that row measures %s sessions. The load generator and the upstream hold one descriptor per session each, in processes of their own.",
				num(float64(n)), num(float64(2*n+fdReserve)), fdReserve, num(float64(b.fdHardLimit)), num(float64(b.maxIdle)))
			if !contains(b.notes, note) {
				b.notes = append(b.notes, note)
			}
			n = b.maxIdle
		}
		for _, c := range order {
			if !c.ws || c.name == nameDirect || !c.available() {
				continue
			}
			b.p.stop(c.cmd)
			c.cmd = nil
			if err := b.startFresh(c); err != nil {
				return err
			}
			if _, err := b.load("ws-echo", "-url", c.wsURL()+"/ws/echo", "-sessions", "1", "-d", "200ms", "-warmup", "0s"); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			base := settledRSS(c.pid(), 2*time.Second)
			opened, err := b.holdIdle(c, n, func() {
				b.res.add(fmt.Sprintf("rss_per_session_%d", n), c.name, float64(settledRSS(c.pid(), 5*time.Second)-base))
			})
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			vals := b.res[fmt.Sprintf("rss_per_session_%d", n)][c.name]
			if opened > 0 && len(vals) > 0 {
				vals[len(vals)-1] /= float64(opened)
				logf("idle n=%-5d %-16s %6.1f KiB per session (%d opened)", n, c.name, vals[len(vals)-1], opened)
			}
			b.res.add(fmt.Sprintf("idle_opened_%d", n), c.name, float64(opened))
		}
	}
	return nil
}

// holdIdle opens n idle sessions through c with loadgen ws-idle, calls
// measure while they are open, and closes them.
func (b *bench) holdIdle(c *contender, n int, measure func()) (int, error) {
	cmd := exec.CommandContext(b.ctx, "taskset", "-c", b.cfg.loadCPUs, filepath.Join(b.cfg.bin, "loadgen"), "ws-idle", "-url", c.wsURL()+"/ws/idle", "-sessions", strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var r struct{ Opened, Failed int }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		err = json.Unmarshal([]byte(line), &r)
	}
	if err == nil && r.Opened > 0 {
		measure()
	}
	stdin.Close() // loadgen closes the sessions and exits
	io.Copy(io.Discard, stdout)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return r.Opened, fmt.Errorf("loadgen ws-idle: %w: %s", err, stderr.String())
	}
	return r.Opened, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
