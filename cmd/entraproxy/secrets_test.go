package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// jwtShape is any JWT: base64url header starting {" (eyJ), claims,
// signature. No log line or proxy-made answer may hold one.
var jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}`)

// seenText collects, labelled, everything the clients received.
type seenText struct {
	items []struct{ label, text string }
}

func (s *seenText) add(label string, b []byte) {
	s.items = append(s.items, struct{ label, text string }{label, string(b)})
}

func (s *seenText) addResponse(label string, resp *http.Response, body []byte) {
	var h strings.Builder
	resp.Header.Write(&h)
	s.add(label+" headers", []byte(h.String()))
	s.add(label+" body", body)
}

// TestNoSecretInLogsOrResponses runs the whole program at debug level with
// the real managed identity credential against the fake Azure, through
// every path a token or key travels: REST with an auto-form 401 retry,
// server-sent events, WebSocket synthesis, redirects of both, refused
// requests, and a token failure. Then it scans every log line, response
// header and body for every token the identity endpoint issued (and its
// signature alone), the identity header, and every key or bearer the
// clients sent: zero hits, and no JWT-shaped string anywhere.
func TestNoSecretInLogsOrResponses(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{Settings: fakeazure.Settings{Auth: fakeazure.AuthAAD, TokenLifetime: 4 * time.Minute, SSEGap: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	identity := startRecordingIdentity(t, fake)

	const (
		gatewayKey = "gateway-key-9c2e51"
		wrongKey   = "wrong-gateway-key-77aa"
		clientJWT  = "eyJhbGciOiJub25lIn0.eyJjbGllbnQiOiJzZW50In0.Y2xpZW50LXNpZ25hdHVyZQ"
	)
	settings := []string{
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_LOG_LEVEL", "debug",
		"ENTRAPROXY_AUTH_FORMAT", "auto",
		"ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
		"ENTRAPROXY_REDIRECT_HOSTS", fake.RegionalHost(),
		"ENTRAPROXY_INBOUND_KEYS", gatewayKey,
		"AZURE_CLIENT_ID", uniqueClientID(),
	}
	p := startInProcess(t, true, nil, settings...)
	seen := &seenText{}
	client := &http.Client{Timeout: leakcheck.HangGuard}
	do := func(label, method, path, body string, header http.Header, wantStatus int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+p.listen+path, strings.NewReader(body))
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.addResponse(label, resp, b)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: status %d, want %d: %.200s", label, resp.StatusCode, wantStatus, b)
		}
		return b
	}
	ssml := fakeazure.SSML("Hello from the secrets test.")
	tts := http.Header{
		"Content-Type": {"application/ssml+xml"}, "X-Microsoft-Outputformat": {"riff-16khz-16bit-mono-pcm"},
		"Ocp-Apim-Subscription-Key": {gatewayKey}, "Authorization": {"Bearer " + clientJWT},
	}
	synthesize := func(label string) {
		t.Helper()
		// The key as a header, and a bearer repeated in the query, as the
		// JavaScript Speech SDK does with its headers.
		h := http.Header{"Ocp-Apim-Subscription-Key": {gatewayKey}, "X-Connectionid": {"5B7C0A3E2F1D4C6B8A9E0F1A2B3C4D5E"}}
		conn, resp, err := websocket.DefaultDialer.Dial("ws://"+p.listen+"/cognitiveservices/websocket/v1?X-ConnectionId=5B7C0A3E&Authorization=Bearer%20"+clientJWT, h)
		if err != nil {
			t.Fatalf("%s: dial: %v (%v)", label, err, resp)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard))
		audio, err := fakeazure.Synthesize(conn, "Hello over WebSocket.", "")
		if err != nil || len(audio) == 0 {
			t.Fatalf("%s: synthesize: %d bytes, %v", label, len(audio), err)
		}
		seen.add(label+" audio", audio)
		conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	}

	// REST synthesis: bearer first, the fake wants aad: 401, retried.
	if b := do("tts rest", http.MethodPost, "/cognitiveservices/v1", ssml, tts, 200); !strings.HasPrefix(string(b), "RIFF") {
		t.Errorf("tts rest: not a WAV")
	}
	do("voices", http.MethodGet, "/cognitiveservices/voices/list", "", http.Header{"Api-Key": {gatewayKey}}, 200)
	// Server-sent events from Azure OpenAI (bearer only: a retry the other way).
	sse := do("chat sse", http.MethodPost, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		`{"messages":[{"role":"user","content":"hi"}],"stream":true}`,
		http.Header{"Content-Type": {"application/json"}, "Api-Key": {gatewayKey}}, 200)
	if !strings.Contains(string(sse), "data: [DONE]") {
		t.Errorf("chat sse: no [DONE] in %.200s", sse)
	}
	synthesize("tts websocket")
	// Redirects, REST (307) and WebSocket (301), to the regional listener.
	s := fake.Settings()
	s.Redirect, s.RedirectREST = true, true
	if err := fake.Set(s); err != nil {
		t.Fatal(err)
	}
	do("tts rest redirected", http.MethodPost, "/cognitiveservices/v1", ssml, tts, 200)
	synthesize("tts websocket redirected")
	// Refused: no key, a wrong one (in the query), a browser origin.
	do("no key", http.MethodGet, "/cognitiveservices/voices/list", "", http.Header{"Authorization": {"Basic " + clientJWT}}, 401)
	do("wrong key", http.MethodGet, "/cognitiveservices/voices/list?subscription-key=x&Ocp-Apim-Subscription-Key="+wrongKey, "", nil, 401)
	do("origin", http.MethodGet, "/cognitiveservices/voices/list", "", http.Header{"Origin": {"https://evil.example"}, "Api-Key": {gatewayKey}}, 403)
	do("metrics", http.MethodGet, "/cognitiveservices/voices/list", "", http.Header{"Api-Key": {gatewayKey}}, 200)
	adminGet := func(label, path string) {
		resp, err := client.Get("http://" + p.admin + path)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.addResponse(label, resp, b)
	}
	adminGet("readyz", "/readyz")
	adminGet("metrics", "/metrics")
	if err := p.stop(); err != nil {
		t.Errorf("first proxy: run = %v", err)
	}

	// A token failure: a second proxy whose identity endpoint refuses.
	identity.setFail("400")
	p2 := startInProcess(t, false, nil, append(settings, "AZURE_CLIENT_ID", uniqueClientID())...)
	// The failed fetch, logged: the 503s below come from it (and not
	// from a wait that ran out first), and the scan sees its line.
	p2.logs.waitFor(t, "the second proxy's failed fetch", func(log string) bool {
		return strings.Contains(log, `"msg":"token fetch failed"`)
	})
	do2 := func(label, path string, wantStatus int) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p2.listen+path, nil)
		req.Header.Set("Ocp-Apim-Subscription-Key", gatewayKey)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.addResponse(label, resp, b)
		if resp.StatusCode != wantStatus {
			t.Errorf("%s: status %d, want %d: %s", label, resp.StatusCode, wantStatus, b)
		}
	}
	do2("token failure", "/cognitiveservices/voices/list", 503)
	adminGet = func(label, path string) {
		resp, err := client.Get("http://" + p2.admin + path)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.addResponse(label, resp, b)
	}
	adminGet("readyz without token", "/readyz")
	if err := p2.stop(); err != nil {
		t.Errorf("second proxy: run = %v", err)
	}

	// The scan.
	issued := identity.tokens()
	if len(issued) < 2 {
		t.Fatalf("the identity endpoint issued %d tokens, want at least 2 (first, and the renewal after the 401)", len(issued))
	}
	secrets := []string{fake.IdentityHeader(), gatewayKey, wrongKey, clientJWT}
	for _, tok := range issued {
		secrets = append(secrets, tok.token, tok.token[strings.LastIndexByte(tok.token, '.')+1:])
	}
	places := []struct{ label, text string }{}
	for i, line := range strings.Split(p.logs.String()+p2.logs.String(), "\n") {
		places = append(places, struct{ label, text string }{fmt.Sprintf("log line %d", i+1), line})
	}
	places = append(places, seen.items...)
	hits := 0
	for _, pl := range places {
		for _, sec := range secrets {
			if strings.Contains(pl.text, sec) {
				hits++
				t.Errorf("%s holds a secret (%.6s...): %.300s", pl.label, sec, pl.text)
			}
		}
		if m := jwtShape.FindString(pl.text); m != "" {
			hits++
			t.Errorf("%s holds a JWT-shaped string %.12s...", pl.label, m)
		}
	}
	t.Logf("scanned %d log lines and %d response parts for %d secrets: %d hits", strings.Count(p.logs.String()+p2.logs.String(), "\n"), len(seen.items), len(secrets), hits)

	// The scan saw what it should have: each scenario left its trace.
	logs := p.logs.String()
	for _, want := range []string{`"msg":"token acquired"`, `"level":"DEBUG"`, `"path":"/cognitiveservices/v1","status":200`,
		`"msg":"websocket"`, `"status":101`, `"error":"inbound_key_invalid"`, `"error":"origin_not_allowed"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("first proxy's log lacks %s", want)
		}
	}
	if !strings.Contains(p2.logs.String(), `"msg":"token fetch failed"`) {
		t.Errorf("second proxy's log lacks the failed fetch")
	}
	var regional, retried int
	for _, r := range fake.Requests() {
		if r.Listener == "regional" && (r.Status == 200 || r.Status == 101) {
			regional++
		}
		if r.Status == http.StatusUnauthorized {
			retried++
		}
	}
	if regional < 2 || retried == 0 {
		t.Errorf("fake saw %d regional successes and %d 401s, want both redirects followed and a 401 retried", regional, retried)
	}
}
