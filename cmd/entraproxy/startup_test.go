package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// jsonLog collects a serve's JSON log lines and lets a test wait for one.
type jsonLog struct {
	mu    sync.Mutex
	raw   bytes.Buffer
	lines []map[string]any
	more  chan struct{} // closed and replaced on every line
}

func newJSONLog() *jsonLog { return &jsonLog{more: make(chan struct{})} }

func (l *jsonLog) Write(p []byte) (int, error) {
	var m map[string]any
	json.Unmarshal(p, &m) // a line that is not JSON is kept raw and fails the test's checks
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	l.lines = append(l.lines, m)
	close(l.more)
	l.more = make(chan struct{})
	return len(p), nil
}

// waitFor returns the first line whose msg is msg, waiting for it at most
// leakcheck.HangGuard (a bound only a broken proxy reaches: the lines come within
// milliseconds).
func (l *jsonLog) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(leakcheck.HangGuard)
	for {
		l.mu.Lock()
		for _, m := range l.lines {
			if m["msg"] == msg {
				l.mu.Unlock()
				return m
			}
		}
		more := l.more
		l.mu.Unlock()
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no %q log line after %v:\n%s", msg, leakcheck.HangGuard, l.String())
		}
	}
}

func (l *jsonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func (l *jsonLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.lines...)
}

// What a user sees first when no token can be had: a mistyped setting
// called out, then where the proxy listens (before any token event), then
// one warning per credential call with the credential's first line, the
// likely fix and the doctor hint. The token endpoint answers 500 with a JWT
// and an access_token in its body: neither reaches any log line (the log
// is at debug level), /readyz or the client.
func TestStartupWithoutToken(t *testing.T) {
	broken := httptest.NewServer(fakeazure.BrokenTokenEndpoint())
	defer broken.Close()
	t.Setenv("IDENTITY_ENDPOINT", broken.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "identity-header-startup-test")

	logs := newJSONLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, environ(
			"ENTRAPROXY_UPSTREAM", "http://127.0.0.1:1",
			"ENTRAPROXY_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_ADMIN_LISTEN", "127.0.0.1:0",
			"ENTRAPROXY_CREDENTIAL", "managed-identity",
			"ENTRAPROXY_LOG_FORMAT", "json",
			"ENTRAPROXY_LOG_LEVEL", "debug",
			"AZURE_CLIENT_ID", uniqueClientID(),
			"ENTRAPROXY_LISTN", "127.0.0.1:8081",
		), nil, io.Discard, logs)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run = %v, want nil", err)
			}
		}
	}
	defer stop()

	listening := logs.waitFor(t, "listening")
	listen, _ := listening["listen"].(string)
	admin, _ := listening["admin"].(string)
	if !strings.HasPrefix(listen, "127.0.0.1:") || !strings.HasPrefix(admin, "127.0.0.1:") || listening["credential"] != "managed-identity" ||
		listening["upstream"] != "http://127.0.0.1:1" || listening["tls"] != false {
		t.Errorf("listening line = %v, want the listen and admin addresses, upstream and credential", listening)
	}
	warn := logs.waitFor(t, "token fetch failed")
	errText, _ := warn["error"].(string)
	fix, _ := warn["fix"].(string)
	hint, _ := warn["hint"].(string)
	if warn["level"] != "WARN" || warn["credential"] != "ManagedIdentityCredential" || warn["status"] != float64(500) ||
		!strings.HasPrefix(errText, "ManagedIdentityCredential authentication failed (HTTP 500") || fix == "" ||
		!strings.Contains(hint, "run `entraproxy doctor`") {
		t.Errorf("token warning = %v, want WARN with credential, status 500, first line, fix and the doctor hint", warn)
	}

	client := testClient(t)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	readyStatus, readyBody := get("http://" + admin + "/readyz")
	var ready struct{ Status, Reason string }
	json.Unmarshal([]byte(readyBody), &ready)
	if readyStatus != http.StatusServiceUnavailable || !strings.HasPrefix(ready.Reason, "token_unavailable: ManagedIdentityCredential authentication failed (HTTP 500") {
		t.Errorf("/readyz = %d %s, want 503 with the credential's summary", readyStatus, readyBody)
	}
	proxyStatus, proxyBody := get("http://" + listen + "/openai/models")
	if proxyStatus != http.StatusServiceUnavailable || !strings.Contains(proxyBody, "token_unavailable") {
		t.Errorf("proxied request = %d %s, want 503 token_unavailable", proxyStatus, proxyBody)
	}
	stop()

	// The order: typo, listening, then token events; no error lines.
	order := []string{}
	for _, l := range logs.all() {
		switch l["msg"] {
		case "not an entraproxy setting", "listening", "token fetch failed", "ready":
			if len(order) == 0 || order[len(order)-1] != l["msg"] {
				order = append(order, l["msg"].(string))
			}
		}
		if l["level"] == "ERROR" {
			t.Errorf("error line %v: no token is a warning, per attempt", l)
		}
		if l["msg"] == "not an entraproxy setting" && (l["variable"] != "ENTRAPROXY_LISTN" || l["did_you_mean"] != "ENTRAPROXY_LISTEN") {
			t.Errorf("typo line = %v, want ENTRAPROXY_LISTN, did you mean ENTRAPROXY_LISTEN", l)
		}
	}
	if got, want := strings.Join(order, ", "), "not an entraproxy setting, listening, token fetch failed"; got != want {
		t.Errorf("log order = %s, want %s", got, want)
	}
	for what, text := range map[string]string{"log": logs.String(), "/readyz": readyBody, "proxied answer": proxyBody} {
		for _, secret := range []string{fakeazure.BrokenJWT, fakeazure.BrokenToken, "identity-header-startup-test"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the secret %.12s...:\n%s", what, secret, text)
			}
		}
		if m := jwtShape.FindString(text); m != "" {
			t.Errorf("%s holds a JWT-shaped string %.16s...", what, m)
		}
	}
	if !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Errorf("no debug line: the scan did not cover the debug level")
	}
}

// A required setting missing while a look-alike is set: the error names it.
func TestMissingUpstreamNamesLookalike(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), nil, environ("ENTRAPROXY_UPSTREM", "https://name.cognitiveservices.azure.com"), nil, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	want := fmt.Sprintf(`ENTRAPROXY_UPSTREAM "": required; %s; ENTRAPROXY_UPSTREM is set: did you mean ENTRAPROXY_UPSTREAM?`,
		"set it to your resource's endpoint, e.g. https://NAME.cognitiveservices.azure.com")
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
}

// run reads the environment it is given, names and values alike, never the
// process's: what the test process holds reaches neither serve's settings
// and typo check nor doctor's.
func TestRunReadsOnlyItsEnvironment(t *testing.T) {
	t.Setenv("ENTRAPROXY_UPSTREAM", "https://name.cognitiveservices.azure.com")
	t.Setenv("ENTRAPROXY_UPSTREM", "https://name.cognitiveservices.azure.com")
	for _, args := range [][]string{nil, {"doctor", "--json"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, environ("ENTRAPROXY_LOG_FORMAT", "json"), nil, &stdout, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Errorf("exit code = %d, want %d (ENTRAPROXY_UPSTREAM unset in run's environment)", code, exitUsage)
			}
			out := stdout.String() + stderr.String()
			if !strings.Contains(out, `ENTRAPROXY_UPSTREAM \"\": required`) && !strings.Contains(out, `ENTRAPROXY_UPSTREAM "": required`) {
				t.Errorf("output lacks the missing ENTRAPROXY_UPSTREAM:\n%s", out)
			}
			if strings.Contains(out, "ENTRAPROXY_UPSTREM") {
				t.Errorf("output names the process's ENTRAPROXY_UPSTREM:\n%s", out)
			}
		})
	}
}

// A listener off loopback that takes any Host and asks no key is open to
// DNS rebinding: a web page whose name its owner points at this address
// becomes, to the browser, same-origin with the proxy. Start-up says so in
// one WARN line with the fix; a Host list, inbound keys (which a rebound
// page does not have) or a loopback listener need no warning. Each run
// stops at a listener that cannot be opened (192.0.2.10 is TEST-NET-1, on
// no machine), after the warning would have been logged.
func TestAnyHostWarning(t *testing.T) {
	const warning = `"msg":"any Host is accepted: ENTRAPROXY_LISTEN is not a loopback address and asks no inbound key, so a web page that points its own name at this address (DNS rebinding) can use the proxy; ` +
		`set ENTRAPROXY_ALLOWED_HOSTS to the names clients use"`
	for _, tc := range []struct {
		name        string
		env         []string
		wantWarning bool
	}{
		{"all interfaces, unauthenticated, no host list", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_ALLOW_UNAUTHENTICATED", "true"}, true},
		{"all interfaces, unauthenticated, host list", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_ALLOW_UNAUTHENTICATED", "true", "ENTRAPROXY_ALLOWED_HOSTS", "proxy.internal"}, false},
		{"all interfaces, inbound keys", []string{"ENTRAPROXY_LISTEN", "192.0.2.10:0", "ENTRAPROXY_INBOUND_KEYS", "k1"}, false},
		{"loopback (admin off loopback)", []string{"ENTRAPROXY_LISTEN", "127.0.0.1:0", "ENTRAPROXY_ADMIN_LISTEN", "192.0.2.10:0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := append([]string{"ENTRAPROXY_UPSTREAM", "http://127.0.0.1:1", "ENTRAPROXY_ADMIN_LISTEN", "off",
				"ENTRAPROXY_CREDENTIAL", "managed-identity", "ENTRAPROXY_LOG_FORMAT", "json"}, tc.env...)
			err := run(context.Background(), nil, environ(env...), nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), "192.0.2.10:0") {
				t.Fatalf("run = %v, want it to stop at listening on 192.0.2.10:0", err)
			}
			if got := strings.Count(stderr.String(), warning); got != map[bool]int{true: 1, false: 0}[tc.wantWarning] {
				t.Errorf("warning logged %d times, want it %v; log:\n%s", got, tc.wantWarning, stderr.String())
			}
			if tc.wantWarning && !strings.Contains(stderr.String(), `"level":"WARN"`) {
				t.Errorf("the warning is not at WARN level:\n%s", stderr.String())
			}
		})
	}
}

// Invalid settings with mistyped names beside them: the error lists every
// look-alike, not only one a problem names, since a typo is often why the
// settings are invalid (ENTRAPROXY_LISTN was missing before); a look-alike
// of a setting that is set says to remove it, never "did you mean".
func TestInvalidSettingsListTypos(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), nil, environ(
		"ENTRAPROXY_UPSTREM", "https://name.cognitiveservices.azure.com",
		"ENTRAPROXY_LISTN", "127.0.0.1:8081",
		"ENTRAPROXY_LOG_LEVEL", "loud",
		"ENTRAPROXY_LOGLEVEL", "debug",
	), nil, io.Discard, &stderr)
	if code := exitCode(err, &stderr); code != exitUsage {
		t.Errorf("exit code = %d, want %d", code, exitUsage)
	}
	for _, want := range []string{
		"ENTRAPROXY_UPSTREM is set: did you mean ENTRAPROXY_UPSTREAM?",
		"\n  ENTRAPROXY_LISTN is not an entraproxy setting; did you mean ENTRAPROXY_LISTEN?\n",
		"\n  ENTRAPROXY_LOGLEVEL is not an entraproxy setting; ENTRAPROXY_LOG_LEVEL is set as well, and only it is read: remove ENTRAPROXY_LOGLEVEL\n",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr =\n%s\nwant it to contain %q", stderr.String(), want)
		}
	}
	if strings.Contains(stderr.String(), "127.0.0.1:8081") {
		t.Errorf("stderr quotes a look-alike's value:\n%s", stderr.String())
	}
}
