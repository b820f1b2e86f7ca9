package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// TestMain lets the test binary play entraproxy itself, so process-level
// tests (signals, exit codes) run the real main without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("ENTRAPROXYTEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// The variables the tests set for themselves (ENTRAPROXYTEST_MAIN here,
// ENTRAPROXYTEST_SOAK for make soak) stay outside the settings' namespace:
// the processes they reach must not warn about them as mistyped settings.
func TestTestVariablesAreNoTypos(t *testing.T) {
	if typos := config.FindTypos([]string{"ENTRAPROXYTEST_MAIN=1", "ENTRAPROXYTEST_SOAK=2m"}); len(typos) > 0 {
		t.Errorf("FindTypos = %v, want none", typos)
	}
}

// proc is an entraproxy process started by a test.
type proc struct {
	cmd          *exec.Cmd
	listen, adm  string
	exited       chan struct{}
	exitCode     int
	logs         *lockedLog
	logsFinished chan struct{}
}

// lockedLog is a process's stderr, read by the test while it grows.
type lockedLog struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{} // gets a value after lines are added
}

func newLockedLog() *lockedLog { return &lockedLog{changed: make(chan struct{}, 1)} }

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line + "\n")
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProcess runs entraproxy with env (ENTRAPROXY_* and the managed
// identity of fake) and waits for its ready line.
func startProcess(t *testing.T, fake *fakeazure.Azure, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"ENTRAPROXYTEST_MAIN=1",
		"ENTRAPROXY_LISTEN=127.0.0.1:0",
		"ENTRAPROXY_ADMIN_LISTEN=127.0.0.1:0",
		"ENTRAPROXY_CREDENTIAL=managed-identity",
		"ENTRAPROXY_LOG_FORMAT=json",
		"IDENTITY_ENDPOINT="+fake.IdentityEndpoint(),
		"IDENTITY_HEADER="+fake.IdentityHeader(),
	)
	cmd.Env = append(cmd.Env, env...)
	ownProcessGroup(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), logs: newLockedLog(), logsFinished: make(chan struct{})}
	ready := make(chan struct{ Listen, Admin string }, 1)
	go func() {
		defer close(p.logsFinished)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logs.add(sc.Text())
			var line struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "ready" {
				ready <- struct{ Listen, Admin string }{line.Listen, line.Admin}
			}
		}
	}()
	go func() {
		<-p.logsFinished
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.exitCode = ee.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case r := <-ready:
		p.listen, p.adm = r.Listen, r.Admin
	case <-p.exited:
		t.Fatalf("entraproxy exited before ready (code %d):\n%s", p.exitCode, p.logs.String())
	case <-time.After(leakcheck.HangGuard):
		t.Fatalf("no ready line after %v:\n%s", leakcheck.HangGuard, p.logs.String())
	}
	return p
}

// waitLog waits for a stderr line that contains one of texts: the process
// says what it did when it did it. leakcheck.HangGuard only ends a wait for a line
// that never comes.
func (p *proc) waitLog(t *testing.T, texts ...string) {
	t.Helper()
	logged := func() bool {
		logs := p.logs.String()
		for _, text := range texts {
			if strings.Contains(logs, text) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(leakcheck.HangGuard)
	for !logged() {
		select {
		case <-p.exited:
			if logged() { // its last lines came with the exit
				return
			}
			t.Fatalf("entraproxy exited (code %d) before logging %q:\n%s", p.exitCode, texts, p.logs.String())
		case <-p.logs.changed:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("no %q after %v:\n%s", texts, leakcheck.HangGuard, p.logs.String())
		}
	}
}

// waitExit waits for the process to end and returns its exit code.
func (p *proc) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.exitCode
	case <-time.After(leakcheck.HangGuard):
		t.Fatalf("entraproxy still running %v after the signal:\n%s", leakcheck.HangGuard, p.logs.String())
		return -1
	}
}

func readyzStatus(t *testing.T, client *http.Client, admin string) int {
	t.Helper()
	resp, err := client.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestShutdownSequence: on SIGTERM /readyz turns 503 while the proxy keeps
// serving for the drain delay; an in-flight slow request completes; a live
// WebSocket session is closed with 1001; the process exits 0 in time.
func TestShutdownSequence(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{TokenLifetime: 4 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()

	slowStarted, release := make(chan struct{}), make(chan struct{})
	upgrader := websocket.Upgrader{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			close(slowStarted)
			<-release
			io.WriteString(w, "finished")
		case "/ws":
			c, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}
	}))
	defer upstream.Close()
	defer close(release)

	// The shutdown timeout only guards against a hang: the slow request is
	// released by the test, whenever the machine gets to it.
	p := startProcess(t, fake, "ENTRAPROXY_UPSTREAM="+upstream.URL, "ENTRAPROXY_DRAIN_DELAY=300ms", "ENTRAPROXY_SHUTDOWN_TIMEOUT="+leakcheck.HangGuard.String())
	client := testClient(t)

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.listen+"/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through the proxy: %v", err)
	}
	defer ws.Close()

	slow := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://" + p.listen + "/slow")
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-slowStarted

	// The process logs "shutting down" once readiness is off; the admin
	// listener stays up while the slow request holds the shutdown, so
	// /readyz can be asked once.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `"msg":"shutting down"`)
	if got := readyzStatus(t, client, p.adm); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz after SIGTERM = %d, want 503", got)
	}
	release <- struct{}{}
	if got := <-slow; got != "finished" {
		t.Errorf("in-flight request body = %q, want %q", got, "finished")
	}

	ws.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("WebSocket client got %v, want close 1001", err)
	}
	if code := p.waitExit(t); code != 0 {
		t.Errorf("exit code = %d, want 0; logs:\n%s", code, p.logs.String())
	}
}

// TestShutdownTimeoutExitOne: a request still in flight when
// ENTRAPROXY_SHUTDOWN_TIMEOUT ends is cut, and that is not a clean shutdown:
// the process says what it cut and exits 1.
func TestShutdownTimeoutExitOne(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{TokenLifetime: 4 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	stuckStarted, release := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(stuckStarted)
		select { // stuck until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer upstream.Close()
	defer close(release)

	p := startProcess(t, fake, "ENTRAPROXY_UPSTREAM="+upstream.URL, "ENTRAPROXY_SHUTDOWN_TIMEOUT=300ms")
	client := testClient(t)
	stuck := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + p.listen + "/stuck")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		stuck <- err
	}()
	<-stuckStarted

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.waitExit(t); code != exitRuntime {
		t.Errorf("exit code = %d, want %d; logs:\n%s", code, exitRuntime, p.logs.String())
	}
	if want := "cut in-flight requests"; !strings.Contains(p.logs.String(), "entraproxy: shutdown timeout (ENTRAPROXY_SHUTDOWN_TIMEOUT 300ms): "+want) {
		t.Errorf("stderr does not end with what was cut (%q):\n%s", want, p.logs.String())
	}
	if err := <-stuck; err == nil {
		t.Error("the stuck request's body ended cleanly, want it cut")
	}
}

// TestSecondSignalExitsAtOnce: a signal that comes after the first one's
// window, while the drain still runs, exits without waiting for it. The
// drain is far longer than waitExit's hang guard, so a process that waited
// for it fails the test, however fast or slow the machine.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{TokenLifetime: 4 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	p := startProcess(t, fake, "ENTRAPROXY_UPSTREAM="+fake.URL(), "ENTRAPROXY_DRAIN_DELAY=1h")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, secondSignalHint)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t); code != exitRuntime {
		t.Errorf("exit code = %d, want %d", code, exitRuntime)
	}
}

// TestWait: `entraproxy wait` returns once a running instance is ready, and
// fails with a reason against one that never gets ready.
func TestWait(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{TokenLifetime: 4 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	p := startProcess(t, fake, "ENTRAPROXY_UPSTREAM="+fake.URL())
	if err := run(context.Background(), []string{"wait", "--timeout", leakcheck.HangGuard.String()}, environ("ENTRAPROXY_ADMIN_LISTEN", p.adm), nil, io.Discard, io.Discard); err != nil {
		t.Errorf("wait against a ready instance: %v", err)
	}

	// Against an instance that never gets ready, the wait ends when its
	// context does (here once the second probe arrives, so the first
	// probe's answer was read: a deadline could come first on a busy
	// machine) and names what the last probe saw.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var probes atomic.Int64
	neverReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if probes.Add(1) == 2 {
			cancel()
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"not_ready","reason":"starting: no token yet"}`)
	}))
	defer neverReady.Close()
	neverReadyAdmin := environ("ENTRAPROXY_ADMIN_LISTEN", strings.TrimPrefix(neverReady.URL, "http://"))
	err = run(ctx, []string{"wait", "--timeout", leakcheck.HangGuard.String()}, neverReadyAdmin, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no token yet") {
		t.Errorf("wait against a never-ready instance = %v, want an error naming the reason", err)
	}
	if code := exitCode(err, io.Discard); code != exitRuntime {
		t.Errorf("exit code = %d, want %d", code, exitRuntime)
	}

	// --timeout bounds the wait: with 0s it is over before the first probe.
	probes.Store(0)
	err = run(context.Background(), []string{"wait", "--timeout", "0s"}, neverReadyAdmin, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no answer yet") {
		t.Errorf("wait --timeout 0s = %v, want not ready, no answer yet", err)
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("wait --timeout 0s probed %d times, want 0", n)
	}
}
