//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/entraproxy/entraproxy/bench/internal/procfs"
)

// procs is every process the run started, so that each is stopped at the
// end, on failure, and on a signal. Each runs in its own process group
// (nginx's workers with their master); the groups are also written to a
// file for bench/run.sh's trap, in case this process itself is killed.
type procs struct {
	mu      sync.Mutex
	groups  map[int]*exec.Cmd
	pidFile string
}

func newProcs(pidFile string) *procs {
	return &procs{groups: map[int]*exec.Cmd{}, pidFile: pidFile}
}

// start runs name pinned to cpus with taskset, in a new process group that
// the kernel kills if this process dies.
func (p *procs) start(cpus string, env []string, stdout, stderr io.Writer, name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.mu.Lock()
	p.groups[cmd.Process.Pid] = cmd
	p.writeLocked()
	p.mu.Unlock()
	return cmd, nil
}

func (p *procs) writeLocked() {
	var b strings.Builder
	for pid := range p.groups {
		fmt.Fprintln(&b, pid)
	}
	os.WriteFile(p.pidFile, []byte(b.String()), 0o644)
}

// stop ends cmd's process group: SIGTERM, then SIGKILL after 3 s.
func (p *procs) stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-pid, syscall.SIGKILL) // workers that outlived their master
	p.mu.Lock()
	delete(p.groups, pid)
	p.writeLocked()
	p.mu.Unlock()
}

func (p *procs) stopAll() {
	p.mu.Lock()
	cmds := make([]*exec.Cmd, 0, len(p.groups))
	for _, c := range p.groups {
		cmds = append(cmds, c)
	}
	p.mu.Unlock()
	for _, c := range cmds {
		p.stop(c)
	}
}

// freePort returns a 127.0.0.1 port nobody listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url every millisecond until it answers 200, and returns
// how long that took from since.
func waitHTTP(ctx context.Context, url string, since time.Time, limit time.Duration) (time.Duration, error) {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(since), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready after %s (last: %v)", url, limit, err)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
}

// settledRSS waits until pid's RSS stops growing (two readings 250 ms apart
// within 1%), at most limit, and returns it.
func settledRSS(pid int, limit time.Duration) int64 {
	deadline := time.Now().Add(limit)
	last := procfs.RSSKiB(pid)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		now := procfs.RSSKiB(pid)
		if now <= last+last/100 {
			return now
		}
		last = now
	}
	return last
}

func writeFile(dir, name, text string) (string, error) {
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(text), 0o644)
}
