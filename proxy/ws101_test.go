package proxy

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// The upstream's 101 answer reaches the client with its headers: both of
// two Set-Cookie (an affinity cookie the client must send back), Azure's
// apim-request-id, repeated headers with every value. What belongs to the
// upstream's own connection or handshake does not: hop-by-hop headers,
// those its Connection header names, and the handshake headers the proxy
// computes for the client's handshake (Sec-WebSocket-Accept, the chosen
// subprotocol).
func TestWebSocket101HeadersPass(t *testing.T) {
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := websocket.Upgrader{Subprotocols: []string{"realtime"}}
		h := http.Header{
			"Set-Cookie":      {"ARRAffinity=abc; Path=/; HttpOnly", "session=42; Path=/openai"},
			"Apim-Request-Id": {"5f0c1a2b-0000-4000-8000-000000000001"},
			"X-Requestid":     {"req-1"},
			"X-Repeated":      {"one", "two"},
			"Connection":      {"X-Hop"}, // a second Connection line: X-Hop is hop-by-hop
			"X-Hop":           {"for-the-proxy-only"},
			"Keep-Alive":      {"timeout=5"},
		}
		c, err := u.Upgrade(w, r, h)
		if err != nil {
			return
		}
		defer c.Close()
		wsEcho(c)
	}))
	env := newWSFixture(t, up, nil)
	d := websocket.Dialer{HandshakeTimeout: wsWait, Subprotocols: []string{"realtime"}}
	c, resp, err := d.Dial(env.wsURL+"/openai/v1/realtime?model=gpt-realtime", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	wsRoundTrip(t, c, c, websocket.TextMessage, []byte("hi"), "echo")

	h := resp.Header
	if got := h.Values("Set-Cookie"); !slices.Equal(got, []string{"ARRAffinity=abc; Path=/; HttpOnly", "session=42; Path=/openai"}) {
		t.Errorf("Set-Cookie = %q, want both of the upstream's, in order", got)
	}
	for name, want := range map[string][]string{
		"Apim-Request-Id": {"5f0c1a2b-0000-4000-8000-000000000001"},
		"X-Requestid":     {"req-1"},
		"X-Repeated":      {"one", "two"},
		"Upgrade":         {"websocket"},
		"Connection":      {"Upgrade"},
	} {
		if got := h.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"X-Hop", "Keep-Alive"} {
		if got := h.Values(name); len(got) != 0 {
			t.Errorf("%s = %q, want none (hop-by-hop)", name, got)
		}
	}
	if got := h.Values("Sec-Websocket-Accept"); len(got) != 1 {
		t.Errorf("Sec-WebSocket-Accept = %q, want exactly the proxy's", got)
	}
	if got := h.Values("Sec-Websocket-Protocol"); len(got) != 1 || got[0] != "realtime" {
		t.Errorf("Sec-WebSocket-Protocol = %q, want [realtime]", got)
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-forwarded") {
			t.Errorf("unexpected %s", k)
		}
	}
}

// A refused handshake's answer keeps its end-to-end headers too, cookies
// included; the headers of the upstream's own connection stay behind.
func TestWebSocketRefusalHeadersPass(t *testing.T) {
	up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Set-Cookie"] = []string{"ARRAffinity=abc", "session=42"}
		h.Set("Apim-Request-Id", "5f0c")
		h.Set("Retry-After", "7")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "for-the-proxy-only")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte("later"))
	}))
	env := newWSFixture(t, up, nil)
	resp, body := env.rawUpgrade(t, http.MethodGet, "/openai/v1/realtime?model=m", nil)
	if resp.StatusCode != http.StatusTooManyRequests || string(body) != "later" {
		t.Fatalf("answer = %d %q, want the upstream's 429", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"ARRAffinity=abc", "session=42"}) {
		t.Errorf("Set-Cookie = %q, want both", got)
	}
	if resp.Header.Get("Apim-Request-Id") != "5f0c" || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("headers = %v, want apim-request-id and Retry-After", resp.Header)
	}
	if got := resp.Header.Get("X-Hop"); got != "" {
		t.Errorf("X-Hop = %q, want none", got)
	}
}
