package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/proxy/internal/wsrelay"

	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testport"
	"github.com/entraproxy/entraproxy/internal/wstest"
)

const (
	// wsSpeechPath is the regional TTS path a Speech SDK uses against a
	// plain host; the custom domain serves it under /tts.
	wsSpeechPath       = "/cognitiveservices/websocket/v1"
	wsMappedSpeechPath = "/tts" + wsSpeechPath
	// wsWait bounds every wait in these tests, so a bug fails a test
	// instead of hanging the package. It is a hang guard, never a verdict
	// about speed: no working proxy takes this long for anything these
	// tests do, even under -race on a loaded 2-core machine (where a 15 MiB
	// message once took more than 10 s).
	wsWait = 2 * time.Minute
)

// wsUpstreamUpgrade accepts a handshake as a Speech service would: it
// offers the USP subprotocol. Origin is not its business (the proxy checks
// it).
func wsUpstreamUpgrade(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	u := websocket.Upgrader{Subprotocols: []string{"USP"}, CheckOrigin: func(*http.Request) bool { return true }}
	c, err := u.Upgrade(w, r, nil)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(2 * wsWait))
	}
	return c, err
}

// wsAcceptor is an upstream handler that accepts every handshake and hands
// the upstream end of the session to the test, which drives it from there.
type wsAcceptor struct {
	conns chan *websocket.Conn

	mu  sync.Mutex
	all []*websocket.Conn
}

func newWSAcceptor(t *testing.T) *wsAcceptor {
	a := &wsAcceptor{conns: make(chan *websocket.Conn, 256)}
	t.Cleanup(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, c := range a.all {
			c.Close()
		}
	})
	return a
}

func (a *wsAcceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := wsUpstreamUpgrade(w, r)
	if err != nil {
		return
	}
	a.mu.Lock()
	a.all = append(a.all, c)
	a.mu.Unlock()
	a.conns <- c
}

// next is the upstream end of the next session.
func (a *wsAcceptor) next(t *testing.T) *websocket.Conn {
	t.Helper()
	return wsRecv(t, "upstream session", a.conns)
}

func (e *fixture) tryDial(path string, h http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: wsWait, Subprotocols: []string{"USP"}}
	c, resp, err := d.Dial(e.wsURL+path, h)
	if c != nil {
		c.SetReadDeadline(time.Now().Add(2 * wsWait))
	}
	return c, resp, err
}

// dial opens a client session through the proxy.
func (e *fixture) dial(t *testing.T, path string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := e.tryDial(path, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open is dial plus the upstream end of the same session.
func (e *fixture) open(t *testing.T, path string, h http.Header) (client, upstream *websocket.Conn) {
	t.Helper()
	client = e.dial(t, path, h)
	return client, e.acceptor.next(t)
}

// rawUpgrade sends a WebSocket upgrade with plain net/http, for answers
// that are not 101: it reads the body exactly as a client would, bounded by
// Content-Length.
func (e *fixture) rawUpgrade(t *testing.T, method, path string, edit func(http.Header)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if edit != nil {
		edit(req.Header)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wsWait}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("%s %s: 101 Switching Protocols, want a refusal", method, path)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body of %d (Content-Length %d, got %d bytes): %v", method, path, resp.StatusCode, resp.ContentLength, len(body), err)
	}
	return resp, body
}

// wsWantError checks a proxy-made refusal. status is the README's status
// for code; a WebSocket handshake (resp.Request a GET with Upgrade:
// websocket) is answered 400 (for a 4xx) or 502 (for a 5xx), origin
// refusals keep their 403, so that the native Speech SDK shows the message,
// which the reason phrase carries (TestHandshakeRefusalReasonPhrase).
func wsWantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	handshake := resp.Request != nil && resp.Request.Method == http.MethodGet && strings.EqualFold(resp.Request.Header.Get("Upgrade"), "websocket")
	want := status
	switch {
	case !handshake, code == "origin_not_allowed":
	case status < 500:
		want = http.StatusBadRequest
	default:
		want = http.StatusBadGateway
	}
	if resp.StatusCode != want {
		t.Errorf("status = %d, want %d for a request refused with %d %s (body %s)", resp.StatusCode, want, status, code, body)
	}
	if prefix := fmt.Sprintf("%d entraproxy %s: ", want, code); handshake && !strings.HasPrefix(resp.Status, prefix) {
		t.Errorf("status line = %q, want it to start with %q", resp.Status, prefix)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	var envelope struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		t.Fatalf("body %q is not the JSON error envelope: %v", body, err)
	}
	if envelope.Error.Code != code {
		t.Errorf("error code = %q, want %q (message %q)", envelope.Error.Code, code, envelope.Error.Message)
	}
}

func wsWantClose(t *testing.T, who string, err error, code int, text string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Errorf("%s: read error = %v, want close %d %q", who, err, code, text)
		return
	}
	if ce.Code != code || ce.Text != text {
		t.Errorf("%s: close = %d %q, want %d %q", who, ce.Code, ce.Text, code, text)
	}
}

func wsRecv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wsWait):
		t.Fatalf("%s: nothing after %v", what, wsWait)
		panic("unreachable")
	}
}

// wsReadUntilError reads and drops messages until the connection ends.
func wsReadUntilError(c *websocket.Conn) error {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

// wsEcho relays c's messages back until the connection ends.
func wsEcho(c *websocket.Conn) error {
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if err := c.WriteMessage(mt, msg); err != nil {
			return err
		}
	}
}

// wsRoundTrip sends msg from one end and checks it arrives unchanged at the
// other.
func wsRoundTrip(t *testing.T, from, to *websocket.Conn, typ int, msg []byte, dir string) {
	t.Helper()
	if err := from.WriteMessage(typ, msg); err != nil {
		t.Fatalf("%s: write: %v", dir, err)
	}
	gotType, got, err := to.ReadMessage()
	if err != nil {
		t.Fatalf("%s: read: %v", dir, err)
	}
	if gotType != typ {
		t.Errorf("%s: message type = %d, want %d", dir, gotType, typ)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("%s: got %d bytes, want the %d bytes sent (first difference at %d)", dir, len(got), len(msg), wsFirstDiff(got, msg))
	}
}

func wsFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// wsSessionsDone waits until the proxy serves no upgrade request, so every
// session has logged its line.
func wsSessionsDone(t *testing.T, p *Proxy) {
	t.Helper()
	p.ws.mu.Lock()
	n, idle := p.ws.inflight, p.ws.idle
	p.ws.mu.Unlock()
	if n == 0 {
		return
	}
	select {
	case <-idle:
	case <-time.After(wsWait):
		t.Fatalf("%d WebSocket sessions still live after %v", n, wsWait)
	}
}

// wsEventually polls cond, for state that no channel or log line announces
// (a field of the proxy, the goroutine count). wsWait only turns a state that
// never comes into a failure.
func wsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wsWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v", what, wsWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wsUSPAudio is a USP binary audio message (docs/SPEECH-SDK-WIRE.md, USP framing) of
// exactly size bytes: 2-byte header length, headers, PCM.
func wsUSPAudio(size int) []byte {
	headers := "Path: audio\r\nX-RequestId: 5b7c0a3e2f1d4c6b8a9e0f1a2b3c4d5e\r\nX-StreamId: 1\r\nContent-Type: audio/x-wav\r\n"
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(headers)))
	msg = append(msg, headers...)
	for i := 0; len(msg) < size; i++ {
		msg = append(msg, byte(i*7), byte(i>>3)) // a 16-bit sample, little endian
	}
	return msg[:size]
}

func TestWebSocketHandshakeHeaders(t *testing.T) {
	tests := []struct {
		name     string
		format   AuthFormat
		wantAuth string
	}{
		{"bearer", FormatBearer, "Bearer " + plantedToken},
		{"aad", FormatAAD, "Bearer aad#" + plantedResourceID + "#" + plantedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) { o.AuthFormat = tc.format })
			// What the JavaScript Speech SDK sends with a dummy key, plus an
			// inbound Authorization, an api-key and a spoofed forwarding header.
			h := http.Header{}
			h.Set("Ocp-Apim-Subscription-Key", "dummy")
			h.Set("Api-Key", "dummy")
			h.Set("Authorization", "Bearer dummy")
			h.Set("X-ConnectionId", "abc")
			h.Set("User-Agent", "SpeechSDK-JS/1.52 (entraproxy test)")
			h.Set("X-Forwarded-For", "203.0.113.9")
			client, _ := env.open(t, wsSpeechPath+"?Ocp-Apim-Subscription-Key=dummy&X-ConnectionId=abc", h)

			if got := client.Subprotocol(); got != "USP" {
				t.Errorf("client subprotocol = %q, want USP", got)
			}
			seen := env.upstream.seen.all()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d handshakes, want 1", len(seen))
			}
			hs := seen[0]
			if hs.host != env.upstream.host {
				t.Errorf("Host = %q, want %q", hs.host, env.upstream.host)
			}
			if got := hs.header.Values("Authorization"); len(got) != 1 || got[0] != tc.wantAuth {
				t.Errorf("Authorization = %q, want exactly [%q]", got, tc.wantAuth)
			}
			if hs.path != wsMappedSpeechPath {
				t.Errorf("path = %q, want %q", hs.path, wsMappedSpeechPath)
			}
			if hs.rawQuery != "X-ConnectionId=abc" {
				t.Errorf("query = %q, want %q", hs.rawQuery, "X-ConnectionId=abc")
			}
			if got := hs.header.Get("X-ConnectionId"); got != "abc" {
				t.Errorf("X-ConnectionId = %q, want abc", got)
			}
			if got := hs.header.Get("User-Agent"); got != h.Get("User-Agent") {
				t.Errorf("User-Agent = %q, want %q", got, h.Get("User-Agent"))
			}
			if got := hs.header.Get("Sec-Websocket-Protocol"); got != "USP" {
				t.Errorf("Sec-WebSocket-Protocol = %q, want USP", got)
			}
			for k, vs := range hs.header {
				if strings.EqualFold(k, "Ocp-Apim-Subscription-Key") || strings.EqualFold(k, "Api-Key") || strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" {
					t.Errorf("upstream got header %s: %q, want none", k, vs)
				}
				for _, v := range vs {
					if strings.Contains(v, "dummy") || strings.Contains(v, "203.0.113.9") {
						t.Errorf("upstream got %s: %q, which repeats a client credential or address", k, v)
					}
				}
			}
		})
	}
}

// A client's Connection field names the fields of its own hop, which the
// proxy drops; naming Authorization must not take away the proxy's token
// (RFC 9110 section 7.6.1 lets a sender list any field there).
func TestWebSocketConnectionCannotDropAuthorization(t *testing.T) {
	tests := []struct {
		name       string
		connection []string // the Connection lines, in order
		clientAuth string   // the client's own Authorization, if any
	}{
		{"Upgrade, Authorization", []string{"Upgrade, Authorization"}, ""},
		{"authorization first, lower case", []string{"authorization, upgrade"}, "Bearer client-token"},
		{"a second Connection line", []string{"Upgrade", "Authorization"}, "Bearer client-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) { o.AuthFormat = FormatBearer })
			conn, err := net.Dial("tcp", env.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var req strings.Builder
			fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", wsSpeechPath, env.front.Listener.Addr())
			for _, c := range tc.connection {
				fmt.Fprintf(&req, "Connection: %s\r\n", c)
			}
			if tc.clientAuth != "" {
				fmt.Fprintf(&req, "Authorization: %s\r\n", tc.clientAuth)
			}
			req.WriteString("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			if _, err := io.WriteString(conn, req.String()); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status = %s, want 101", resp.Status)
			}
			env.acceptor.next(t)
			seen := env.upstream.seen.all()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d handshakes, want 1", len(seen))
			}
			if got, want := seen[0].header.Values("Authorization"), "Bearer "+plantedToken; len(got) != 1 || got[0] != want {
				t.Errorf("upstream Authorization = %q, want exactly [%q]", got, want)
			}
		})
	}
}

func TestWebSocketFramesRoundTrip(t *testing.T) {
	env := newWSFixture(t, nil, nil)
	client, upstream := env.open(t, wsSpeechPath, nil)

	big := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		typ  int
		msg  []byte
	}{
		{"usp text", websocket.TextMessage, []byte("Path: speech.config\r\nX-RequestId: 5b7c0a3e2f1d4c6b8a9e0f1a2b3c4d5e\r\nX-Timestamp: 2026-07-01T10:00:00.000Z\r\nContent-Type: application/json\r\n\r\n{\"context\":{\"system\":{\"version\":\"1.52.0\"}}}")},
		{"usp text, empty body", websocket.TextMessage, []byte("Path: turn.end\r\nX-RequestId: 5b7c0a3e2f1d4c6b8a9e0f1a2b3c4d5e\r\n\r\n")},
		{"empty text", websocket.TextMessage, []byte{}},
		{"utf-8 text", websocket.TextMessage, []byte("Grüße, 世界 👋")},
		{"usp audio 3200 bytes", websocket.BinaryMessage, wsUSPAudio(3200)},
		{"empty binary", websocket.BinaryMessage, []byte{}},
		{"binary 1 MiB", websocket.BinaryMessage, big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wsRoundTrip(t, client, upstream, tc.typ, tc.msg, "client to upstream")
			wsRoundTrip(t, upstream, client, tc.typ, tc.msg, "upstream to client")
		})
	}
}

func TestWebSocketCloseCodesPassBothWays(t *testing.T) {
	tests := []struct {
		code   int
		reason string
	}{
		{websocket.CloseNormalClosure, "synthesis done"},
		{websocket.CloseGoingAway, "app exiting"},
		{4000, "application specific"},
	}
	for _, tc := range tests {
		t.Run("client closes "+strconv.Itoa(tc.code), func(t *testing.T) {
			env := newWSFixture(t, nil, nil)
			client, upstream := env.open(t, wsSpeechPath, nil)
			if err := client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(tc.code, tc.reason), time.Now().Add(wsWait)); err != nil {
				t.Fatal(err)
			}
			_, _, err := upstream.ReadMessage()
			wsWantClose(t, "upstream", err, tc.code, tc.reason)
			// The proxy answers the close, as the protocol asks.
			_, _, err = client.ReadMessage()
			wsWantClose(t, "client", err, tc.code, "")
		})
		t.Run("upstream closes "+strconv.Itoa(tc.code), func(t *testing.T) {
			env := newWSFixture(t, nil, nil)
			client, upstream := env.open(t, wsSpeechPath, nil)
			if err := upstream.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(tc.code, tc.reason), time.Now().Add(wsWait)); err != nil {
				t.Fatal(err)
			}
			_, _, err := client.ReadMessage()
			wsWantClose(t, "client", err, tc.code, tc.reason)
			_, _, err = upstream.ReadMessage()
			wsWantClose(t, "upstream", err, tc.code, "")
		})
	}
}

func TestWebSocketTokenUnavailable(t *testing.T) {
	env := newWSFixture(t, nil, nil)
	env.tokens.setErr(errors.New("managed identity: no endpoint answered"))

	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	wsWantError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
	if n := env.upstream.conns.Load(); n != 0 {
		t.Errorf("upstream connections = %d, want 0", n)
	}
}

func TestWebSocketBadUpgradeRefusedBeforeDial(t *testing.T) {
	tests := []struct {
		name   string
		method string
		edit   func(http.Header)
	}{
		{"POST", http.MethodPost, nil},
		{"missing key", http.MethodGet, func(h http.Header) { h.Del("Sec-WebSocket-Key") }},
		{"version 8", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }},
		{"Connection without Upgrade", http.MethodGet, func(h http.Header) { h.Set("Connection", "keep-alive") }},
		// gorilla refuses a key that is not 16 bytes in base64, after
		// koding has dialed the upstream.
		{"key of 3 bytes", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Key", "YWJj") }},
		{"key not base64", http.MethodGet, func(h http.Header) { h.Set("Sec-WebSocket-Key", "not base64 at all!!!!!!!") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, nil)
			resp, body := env.rawUpgrade(t, tc.method, wsSpeechPath, tc.edit)
			wsWantError(t, resp, body, http.StatusBadRequest, "bad_request")
			if n := env.upstream.conns.Load(); n != 0 {
				t.Errorf("upstream connections = %d, want 0", n)
			}
		})
	}
}

// wsRedirectTo answers every request with a 301 to the same path on base.
func wsRedirectTo(base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

func TestWebSocketHandshakeRedirect(t *testing.T) {
	t.Run("allowed host is followed with the token", func(t *testing.T) {
		second := newWSAcceptor(t)
		secondUp := newTestUpstream(t, second)
		env := newWSFixture(t, newTestUpstream(t, wsRedirectTo(secondUp.URL)), func(o *Options) {
			o.RedirectHosts = []string{secondUp.host}
		})
		client := env.dial(t, wsSpeechPath+"?X-ConnectionId=abc", nil)
		upstream := second.next(t)

		if n := len(env.upstream.seen.all()); n != 1 {
			t.Errorf("first upstream saw %d handshakes, want 1", n)
		}
		seen := secondUp.seen.all()
		if len(seen) != 1 {
			t.Fatalf("second upstream saw %d handshakes, want 1", len(seen))
		}
		if got := seen[0].header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+plantedToken {
			t.Errorf("second upstream Authorization = %q, want [%q]", got, "Bearer "+plantedToken)
		}
		if seen[0].host != secondUp.host {
			t.Errorf("second upstream Host = %q, want %q", seen[0].host, secondUp.host)
		}
		if seen[0].path != wsMappedSpeechPath || seen[0].rawQuery != "X-ConnectionId=abc" {
			t.Errorf("second upstream URL = %s?%s, want %s?X-ConnectionId=abc", seen[0].path, seen[0].rawQuery, wsMappedSpeechPath)
		}
		wsRoundTrip(t, client, upstream, websocket.TextMessage, []byte("hello"), "client to upstream")
		wsRoundTrip(t, upstream, client, websocket.BinaryMessage, wsUSPAudio(3200), "upstream to client")
	})

	t.Run("other host is refused", func(t *testing.T) {
		other := newTestUpstream(t, newWSAcceptor(t))
		env := newWSFixture(t, newTestUpstream(t, wsRedirectTo(other.URL)), func(o *Options) {
			o.RedirectHosts = []string{"*.cognitiveservices.azure.com"}
		})
		resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
		wsWantError(t, resp, body, http.StatusBadGateway, "redirect_not_allowed")
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("Location = %q reached the client, want none", loc)
		}
		if n := other.conns.Load(); n != 0 {
			t.Errorf("disallowed upstream connections = %d, want 0", n)
		}
	})

	t.Run("redirect loop ends", func(t *testing.T) {
		var self *testUpstream
		self = newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wsRedirectTo(self.URL).ServeHTTP(w, r)
		}))
		env := newWSFixture(t, self, func(o *Options) { o.RedirectHosts = []string{self.host} })
		resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
		wsWantError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
		if got, want := len(self.seen.all()), 1+maxRedirects; got != want {
			t.Errorf("upstream saw %d handshakes, want %d", got, want)
		}
	})
}

func TestWebSocketHandshakeFailurePassThrough(t *testing.T) {
	large := strings.Repeat("quota exceeded. ", 128) // 2 KiB
	tests := []struct {
		name     string
		status   int
		body     string
		header   map[string]string
		wantBody string
	}{
		{"403 small body", http.StatusForbidden, `{"error":{"code":"403","message":"Forbidden"}}`, nil, `{"error":{"code":"403","message":"Forbidden"}}`},
		// gorilla keeps the first 1 KiB of a failed handshake's body.
		{"403 body over 1 KiB", http.StatusForbidden, large, nil, large[:1024]},
		{"429 with Retry-After", http.StatusTooManyRequests, "slow down", map[string]string{"Retry-After": "7"}, "slow down"},
		{"404 empty body", http.StatusNotFound, "", nil, ""},
		{"401 under bearer", http.StatusUnauthorized, "bad token", map[string]string{"Www-Authenticate": "Bearer"}, "bad token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("Content-Length", strconv.Itoa(len(tc.body)))
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			env := newWSFixture(t, up, nil)
			resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if string(body) != tc.wantBody {
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
			if got, want := resp.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
				t.Errorf("Content-Length = %q, want %q (the body sent)", got, want)
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestWebSocketUpstreamUnreachable(t *testing.T) {
	// A held port, not a closed listener's: no other test or process can be
	// given it and answer.
	refusing := testport.Reserve(t).Addr()
	env := newWSFixture(t, nil, func(o *Options) { o.Upstream = &url.URL{Scheme: "http", Host: refusing} })

	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	wsWantError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
}

// wsSilentListener accepts TCP connections and never answers.
func wsSilentListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

func TestWebSocketUpstreamHandshakeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, accepted := wsSilentListener(t)
	env := newWSFixture(t, nil, func(o *Options) {
		o.Upstream = &url.URL{Scheme: "http", Host: addr}
		o.UpstreamTimeout = timeout
	})

	// The silent upstream never answers, so the 504 itself shows that the
	// timeout fired; how long after the timeout the answer came is the
	// machine's business. It cannot come before.
	start := time.Now()
	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	elapsed := time.Since(start)
	wsWantError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
	if elapsed < timeout {
		t.Errorf("answered after %v, before the upstream timeout %v", elapsed, timeout)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("silent upstream accepted %d connections, want 1", n)
	}
}

func TestWebSocketAutoRetryLearnsAADForm(t *testing.T) {
	acceptor := newWSAcceptor(t)
	aadPrefix := "Bearer aad#" + plantedResourceID + "#"
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), aadPrefix) {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "this resource wants the aad# form", http.StatusUnauthorized)
			return
		}
		acceptor.ServeHTTP(w, r)
	}))
	env := newWSFixture(t, up, func(o *Options) { o.AuthFormat = FormatAuto })

	first := env.dial(t, wsSpeechPath, nil)
	firstUp := acceptor.next(t)
	seen := up.seen.all()
	if len(seen) != 2 {
		t.Fatalf("upstream saw %d handshakes, want 2 (bearer, then aad)", len(seen))
	}
	if got, want := seen[0].header.Get("Authorization"), "Bearer "+plantedToken; got != want {
		t.Errorf("first try Authorization = %q, want %q", got, want)
	}
	if got, want := seen[1].header.Get("Authorization"), aadPrefix+renewedToken; got != want {
		t.Errorf("retry Authorization = %q, want %q", got, want)
	}
	if n := env.tokens.renewCount(); n != 1 {
		t.Errorf("Renew called %d times, want 1", n)
	}
	wsRoundTrip(t, first, firstUp, websocket.TextMessage, []byte("first"), "first session")

	// The next session, opened while the first is still live (Speech
	// sessions last), goes aad first.
	second := env.dial(t, wsSpeechPath, nil)
	secondUp := acceptor.next(t)
	seen = up.seen.all()
	if len(seen) != 3 {
		t.Fatalf("upstream saw %d handshakes after the second session, want 3", len(seen))
	}
	if got, want := seen[2].header.Get("Authorization"), aadPrefix+renewedToken; got != want {
		t.Errorf("second session Authorization = %q, want %q", got, want)
	}
	if n := env.tokens.renewCount(); n != 1 {
		t.Errorf("Renew called %d times, want still 1", n)
	}
	wsRoundTrip(t, second, secondUp, websocket.TextMessage, []byte("second"), "second session")
}

// The retry's form is learned from any answer but another 401, as on HTTP:
// a 404 to the aad retry (a path the resource does not serve) still says
// the upstream took the aad form, so the next handshake starts with it.
func TestWebSocketRetryRefusedOtherwiseStillTeachesTheForm(t *testing.T) {
	aadPrefix := "Bearer aad#" + plantedResourceID + "#"
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), aadPrefix) {
			http.Error(w, "this resource wants the aad# form", http.StatusUnauthorized)
			return
		}
		http.Error(w, "no such path", http.StatusNotFound)
	}))
	env := newWSFixture(t, up, func(o *Options) { o.AuthFormat = FormatAuto })
	for range 2 {
		resp, _ := env.rawUpgrade(t, http.MethodGet, "/stt/nowhere", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status = %d, want the upstream's 404", resp.StatusCode)
		}
	}
	var forms []string
	for _, h := range up.seen.all() {
		forms = append(forms, strings.SplitN(h.header.Get("Authorization"), "#", 2)[0])
	}
	if want := []string{"Bearer " + plantedToken, "Bearer aad", "Bearer aad"}; !slices.Equal(forms, want) {
		t.Errorf("handshakes carried %q, want %q (bearer, the aad retry, then aad first)", forms, want)
	}
}

func TestWebSocketOriginCheckedBeforeDial(t *testing.T) {
	const allowed = "http://localhost:3000"
	t.Run("foreign origin refused", func(t *testing.T) {
		env := newWSFixture(t, nil, func(o *Options) { o.AllowedOrigins = []string{allowed} })
		resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, func(h http.Header) {
			h.Set("Origin", "https://evil.example")
		})
		wsWantError(t, resp, body, http.StatusForbidden, "origin_not_allowed")
		if n := env.upstream.conns.Load(); n != 0 {
			t.Errorf("upstream connections = %d, want 0", n)
		}
	})
	t.Run("allowed origin passes", func(t *testing.T) {
		env := newWSFixture(t, nil, func(o *Options) { o.AllowedOrigins = []string{allowed} })
		client, upstream := env.open(t, wsSpeechPath, http.Header{"Origin": {allowed}})
		wsRoundTrip(t, client, upstream, websocket.TextMessage, []byte("hi"), "client to upstream")
	})
}

func TestWebSocketShutdownClosesLiveSessions(t *testing.T) {
	const n = 50
	env := newWSFixture(t, nil, nil)
	clientEnded := make(chan error, n)
	upstreamEnded := make(chan error, n)
	for range n {
		client, upstream := env.open(t, wsSpeechPath, nil)
		go func() { clientEnded <- wsReadUntilError(client) }()
		go func() { upstreamEnded <- wsReadUntilError(upstream) }()
	}

	// nil, not DeadlineExceeded: every session closed cleanly, none had
	// to be cut. The deadline only guards against a hang.
	ctx, cancel := context.WithTimeout(context.Background(), wsWait)
	defer cancel()
	if err := env.proxy.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	for range n {
		wsWantClose(t, "client", wsRecv(t, "client end", clientEnded), websocket.CloseGoingAway, "")
	}
	for range n {
		wsWantClose(t, "upstream", wsRecv(t, "upstream end", upstreamEnded), websocket.CloseGoingAway, wsrelay.GoingAwayReason)
	}

	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	wsWantError(t, resp, body, http.StatusServiceUnavailable, "shutting_down")
}

func TestWebSocketShutdownWaitsForFrameBoundary(t *testing.T) {
	env := newWSFixture(t, nil, nil)
	client, upstream := env.open(t, wsSpeechPath, nil)
	sess := wsOnlySession(t, env.proxy)

	payload := wsUSPAudio(1 << 20)
	frame := wstest.Frame(true, opBinary, payload, wstest.Key)
	half := len(frame) / 2
	raw := client.NetConn()
	wrote := make(chan error, 1)
	go func() { _, err := raw.Write(frame[:half]); wrote <- err }()
	if err := wsRecv(t, "write first half", wrote); err != nil {
		t.Fatal(err)
	}
	wsEventually(t, "proxy read the frame's header", func() bool { return sess.Stats().FramesIn == 1 })

	shutdownDone := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wsWait)
	defer cancel()
	go func() { shutdownDone <- env.proxy.Shutdown(ctx) }()
	wsEventually(t, "shutdown begun", func() bool {
		env.proxy.ws.mu.Lock()
		defer env.proxy.ws.mu.Unlock()
		return env.proxy.ws.closing
	})

	// Shutdown has begun: a new session is refused.
	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	wsWantError(t, resp, body, http.StatusServiceUnavailable, "shutting_down")
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v while the client was mid-frame", err)
	default:
	}

	if _, err := raw.Write(frame[half:]); err != nil {
		t.Fatal(err)
	}
	typ, got, err := upstream.ReadMessage()
	if err != nil {
		t.Fatalf("upstream read: %v, want the whole message", err)
	}
	if typ != websocket.BinaryMessage || !bytes.Equal(got, payload) {
		t.Errorf("upstream got type %d, %d bytes, want binary, the %d bytes sent", typ, len(got), len(payload))
	}
	_, _, err = upstream.ReadMessage()
	wsWantClose(t, "upstream", err, websocket.CloseGoingAway, wsrelay.GoingAwayReason)
	_, _, err = client.ReadMessage()
	wsWantClose(t, "client", err, websocket.CloseGoingAway, "")
	if err := wsRecv(t, "Shutdown", shutdownDone); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
}

func TestWebSocketShutdownTimeoutCutsSessions(t *testing.T) {
	env := newWSFixture(t, nil, nil)
	client, upstream := env.open(t, wsSpeechPath, nil)
	sess := wsOnlySession(t, env.proxy)
	// Half a frame, and never the rest: no boundary for the 1001.
	frame := wstest.Frame(true, opBinary, make([]byte, 4096), wstest.Key)
	if _, err := client.NetConn().Write(frame[:100]); err != nil {
		t.Fatal(err)
	}
	wsEventually(t, "proxy read the frame's header", func() bool { return sess.Stats().FramesIn == 1 })

	// The frame never completes, so only the deadline can end Shutdown:
	// DeadlineExceeded shows it did, however late the machine ran it.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := env.proxy.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
	wsSessionsDone(t, env.proxy)
	if _, _, err := client.ReadMessage(); err == nil {
		t.Errorf("client read after the cut: nil error, want the connection gone")
	}
	if _, _, err := upstream.ReadMessage(); err == nil {
		t.Errorf("upstream read after the cut: nil error, want the connection gone")
	}
	// The proxy ended it, not the client: koding's read error after the
	// cut must not pass for the client's drop.
	env.logs.waitFor(t, "the session's log line", func() bool { return len(env.logs.sessionLines(t)) == 1 })
	if line := env.logs.sessionLines(t)[0]; line.ClosedBy != "proxy" || line.CloseCode != 1006 {
		t.Errorf("session logged closed_by %q close_code %d, want proxy 1006", line.ClosedBy, line.CloseCode)
	}
}

func wsOnlySession(t *testing.T, p *Proxy) *wsrelay.Session {
	t.Helper()
	p.ws.mu.Lock()
	defer p.ws.mu.Unlock()
	if len(p.ws.sessions) != 1 {
		t.Fatalf("%d live sessions, want 1", len(p.ws.sessions))
	}
	for s := range p.ws.sessions {
		return s
	}
	return nil
}

func TestWebSocketDroppedSessionsDoNotLeak(t *testing.T) {
	var upstreamSaw sync.Map // how each side saw the other drop, for the log
	var handlers sync.WaitGroup
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := wsUpstreamUpgrade(w, r)
		if err != nil {
			return
		}
		defer c.Close()
		if r.URL.Path == "/drop-upstream" {
			if mt, msg, err := c.ReadMessage(); err == nil {
				c.WriteMessage(mt, msg)
			}
			c.NetConn().Close() // no close frame
			return
		}
		upstreamSaw.LoadOrStore("client drop", wsEcho(c))
	}))
	env := newWSFixture(t, up, func(o *Options) { o.SpeechPaths = false })

	session := func(path string) error {
		c, _, err := env.tryDial(path, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.BinaryMessage, wsUSPAudio(3200)); err != nil {
			return err
		}
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
		if path == "/drop-client" {
			return c.NetConn().Close() // no close frame
		}
		upstreamSaw.LoadOrStore("upstream drop (client side)", wsReadUntilError(c))
		return nil
	}
	settle := func() {
		wsSessionsDone(t, env.proxy)
		handlers.Wait()
	}

	// One of each first, so lazily started runtime machinery is in the
	// baseline.
	for _, path := range []string{"/drop-client", "/drop-upstream"} {
		if err := session(path); err != nil {
			t.Fatalf("warm-up %s: %v", path, err)
		}
	}
	base := leakcheck.Quiet(t, settle)

	const perSide, workers = 100, 8
	paths := make(chan string, 2*perSide)
	for i := range 2 * perSide {
		paths <- []string{"/drop-client", "/drop-upstream"}[i%2]
	}
	close(paths)
	errs := make(chan error, 2*perSide)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range paths {
				if err := session(p); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("session: %v", err)
	}
	leakcheck.Check(t, fmt.Sprintf("after %d dropped sessions", 2*perSide), base, 0, settle)
	upstreamSaw.Range(func(k, v any) bool {
		t.Logf("%s: %v", k, v)
		return true
	})
}

func TestWebSocketSessionLog(t *testing.T) {
	tests := []struct {
		name         string
		end          func(t *testing.T, env *fixture, client, upstream *websocket.Conn)
		wantCode     int
		wantClosedBy string
	}{
		{"client closes", func(t *testing.T, env *fixture, client, upstream *websocket.Conn) {
			client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "done"), time.Now().Add(wsWait))
			_, _, err := upstream.ReadMessage()
			wsWantClose(t, "upstream", err, 1000, "done")
		}, 1000, "client"},
		{"upstream closes", func(t *testing.T, env *fixture, client, upstream *websocket.Conn) {
			upstream.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(wsWait))
			_, _, err := client.ReadMessage()
			wsWantClose(t, "client", err, 4000, "bye")
		}, 4000, "upstream"},
		{"shutdown", func(t *testing.T, env *fixture, client, upstream *websocket.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), wsWait)
			defer cancel()
			if err := env.proxy.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
		}, 1001, "proxy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) { o.InboundKeys = []string{plantedKey} })
			h := http.Header{"Ocp-Apim-Subscription-Key": {plantedKey}}
			client, upstream := env.open(t, wsSpeechPath+"?Ocp-Apim-Subscription-Key="+plantedKey+"&X-ConnectionId=abc", h)

			audio := wsUSPAudio(3200)
			text := []byte("Path: speech.config\r\n\r\n{}")
			wsRoundTrip(t, client, upstream, websocket.TextMessage, text, "client to upstream")
			wsRoundTrip(t, client, upstream, websocket.BinaryMessage, audio, "client to upstream")
			turnStart := []byte("Path: turn.start\r\nX-RequestId: 5b7c0a3e2f1d4c6b8a9e0f1a2b3c4d5e\r\n\r\n{\"context\":{\"serviceTag\":\"x\"}}")
			wsRoundTrip(t, upstream, client, websocket.TextMessage, turnStart, "upstream to client")
			tc.end(t, env, client, upstream)
			wsSessionsDone(t, env.proxy)

			lines := env.logs.sessionLines(t)
			if len(lines) != 1 {
				t.Fatalf("%d websocket log lines, want 1:\n%s", len(lines), env.logs.String())
			}
			got := lines[0]
			want := wsLogLine{Msg: "websocket", Method: "GET", Path: wsSpeechPath, Status: 101,
				FramesIn: 2, BytesIn: int64(len(text) + len(audio)), FramesOut: 1, BytesOut: int64(len(turnStart)),
				CloseCode: tc.wantCode, ClosedBy: tc.wantClosedBy}
			if got != want {
				t.Errorf("log line = %+v, want %+v", got, want)
			}
		})
	}
}

// TestWebSocketDroppedPeer: a side that drops its TCP connection without a
// close frame (a FIN, a reset, or a drop inside a frame) is logged closed_by
// that side with 1006, RFC 6455's code for an abnormal closure, which is
// never sent on the wire: the other side gets a close 1001 (going away)
// from the proxy instead of koding's 1006 (which gorilla reads as a
// protocol error) or a 1000 with a read error's text.
func TestWebSocketDroppedPeer(t *testing.T) {
	drop := func(how string, c *websocket.Conn) {
		conn := c.NetConn()
		switch how {
		case "reset":
			conn.(*net.TCPConn).SetLinger(0)
		case "inside a frame":
			// A masked binary frame of 100 bytes, cut after 10 of them.
			frame := append([]byte{0x82, 0x80 | 100, 1, 2, 3, 4}, make([]byte, 10)...)
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
	}
	for _, how := range []string{"close", "reset", "inside a frame"} {
		t.Run("client "+how, func(t *testing.T) {
			env := newWSFixture(t, nil, nil)
			client, upstream := env.open(t, wsSpeechPath, nil)
			wsRoundTrip(t, client, upstream, websocket.BinaryMessage, wsUSPAudio(3200), "client to upstream")
			drop(how, client)
			_, _, err := upstream.ReadMessage()
			wsWantClose(t, "upstream", err, websocket.CloseGoingAway, wsrelay.ClientGoneReason)
			wsSessionsDone(t, env.proxy)
			wsWantSessionEnd(t, env, 1006, "client")
		})
		if how == "inside a frame" {
			continue // the upstream's frames are written whole by gorilla
		}
		t.Run("upstream "+how, func(t *testing.T) {
			env := newWSFixture(t, nil, nil)
			client, upstream := env.open(t, wsSpeechPath, nil)
			wsRoundTrip(t, upstream, client, websocket.BinaryMessage, wsUSPAudio(3200), "upstream to client")
			drop(how, upstream)
			_, _, err := client.ReadMessage()
			wsWantClose(t, "client", err, websocket.CloseGoingAway, wsrelay.UpstreamGoneReason)
			wsSessionsDone(t, env.proxy)
			wsWantSessionEnd(t, env, 1006, "upstream")
		})
	}
}

// wsWantSessionEnd checks the close code and closed_by of the one session
// logged.
func wsWantSessionEnd(t *testing.T, env *fixture, code int, closedBy string) {
	t.Helper()
	lines := env.logs.sessionLines(t)
	if len(lines) != 1 {
		t.Fatalf("%d websocket log lines, want 1:\n%s", len(lines), env.logs.String())
	}
	if got := lines[0]; got.CloseCode != code || got.ClosedBy != closedBy {
		t.Errorf("log: close_code %d, closed_by %q; want %d, %q", got.CloseCode, got.ClosedBy, code, closedBy)
	}
}

// wsConnectProxy is a fake HTTPS_PROXY: it answers CONNECT and pipes bytes.
type wsConnectProxy struct {
	*httptest.Server

	mu      sync.Mutex
	targets []string
	auth    []string
	conns   []net.Conn
	pipes   sync.WaitGroup
}

func newWSConnectProxy(t *testing.T, useTLS bool) *wsConnectProxy {
	cp := &wsConnectProxy{}
	cp.Server = httptest.NewUnstartedServer(http.HandlerFunc(cp.serve))
	if useTLS {
		cp.StartTLS()
	} else {
		cp.Start()
	}
	t.Cleanup(func() {
		cp.Close()
		cp.mu.Lock()
		for _, c := range cp.conns {
			c.Close()
		}
		cp.mu.Unlock()
		cp.pipes.Wait()
	})
	return cp
}

func (cp *wsConnectProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	cp.mu.Lock()
	cp.targets = append(cp.targets, r.Host)
	cp.auth = append(cp.auth, r.Header.Get("Proxy-Authorization"))
	cp.mu.Unlock()
	target, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		return
	}
	cp.mu.Lock()
	cp.conns = append(cp.conns, conn, target)
	cp.mu.Unlock()
	io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	pipe := func(dst net.Conn, src io.Reader) {
		defer cp.pipes.Done()
		io.Copy(dst, src)
		conn.Close()
		target.Close()
	}
	cp.pipes.Add(2)
	go pipe(target, brw.Reader)
	go pipe(conn, target)
}

// A wss upstream directly, through an http:// proxy (CONNECT, with Basic
// credentials from the proxy URL), and through an https:// proxy (TLS to
// the proxy too): gorilla's own proxy support cannot do the last one
// (wsrelay's dialVia says why).
func TestWebSocketTLSUpstream(t *testing.T) {
	for _, via := range []string{"", "http", "https"} {
		name := "direct"
		if via != "" {
			name = "through an " + via + ":// HTTPS_PROXY"
		}
		t.Run(name, func(t *testing.T) {
			acceptor := newWSAcceptor(t)
			up := startTestUpstream(t, acceptor, true)
			cp := newWSConnectProxy(t, via == "https")
			roots := x509.NewCertPool()
			roots.AddCert(up.Certificate())
			if via == "https" {
				roots.AddCert(cp.Certificate())
			}
			env := newWSFixture(t, up, func(o *Options) {
				o.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
				if via != "" {
					o.Proxy = func(*http.Request) (*url.URL, error) {
						return url.Parse(via + "://proxyuser:proxypass@" + cp.Listener.Addr().String())
					}
				}
			})
			client := env.dial(t, wsSpeechPath, nil)
			upstream := acceptor.next(t)
			wsRoundTrip(t, client, upstream, websocket.BinaryMessage, wsUSPAudio(3200), "client to upstream")
			wsRoundTrip(t, upstream, client, websocket.TextMessage, []byte("Path: turn.end\r\n\r\n{}"), "upstream to client")
			if got := client.Subprotocol(); got != "USP" {
				t.Errorf("client subprotocol = %q, want USP", got)
			}

			cp.mu.Lock()
			targets, auth := cp.targets, cp.auth
			cp.mu.Unlock()
			if via == "" {
				if len(targets) != 0 {
					t.Errorf("CONNECT proxy saw %q, want nothing", targets)
				}
				return
			}
			if len(targets) != 1 || targets[0] != up.host {
				t.Errorf("CONNECT targets = %q, want [%q]", targets, up.host)
			}
			wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("proxyuser:proxypass"))
			if len(auth) != 1 || auth[0] != wantAuth {
				t.Errorf("Proxy-Authorization = %q, want [%q]", auth, wantAuth)
			}
		})
	}
}
