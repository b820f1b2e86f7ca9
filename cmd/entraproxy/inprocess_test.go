package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// Helpers for tests that run the real serve in this process (run with a
// getenv of their own) against the fake Azure, with the managed identity
// credential going through a recordingIdentity.

// issuedToken is a token the identity endpoint handed out, and when.
type issuedToken struct {
	token     string
	at        time.Time
	expiresOn time.Time
}

// recordingIdentity sits in front of the fake's App Service managed identity
// endpoint: it records every token handed out and can fail on demand.
type recordingIdentity struct {
	*httptest.Server
	fake   *fakeazure.Azure
	client *http.Client

	mu     sync.Mutex
	issued []issuedToken
	fail   string // "" passes; "400": answers 400; "down": drops the connection
}

// startRecordingIdentity starts the endpoint and points azidentity at it
// (azidentity reads IDENTITY_ENDPOINT from the process environment).
func startRecordingIdentity(t *testing.T, fake *fakeazure.Azure) *recordingIdentity {
	t.Helper()
	ri := &recordingIdentity{fake: fake, client: &http.Client{Transport: &http.Transport{}}}
	ri.Server = httptest.NewServer(http.HandlerFunc(ri.serve))
	t.Cleanup(ri.Close)
	t.Cleanup(ri.client.CloseIdleConnections)
	t.Setenv("IDENTITY_ENDPOINT", ri.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())
	return ri
}

func (ri *recordingIdentity) setFail(mode string) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	ri.fail = mode
}

func (ri *recordingIdentity) tokens() []issuedToken {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return append([]issuedToken(nil), ri.issued...)
}

func (ri *recordingIdentity) serve(w http.ResponseWriter, r *http.Request) {
	ri.mu.Lock()
	fail := ri.fail
	ri.mu.Unlock()
	switch fail {
	case "400":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_request","error_description":"identity not found"}`)
		return
	case "down":
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, ri.fake.IdentityEndpoint()+"?"+r.URL.RawQuery, nil)
	req.Header = r.Header.Clone()
	resp, err := ri.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   string `json:"expires_on"`
	}
	if json.Unmarshal(body, &tok) == nil && tok.AccessToken != "" {
		exp, _ := strconv.ParseInt(tok.ExpiresOn, 10, 64)
		ri.mu.Lock()
		ri.issued = append(ri.issued, issuedToken{token: tok.AccessToken, at: time.Now(), expiresOn: time.Unix(exp, 0)})
		ri.mu.Unlock()
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// uniqueClientID is a user-assigned identity of its own for one proxy:
// MSAL's managed identity token cache is process-wide and keyed by identity
// and resource, so another test's cached token is never served.
func uniqueClientID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// addrs are the addresses a listening or ready line names.
type addrs struct{ Listen, Admin string }

// logSink collects the proxy's log lines (those keep allows, all when it is
// nil), one line per Write, announces its listening and ready lines and
// wakes waitFor.
type logSink struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	written   chan struct{} // closed (and replaced) by the next kept line
	keep      func([]byte) bool
	listening chan addrs
	ready     chan addrs
	onceL     sync.Once
	onceR     sync.Once
}

func newLogSink(keep func([]byte) bool) *logSink {
	return &logSink{keep: keep, listening: make(chan addrs, 1), ready: make(chan addrs, 1)}
}

func (l *logSink) Write(p []byte) (int, error) {
	if l.keep == nil || l.keep(p) {
		l.mu.Lock()
		l.buf.Write(p)
		if l.written != nil {
			close(l.written)
			l.written = nil
		}
		l.mu.Unlock()
	}
	var line struct{ Msg, Listen, Admin string }
	if json.Unmarshal(p, &line) == nil {
		switch line.Msg {
		case "listening":
			l.onceL.Do(func() { l.listening <- addrs{line.Listen, line.Admin} })
		case "ready":
			l.onceR.Do(func() { l.ready <- addrs{line.Listen, line.Admin} })
		}
	}
	return len(p), nil
}

// waitFor returns once cond holds for the kept log, checked after each line:
// the proxy announces what it did by logging it. leakcheck.HangGuard only turns a line
// that never comes into a failure.
func (l *logSink) waitFor(t *testing.T, what string, cond func(log string) bool) {
	t.Helper()
	guard := time.NewTimer(leakcheck.HangGuard)
	defer guard.Stop()
	for {
		l.mu.Lock()
		log := l.buf.String()
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if cond(log) {
			return
		}
		select {
		case <-written:
		case <-guard.C:
			t.Fatalf("%s: not logged after %v:\n%s", what, leakcheck.HangGuard, log)
		}
	}
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// inProcess is one serve running in this process.
type inProcess struct {
	listen, admin string
	logs          *logSink
	stop          func() error
}

// startInProcess runs serve with the given settings (JSON logs, loopback
// ports and managed identity are added; later settings win) and waits for it
// to be ready, or, when wantReady is false, only for its listener. keep
// chooses the log lines kept; nil keeps all.
func startInProcess(t *testing.T, wantReady bool, keep func([]byte) bool, kv ...string) *inProcess {
	t.Helper()
	env := append([]string{
		"ENTRAPROXY_LISTEN", "127.0.0.1:0",
		"ENTRAPROXY_ADMIN_LISTEN", "127.0.0.1:0",
		"ENTRAPROXY_CREDENTIAL", "managed-identity",
		"ENTRAPROXY_LOG_FORMAT", "json",
		"ENTRAPROXY_SHUTDOWN_TIMEOUT", "5s",
	}, kv...)
	logs := newLogSink(keep)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, environ(env...), nil, io.Discard, logs) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(leakcheck.HangGuard):
				runErr = fmt.Errorf("run did not return %v after the shutdown signal", leakcheck.HangGuard)
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	p := &inProcess{logs: logs, stop: stop}
	// The listening line comes once the listeners are open, before any
	// token; the ready line once the first token is held. When no token
	// will come, the listening line is the one to wait for.
	line, what := logs.ready, "ready"
	if !wantReady {
		line, what = logs.listening, "listening"
	}
	select {
	case r := <-line:
		p.listen, p.admin = r.Listen, r.Admin
	case err := <-done:
		done <- err // for stop
		t.Fatalf("run returned before its %s line: %v\n%s", what, err, logs.String())
	case <-time.After(leakcheck.HangGuard):
		t.Fatalf("no %s line after %v:\n%s", what, leakcheck.HangGuard, logs.String())
	}
	return p
}
