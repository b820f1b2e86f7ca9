package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// environ is an environment for run of the name, value pairs kv, as
// os.Environ would list it; a later pair for a name wins.
func environ(kv ...string) []string {
	var env []string
	for i := 0; i+1 < len(kv); i += 2 {
		env = append(env, kv[i]+"="+kv[i+1])
	}
	return env
}

// testClient is an HTTP client of the test's own (never http.DefaultClient
// or its transport), with a hang guard on each request; its idle connections
// close when the test ends.
func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: leakcheck.HangGuard}
}

func TestHelpListsEverySetting(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, environ(), nil, &out, io.Discard); err != nil {
			t.Fatalf("run %s: %v", arg, err)
		}
		// Every flag of every command, under the command it belongs to.
		text := out.String()
		doctorAt, waitAt, versionAt := strings.Index(text, "entraproxy doctor"), strings.Index(text, "entraproxy wait"), strings.Index(text, "entraproxy version")
		for _, f := range []struct {
			flag     string
			from, to int
		}{{"--json", doctorAt, waitAt}, {"--service", doctorAt, waitAt}, {"--timeout", doctorAt, waitAt}, {"--timeout", waitAt, versionAt}} {
			if f.from < 0 || f.to < f.from || !strings.Contains(text[f.from:f.to], f.flag) {
				t.Errorf("%s output lacks %s under its command:\n%s", arg, f.flag, text)
			}
		}
		for _, s := range config.Settings() {
			if !strings.Contains(out.String(), s.Var) || !strings.Contains(out.String(), s.Help) {
				t.Errorf("%s output lacks %s or its help", arg, s.Var)
			}
			if s.Default != "" && !strings.Contains(out.String(), "default: "+s.Default) {
				t.Errorf("%s output lacks the default of %s (%q)", arg, s.Var, s.Default)
			}
		}
	}
}

func TestBadSettingsExitTwo(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), nil, environ(
		"ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com",
		"ENTRAPROXY_LOG_LEVEL", "loud",
	), nil, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	for _, want := range []string{`ENTRAPROXY_UPSTREAM "https://eastus.api.cognitive.microsoft.com": a regional endpoint`, `ENTRAPROXY_LOG_LEVEL "loud"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
		}
	}
}

func TestUnknownCommandExitTwo(t *testing.T) {
	err := run(context.Background(), []string{"frobnicate"}, environ(), nil, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
}

// Anything after a command that takes no arguments is a usage error, not
// ignored: `entraproxy serve --debug` must not serve as if it were understood.
func TestExtraArgumentsExitTwo(t *testing.T) {
	// An upstream is set, so a serve that ignored its arguments would start.
	env := environ("ENTRAPROXY_UPSTREAM", "http://127.0.0.1:1", "ENTRAPROXY_LISTEN", "127.0.0.1:0", "ENTRAPROXY_ADMIN_LISTEN", "off")
	for _, args := range [][]string{{"serve", "foo"}, {"serve", "--debug"}, {"version", "foo"}, {"--version", "foo"}, {"wait", "foo"}, {"doctor", "foo"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, args, env, nil, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Errorf("exit code = %d, want %d; stderr %q", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), "unexpected arguments") {
				t.Errorf("stderr = %q, want it to say unexpected arguments", stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

// -h of a command shows its usage and is not an error.
func TestCommandHelpExitZero(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"wait", "-h"}, []string{"-timeout"}},
		{[]string{"wait", "--help"}, []string{"-timeout"}},
		{[]string{"doctor", "-h"}, []string{"-json", "-service", "-timeout"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, environ(), nil, io.Discard, &stderr)
			if code := exitCode(err, io.Discard); code != exitOK {
				t.Errorf("exit code = %d, want %d (err %v)", code, exitOK, err)
			}
			want := "usage: entraproxy " + tc.args[0]
			if !strings.HasPrefix(stderr.String(), want) {
				t.Errorf("usage = %q, want it to start with %q", stderr.String(), want)
			}
			for _, f := range tc.flags {
				if !strings.Contains(stderr.String(), f) {
					t.Errorf("usage = %q, want it to describe %s", stderr.String(), f)
				}
			}
		})
	}
}

// exitCode prints the error once, whatever its kind.
func TestExitCodePrintsTheErrorOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"usage", usageError{errors.New("boom")}, exitUsage},
		{"runtime", errors.New("boom"), exitRuntime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := exitCode(tc.err, &stderr); got != tc.want {
				t.Errorf("exitCode = %d, want %d", got, tc.want)
			}
			if got, want := stderr.String(), "entraproxy: boom\n"; got != want {
				t.Errorf("stderr = %q, want %q", got, want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, environ(), nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	ver, rev := buildStamp()
	if got, want := out.String(), "entraproxy "+ver+" (commit "+rev+", "+runtime.Version()+")\n"; got != want {
		t.Errorf("version output = %q, want %q", got, want)
	}
}

// The ldflags stamp wins; without one, the go command's record of the
// build: the version go install fetched, the revision a clone was at.
func TestStampFrom(t *testing.T) {
	installed := &debug.BuildInfo{Main: debug.Module{Path: "github.com/entraproxy/entraproxy", Version: "v1.2.3"}}
	clone := &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129101500-0123456789ab+dirty"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	goRun := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		name             string
		ver, rev         string
		info             *debug.BuildInfo
		wantVer, wantRev string
	}{
		{"make dist", "v1.0.0", "abc", clone, "v1.0.0", "abc"},
		{"go install @v1.2.3", "dev", "unknown", installed, "v1.2.3", "unknown"},
		{"go build in a changed clone", "dev", "unknown", clone, "v0.0.0-20261129101500-0123456789ab+dirty", "0123456789abcdef0123456789abcdef01234567-dirty"},
		{"go run", "dev", "unknown", goRun, "dev", "unknown"},
		{"no build info", "dev", "unknown", nil, "dev", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ver, rev := stampFrom(tc.ver, tc.rev, tc.info); ver != tc.wantVer || rev != tc.wantRev {
				t.Errorf("stampFrom = %q, %q; want %q, %q", ver, rev, tc.wantVer, tc.wantRev)
			}
		})
	}
}

// wait asks the address serve would listen on: ENTRAPROXY_ADMIN_LISTEN, or
// config's default for it.
func TestWaitReadyzURL(t *testing.T) {
	var def string
	for _, s := range config.Settings() {
		if s.Var == "ENTRAPROXY_ADMIN_LISTEN" {
			def = s.Default
		}
	}
	for _, tc := range []struct {
		admin   string
		want    string
		wantErr string
	}{
		{"", "http://" + def + "/readyz", ""},
		{"127.0.0.1:9191", "http://127.0.0.1:9191/readyz", ""},
		{"0.0.0.0:9191", "http://127.0.0.1:9191/readyz", ""},
		{":9191", "http://127.0.0.1:9191/readyz", ""},
		{"[::1]:9191", "http://[::1]:9191/readyz", ""},
		{"off", "", "admin listener"},
		{"9191", "", "want host:port"},
	} {
		got, err := readyzURL(getenvFunc(environ("ENTRAPROXY_ADMIN_LISTEN", tc.admin)))
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("readyzURL(ENTRAPROXY_ADMIN_LISTEN=%q) = %q, %v, want %q, %q", tc.admin, got, err, tc.want, tc.wantErr)
		}
	}
}

// serve and doctor set Go's standard logger (and azcore's listener) for the
// libraries that write there; they put it back when they return, so a later
// run in the same process does not write into a finished run's log.
func TestGlobalLoggingRestored(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthBearer}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	t.Cleanup(func() { log.SetOutput(out); log.SetFlags(flags); log.SetPrefix(prefix) })

	cancelled, cancel := context.WithCancel(context.Background())
	cancel() // serve starts, then shuts down at once
	for _, tc := range []struct {
		name string
		ctx  context.Context
		args []string
		env  []string
	}{
		{"serve", cancelled, nil, environ("ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_ADMIN_LISTEN", "off", "ENTRAPROXY_CREDENTIAL", "managed-identity", "ENTRAPROXY_LOG_FORMAT", "json",
			"AZURE_CLIENT_ID", uniqueClientID())},
		{"doctor", context.Background(), []string{"doctor"}, environ("ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mine bytes.Buffer
			log.SetOutput(&mine)
			log.SetFlags(log.Lmicroseconds)
			log.SetPrefix("test: ")
			run(tc.ctx, tc.args, tc.env, nil, io.Discard, io.Discard)
			if got := log.Writer(); got != &mine {
				t.Errorf("after %s, log.Writer() = %T, want the test's buffer", tc.name, got)
			}
			if got, want := log.Flags(), log.Lmicroseconds; got != want {
				t.Errorf("after %s, log.Flags() = %d, want %d", tc.name, got, want)
			}
			if got, want := log.Prefix(), "test: "; got != want {
				t.Errorf("after %s, log.Prefix() = %q, want %q", tc.name, got, want)
			}
		})
	}
}

// TestServe runs the whole program against the fake Azure: a managed
// identity token through azidentity, a REST synthesis through the proxy, and
// a clean shutdown when ctx ends.
func TestServe(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthBearer}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	// azidentity reads these from the process environment.
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs, logWriter := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, environ(
			"ENTRAPROXY_UPSTREAM", fake.URL(),
			"ENTRAPROXY_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_ADMIN_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_CREDENTIAL", "managed-identity",
			"ENTRAPROXY_LOG_FORMAT", "json",
			// MSAL caches managed identity tokens process-wide: a fresh
			// identity keeps a token of an earlier fake (-count=2) out.
			"AZURE_CLIENT_ID", uniqueClientID(),
		), nil, io.Discard, logWriter)
		logWriter.Close()
	}()

	// The log is read on its own goroutine, for as long as run writes, so
	// the wait for the ready line can be bounded.
	type readyLine struct{ Listen, Admin, Credential string }
	readyc := make(chan readyLine, 1)
	var (
		mu  sync.Mutex
		all strings.Builder
	)
	logText := func() string { mu.Lock(); defer mu.Unlock(); return all.String() }
	go func() {
		lines := bufio.NewScanner(logs)
		for lines.Scan() {
			mu.Lock()
			all.WriteString(lines.Text() + "\n")
			mu.Unlock()
			var entry struct {
				Msg string
				readyLine
			}
			if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "ready" {
				readyc <- entry.readyLine
			}
		}
		io.Copy(io.Discard, logs) // a line too long for the scanner: keep the pipe flowing
	}()
	var ready readyLine
	select {
	case ready = <-readyc:
	case err := <-done:
		t.Fatalf("run returned %v before a ready line:\n%s", err, logText())
	case <-time.After(leakcheck.HangGuard):
		t.Fatalf("no ready line after %v:\n%s", leakcheck.HangGuard, logText())
	}
	if ready.Credential != "ManagedIdentityCredential" {
		t.Errorf("ready credential = %q, want ManagedIdentityCredential", ready.Credential)
	}

	client := testClient(t)
	resp, err := client.Get("http://" + ready.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+ready.Listen+"/cognitiveservices/v1",
		strings.NewReader(`<speak version="1.0" xml:lang="en-US"><voice name="en-US-AriaNeural">Hello</voice></speak>`))
	req.Header.Set("Content-Type", "application/ssml+xml")
	req.Header.Set("X-Microsoft-OutputFormat", "riff-16khz-16bit-mono-pcm")
	req.Header.Set("Ocp-Apim-Subscription-Key", "dummy")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("RIFF")) {
		t.Fatalf("synthesis = %d %q, want 200 and a RIFF WAV", resp.StatusCode, body[:min(len(body), 200)])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v, want nil after a clean shutdown", err)
		}
	case <-time.After(leakcheck.HangGuard):
		t.Fatalf("run did not return %v after the shutdown signal", leakcheck.HangGuard)
	}
}

func TestLogFormats(t *testing.T) {
	for _, tc := range []struct {
		format   string
		wantJSON bool
	}{{"json", true}, {"auto", true}, {"text", false}} {
		var buf bytes.Buffer
		logger := newLogger(&config.Config{LogLevel: "info", LogFormat: tc.format}, &buf)
		logger.Info("hello", "k", "v")
		isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
		if isJSON != tc.wantJSON {
			t.Errorf("format %s into a buffer wrote %q; JSON = %v, want %v", tc.format, buf.String(), isJSON, tc.wantJSON)
		}
		if strings.Contains(buf.String(), "\x1b[") {
			t.Errorf("format %s into a buffer (not a terminal) wrote colour codes: %q", tc.format, buf.String())
		}
	}
}

// serveUntilStopped announces the first token once, and returns nil at the
// signal or the first failure reported.
func TestServeUntilStopped(t *testing.T) {
	errBoom := errors.New("serve: accept: boom")
	for _, tc := range []struct {
		name         string
		ready        bool // the first token comes before the stop
		signal, fail bool
		want         error
	}{
		{"signal before any token", false, true, false, nil},
		{"failure before any token", false, false, true, errBoom},
		{"signal after the token", true, true, false, nil},
		{"failure after the token", true, false, true, errBoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			failed := make(chan error, 1)
			ready := make(chan struct{})
			var announced atomic.Int32
			firstAnnounce := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- serveUntilStopped(ctx, failed, ready, func() {
					if announced.Add(1) == 1 {
						close(firstAnnounce)
					}
				})
			}()
			if tc.ready {
				close(ready)
				<-firstAnnounce
			}
			if tc.signal {
				cancel()
			}
			if tc.fail {
				failed <- errBoom
			}
			if got := <-done; got != tc.want {
				t.Errorf("serveUntilStopped = %v, want %v", got, tc.want)
			}
			if got, want := announced.Load(), map[bool]int32{false: 0, true: 1}[tc.ready]; got != want {
				t.Errorf("announced %d times, want %d", got, want)
			}
		})
	}
}

// getenvFunc answers as os.Getenv would in a process with that environment.
func TestGetenvFunc(t *testing.T) {
	getenv := getenvFunc([]string{"A=1", "B=x=y", "A=2", "EMPTY=", "NOEQUALS"})
	for name, want := range map[string]string{"A": "2", "B": "x=y", "EMPTY": "", "NOEQUALS": "", "MISSING": ""} {
		if got := getenv(name); got != want {
			t.Errorf("getenv(%q) = %q, want %q", name, got, want)
		}
	}
}
