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
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
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
// answering 400). No request may fail while a valid
// token existed; requests without one get 503 token_unavailable; service
// recovers by itself after the outage; goroutines and heap end flat.
//
// `go test` runs 20 s of it (tokens of 14 s, an 8 s outage);
// ENTRAPROXY_SOAK=2m (make soak) runs the full 2 minutes (20 s tokens, a
// 30 s outage).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 s or more; skipped with -short")
	}
	total := 20 * time.Second
	if v := os.Getenv("ENTRAPROXY_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 20*time.Second {
			t.Fatalf("ENTRAPROXY_SOAK %q: want a duration of at least 20s, e.g. 2m", v)
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
	// the access log of thousands of requests would weigh on the heap.
	quiet := func(line []byte) bool { return !strings.Contains(string(line), `"level":"INFO"`) }
	p := startInProcess(t, true, quiet,
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
		"AZURE_CLIENT_ID", uniqueClientID(),
	)
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second}
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
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
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
	transport.CloseIdleConnections()
	fake.Reset() // the fake's request log lives in this process too
	baseG, baseHeap := soakQuiet()

	start := time.Now()
	end := start.Add(total)
	outageStart, outageEnd := start.Add(outageAt), start.Add(outageAt+outage)
	var (
		mu  sync.Mutex
		all []soakOp
		wg  sync.WaitGroup
	)
	for i := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for time.Now().Before(end) {
				o := ops[rng.IntN(len(ops))]()
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

	// Every failure must be a 503 token_unavailable that started when no
	// valid token existed: none issued by then, or all issued ones within
	// 10 s of expiry (what the proxy counts as expired). Half a second of
	// slack each way covers the time between the endpoint's answer and the
	// proxy holding the token.
	issued := identity.tokens()
	validAt := func(at time.Time) bool {
		for _, tok := range issued {
			if tok.at.Before(at.Add(-500*time.Millisecond)) && at.Before(tok.expiresOn.Add(-10*time.Second-500*time.Millisecond)) {
				return true
			}
		}
		return false
	}
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
		if o.status == http.StatusServiceUnavailable && o.code == "token_unavailable" && !validAt(o.start) {
			unavailable++
			continue
		}
		violations++
		if violations <= 10 {
			t.Errorf("%s at +%v (took %v) failed while a valid token existed or not with token_unavailable: status %d, code %q: %s",
				o.kind, o.start.Sub(start).Round(time.Millisecond), o.end.Sub(o.start).Round(time.Millisecond), o.status, o.code, o.err)
		}
	}
	if violations > 10 {
		t.Errorf("... %d failures in all", violations)
	}
	t.Logf("soak: %d operations %v, %d answered 503 token_unavailable while no valid token existed, %d other failures; %d tokens issued",
		len(all), counts, unavailable, violations, len(issued))
	if len(all) < 10*clients {
		t.Errorf("only %d operations in %v, want at least %d", len(all), total, 10*clients)
	}

	// Recovery: the first success after the outage comes soon, and nothing
	// fails after it.
	if firstOKAfterOutage.IsZero() {
		t.Fatalf("no request succeeded after the outage ended")
	}
	t.Logf("recovered %v after the outage ended", firstOKAfterOutage.Sub(outageEnd).Round(time.Millisecond))
	if d := firstOKAfterOutage.Sub(outageEnd); d > 10*time.Second {
		t.Errorf("first success %v after the outage ended, want within 10s", d)
	}
	for _, o := range all {
		if o.err != "" && o.start.After(firstOKAfterOutage.Add(time.Second)) {
			t.Errorf("%s at +%v failed after recovery: %s", o.kind, o.start.Sub(start).Round(time.Millisecond), o.err)
		}
	}

	// Flat: the same quiet state as after the warm-up, within a tolerance
	// far below one goroutine (or 4 KiB) per operation. What the test and
	// the fake kept about the operations is let go first.
	all, issued = nil, nil
	fake.Reset()
	transport.CloseIdleConnections()
	g, heap := soakQuiet()
	t.Logf("goroutines %d -> %d, heap in use %.1f -> %.1f MiB", baseG, g, float64(baseHeap)/(1<<20), float64(heap)/(1<<20))
	if g > baseG+25 {
		t.Errorf("goroutines %d after the soak, %d before: not flat", g, baseG)
	}
	if heap > baseHeap+16<<20 {
		t.Errorf("heap in use %d MiB after the soak, %d MiB before: not flat", heap>>20, baseHeap>>20)
	}
	if err := p.stop(); err != nil {
		t.Errorf("run = %v", err)
	}
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
