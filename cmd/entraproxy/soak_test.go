package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// soakOp is one client operation and how it ended.
type soakOp struct {
	kind       string
	start, end time.Time
	status     int    // HTTP status, or the WebSocket handshake's; 0 on a transport error
	code       string // the proxy's error code, if any
	err        string // "" on success
}

// TestSoak runs the real program under mixed load: 50 clients doing REST
// synthesis, voices, chat, server-sent events and WebSocket synthesis, with
// tokens that expire every 20 s (so refreshed every 5 s) and the token
// endpoint out for a quarter of the run (dropping connections, then
// answering 400). No request may fail while the proxy held a valid token;
// requests without one get 503 token_unavailable; service recovers by itself
// after the outage; goroutines and heap end flat.
//
// The verdicts do not depend on how fast the machine is: when the proxy held
// a token is what it logged ("token acquired", the moment it held it, and the
// expiry), not when the identity endpoint answered; the clients keep going
// until a request after the outage has passed, however long that takes; and
// the counts of goroutines are polled until they settle.
//
// `go test` runs 20 s of it (tokens of 14 s, an 8 s outage);
// ENTRAPROXYTEST_SOAK=2m (make soak) runs the full 2 minutes (20 s tokens, a
// 30 s outage).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 s or more; skipped with -short")
	}
	total := 20 * time.Second
	if v := os.Getenv("ENTRAPROXYTEST_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 20*time.Second {
			t.Fatalf("ENTRAPROXYTEST_SOAK %q: want a duration of at least 20s, e.g. 2m", v)
		}
		total = d
	}
	lifetime := max(14*time.Second, min(20*time.Second, total/6))
	outage := max(8*time.Second, total/4)
	outageAt := total * 3 / 10
	const clients = 50
	t.Logf("soak: %v, %d clients, tokens of %v, token endpoint down from %v for %v", total, clients, lifetime, outageAt, outage)

	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthBoth, TokenLifetime: lifetime, SSEGap: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	identity := startRecordingIdentity(t, fake)
	// Info level, as in production, but only warnings and errors are kept:
	// the access log of thousands of requests would weigh on the heap. Each
	// "token acquired" line is noted as it is written (after the proxy holds
	// the token) with the token's expiry.
	var (
		heldMu sync.Mutex
		held   []heldToken
	)
	quiet := func(line []byte) bool {
		if at := time.Now(); strings.Contains(string(line), `"msg":"token acquired"`) {
			var l struct {
				ExpiresOn time.Time `json:"expires_on"`
			}
			if err := json.Unmarshal(line, &l); err != nil {
				t.Errorf("token acquired line %q: %v", line, err)
			}
			heldMu.Lock()
			held = append(held, heldToken{from: at, until: l.ExpiresOn.Add(-expiryMargin)})
			heldMu.Unlock()
		}
		return !strings.Contains(string(line), `"level":"INFO"`)
	}
	p := startInProcess(t, true, quiet,
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
		"AZURE_CLIENT_ID", uniqueClientID(),
	)
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport, Timeout: leakcheck.HangGuard}
	dialer := &websocket.Dialer{HandshakeTimeout: leakcheck.HangGuard}
	ssml := fakeazure.SSML("Soak.")
	chat := `{"messages":[{"role":"user","content":"hi"}]}`
	sse := `{"messages":[{"role":"user","content":"hi"}],"stream":true}`

	httpOp := func(kind, method, path, body string, header http.Header, check func([]byte) bool) soakOp {
		op := soakOp{kind: kind, start: time.Now()}
		defer func() { op.end = time.Now() }()
		req, _ := http.NewRequest(method, "http://"+p.listen+path, strings.NewReader(body))
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			op.err = err.Error()
			op.end = time.Now()
			return op
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		op.status, op.end = resp.StatusCode, time.Now()
		switch {
		case err != nil:
			op.err = "read body: " + err.Error()
		case resp.StatusCode != http.StatusOK:
			op.code, op.err = errorCode(b), fmt.Sprintf("status %d: %.120s", resp.StatusCode, b)
		case !check(b):
			op.err = fmt.Sprintf("unexpected body %.120s", b)
		}
		return op
	}
	wsOp := func() soakOp {
		op := soakOp{kind: "websocket", start: time.Now()}
		conn, resp, err := dialer.Dial("ws://"+p.listen+"/cognitiveservices/websocket/v1", http.Header{"Ocp-Apim-Subscription-Key": {"dummy"}})
		if err != nil {
			op.end, op.err = time.Now(), "dial: "+err.Error()
			if resp != nil {
				b, _ := io.ReadAll(resp.Body)
				op.status, op.code = resp.StatusCode, errorCode(b)
			}
			return op
		}
		defer conn.Close()
		op.status = http.StatusSwitchingProtocols
		conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
		audio, err := fakeazure.Synthesize(conn, "Soak over WebSocket.", "")
		if err == nil && len(audio) == 0 {
			err = fmt.Errorf("no audio")
		}
		if err != nil {
			op.err = "synthesize: " + err.Error()
		}
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		op.end = time.Now()
		return op
	}
	ops := []func() soakOp{
		func() soakOp {
			return httpOp("voices", http.MethodGet, "/cognitiveservices/voices/list", "", nil, func(b []byte) bool { return strings.HasPrefix(string(b), "[") })
		},
		func() soakOp {
			return httpOp("tts", http.MethodPost, "/cognitiveservices/v1", ssml, http.Header{"Content-Type": {"application/ssml+xml"},
				"X-Microsoft-Outputformat": {"riff-16khz-16bit-mono-pcm"}, "Ocp-Apim-Subscription-Key": {"dummy"}},
				func(b []byte) bool { return strings.HasPrefix(string(b), "RIFF") })
		},
		func() soakOp {
			return httpOp("chat", http.MethodPost, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", chat,
				http.Header{"Content-Type": {"application/json"}, "Api-Key": {"dummy"}}, func(b []byte) bool { return strings.Contains(string(b), `"choices"`) })
		},
		func() soakOp {
			return httpOp("sse", http.MethodPost, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", sse,
				http.Header{"Content-Type": {"application/json"}, "Api-Key": {"dummy"}}, func(b []byte) bool { return strings.Contains(string(b), "data: [DONE]") })
		},
		wsOp,
	}

	// Warm up: every kind once from every client, then the baseline.
	var warm sync.WaitGroup
	for range clients {
		warm.Go(func() {
			for _, op := range ops {
				if o := op(); o.err != "" {
					t.Errorf("warm-up %s: %s", o.kind, o.err)
				}
			}
		})
	}
	warm.Wait()
	if t.Failed() {
		t.FailNow()
	}
	quietNow := func() {
		transport.CloseIdleConnections()
		fake.CloseIdleConnections()                 // the proxy's pool towards the fake
		identity.Config.SetKeepAlivesEnabled(false) // azidentity's pool: closes the idle ones
		identity.Config.SetKeepAlivesEnabled(true)
	}
	quietNow()
	fake.Reset() // the fake's request log lives in this process too
	baseG, baseHeap := soakQuiet()

	start := time.Now()
	end := start.Add(total)
	outageStart, outageEnd := start.Add(outageAt), start.Add(outageAt+outage)
	var (
		mu        sync.Mutex
		all       []soakOp
		wg        sync.WaitGroup
		recovered atomic.Bool // a request that started after the outage passed
	)
	for i := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			// Until the end, and past it until the service has recovered
			// (a busy machine may take longer; the hang guard ends a
			// proxy that never does).
			for first := true; first || time.Now().Before(end) || !recovered.Load(); first = false {
				if time.Since(end) > leakcheck.HangGuard {
					return
				}
				o := ops[rng.IntN(len(ops))]()
				if o.err == "" && o.start.After(outageEnd) {
					recovered.Store(true)
				}
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
			}
		})
	}
	// The outage: first the endpoint drops connections (azidentity retries
	// those), then it refuses with 400 (no retry: each fetch fails at once).
	time.Sleep(time.Until(outageStart))
	identity.setFail("down")
	time.Sleep(time.Until(outageStart.Add(outage / 2)))
	identity.setFail("400")
	time.Sleep(time.Until(outageEnd))
	identity.setFail("")
	wg.Wait()

	// Every failure must be a 503 token_unavailable, and the proxy must not
	// have held a valid token all the while it took: it decided at some
	// moment between the start and the end, and had it held one then, it
	// would have used it. A token is held from its "token acquired" line
	// until 10 s before its expiry (what the proxy counts as expired).
	heldMu.Lock()
	acquired := len(held)
	heldMu.Unlock()
	counts := map[string]int{}
	var unavailable, violations int
	var firstOKAfterOutage time.Time
	for _, o := range all {
		counts[o.kind]++
		if o.err == "" {
			if o.start.After(outageEnd) && (firstOKAfterOutage.IsZero() || o.end.Before(firstOKAfterOutage)) {
				firstOKAfterOutage = o.end
			}
			continue
		}
		heldMu.Lock()
		tokenHeld := heldThroughout(held, o.start, o.end)
		heldMu.Unlock()
		// A WebSocket handshake gets its refusal as 502 (proxy.handshakeAnswer),
		// the code in the body either way.
		refused := http.StatusServiceUnavailable
		if o.kind == "websocket" {
			refused = http.StatusBadGateway
		}
		if o.status == refused && o.code == "token_unavailable" && !tokenHeld {
			unavailable++
			continue
		}
		violations++
		if violations <= 10 {
			t.Errorf("%s at +%v (took %v) failed while the proxy held a valid token, or not with token_unavailable: status %d, code %q: %s",
				o.kind, o.start.Sub(start).Round(time.Millisecond), o.end.Sub(o.start).Round(time.Millisecond), o.status, o.code, o.err)
		}
	}
	if violations > 10 {
		t.Errorf("... %d failures in all", violations)
	}
	t.Logf("soak: %d operations %v, %d answered 503 token_unavailable while the proxy held no valid token, %d other failures; %d tokens acquired",
		len(all), counts, unavailable, violations, acquired)
	if len(all) < clients {
		t.Errorf("only %d operations from %d clients, want at least one each", len(all), clients)
	}

	// Recovery: a request after the outage passed without help (how soon
	// is logged, for the reader; the hang guard fails a proxy that never
	// recovers).
	if firstOKAfterOutage.IsZero() {
		t.Fatalf("no request succeeded after the outage ended (waited %v past the end)", leakcheck.HangGuard)
	}
	t.Logf("recovered %v after the outage ended", firstOKAfterOutage.Sub(outageEnd).Round(time.Millisecond))

	// Flat: the same quiet state as after the warm-up, within a tolerance
	// far below one goroutine (or 4 KiB) per operation. What the test and
	// the fake kept about the operations is let go first, and idle
	// connections are closed as they were for the baseline. Goroutines end
	// when the scheduler gets to them: polled, with the hang guard.
	all = nil
	fake.Reset()
	quietNow()
	deadline := time.Now().Add(leakcheck.HangGuard)
	g, heap := soakQuiet()
	for g > baseG+25 && time.Now().Before(deadline) {
		quietNow()
		g, heap = soakQuiet()
	}
	t.Logf("goroutines %d -> %d, heap in use %.1f -> %.1f MiB", baseG, g, float64(baseHeap)/(1<<20), float64(heap)/(1<<20))
	if g > baseG+25 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d after the soak, %d before: not flat\n%s", g, baseG, buf[:runtime.Stack(buf, true)])
	}
	if heap > baseHeap+16<<20 {
		t.Errorf("heap in use %d MiB after the soak, %d MiB before: not flat", heap>>20, baseHeap>>20)
	}
	if err := p.stop(); err != nil {
		t.Errorf("run = %v", err)
	}
}

// expiryMargin is how close to its expiry a token counts as expired for the
// proxy (tokens.Source).
const expiryMargin = 10 * time.Second

// heldToken is when the proxy certainly held a valid token: from the moment
// its "token acquired" line was written until expiryMargin before its
// expiry. A later token expires later, so the proxy holds a valid token
// for the union of these intervals.
type heldToken struct{ from, until time.Time }

// heldThroughout reports whether the proxy held a valid token at every moment
// from start to end.
func heldThroughout(held []heldToken, start, end time.Time) bool {
	covered := start
	for changed := true; changed && !covered.After(end); {
		changed = false
		for _, h := range held {
			if !h.from.After(covered) && h.until.After(covered) {
				covered, changed = h.until, true
			}
		}
	}
	return covered.After(end)
}

// errorCode is the code of a proxy-made JSON error, or "".
func errorCode(body []byte) string {
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(body, &env)
	return env.Error.Code
}

// soakQuiet waits for goroutines to stop falling and returns their number
// and the heap in use after a collection.
func soakQuiet() (goroutines int, heapInuse uint64) {
	var samples []int
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		samples = append(samples, runtime.NumGoroutine())
		if n := len(samples); n >= 5 && samples[n-1] >= samples[n-5] {
			break
		}
	}
	sorted := append([]int(nil), samples[len(samples)-3:]...)
	sort.Ints(sorted)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return sorted[0], ms.HeapInuse
}
