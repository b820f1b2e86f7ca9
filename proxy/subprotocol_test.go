package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// realtimeUpstream accepts handshakes as Azure OpenAI's realtime endpoint
// would: it speaks "realtime" (and USP, for the Speech cases).
var realtimeUpstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	u := websocket.Upgrader{Subprotocols: []string{"realtime", "USP"}}
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	wsEcho(c)
})

// The openai package's browser realtime client offers its API key as a
// WebSocket subprotocol, ["realtime", "openai-insecure-api-key.<key>"], as a
// browser cannot set headers. That is a credential like api-key: it never
// reaches the upstream, in any letter case, wherever it is in the list and
// however the list is split over header lines; the other subprotocols pass
// in order, and the client gets the one the upstream chose.
func TestWebSocketCredentialSubprotocolRemoved(t *testing.T) {
	up := newTestUpstream(t, realtimeUpstream)
	env := newWSFixture(t, up, nil)
	tests := []struct {
		name    string
		offered []string // header lines
		want    string   // what the upstream is offered
		chosen  string
	}{
		{"browser realtime client", []string{"realtime, openai-insecure-api-key.dummy-sk-1"}, "realtime", "realtime"},
		{"any letter case", []string{"realtime, OpenAI-Insecure-API-Key.dummy-sk-1"}, "realtime", "realtime"},
		{"key first, beta and organization kept", []string{"openai-insecure-api-key.dummy-sk-1, realtime, openai-beta.realtime-v1, openai-organization.org-1"},
			"realtime, openai-beta.realtime-v1, openai-organization.org-1", "realtime"},
		{"over several header lines", []string{"realtime", "openai-insecure-api-key.dummy-sk-1", "openai-beta.realtime-v1"}, "realtime, openai-beta.realtime-v1", "realtime"},
		{"only the key", []string{"openai-insecure-api-key.dummy-sk-1"}, "", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: wsWait}
			c, resp, err := d.Dial(env.wsURL+"/openai/v1/realtime?model=gpt-realtime", http.Header{"Sec-WebSocket-Protocol": tc.offered})
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			defer c.Close()
			if got := resp.Header.Get("Sec-Websocket-Protocol"); got != tc.chosen {
				t.Errorf("client got subprotocol %q, want %q", got, tc.chosen)
			}
			wsRoundTrip(t, c, c, websocket.TextMessage, []byte(`{"type":"session.update"}`), "echo")
			hs := up.seen.all()[i]
			if got := strings.Join(hs.header.Values("Sec-Websocket-Protocol"), ", "); got != tc.want {
				t.Errorf("upstream offered %q, want %q", got, tc.want)
			}
			if got := hs.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+plantedToken {
				t.Errorf("upstream Authorization = %q, want exactly the proxy's", got)
			}
			for k, vs := range hs.header {
				for _, v := range vs {
					if strings.Contains(strings.ToLower(v), "dummy-sk-1") {
						t.Errorf("upstream header %s = %q holds the client's key", k, v)
					}
				}
			}
		})
	}
}

// In gateway mode the subprotocol is where a browser realtime client's key
// setting goes, so it is accepted as the inbound key (compared like the
// others, then removed); a wrong or missing one is refused before anything
// is dialed.
func TestWebSocketGatewayKeyInSubprotocol(t *testing.T) {
	up := newTestUpstream(t, realtimeUpstream)
	env := newWSFixture(t, up, func(o *Options) { o.InboundKeys = []string{plantedKey} })
	refused := []struct {
		name, offered, code string
	}{
		{"wrong key", "realtime, openai-insecure-api-key.wrong-" + plantedKey, "inbound_key_invalid"},
		{"empty key", "realtime, openai-insecure-api-key.", "inbound_key_required"},
		{"no key", "realtime", "inbound_key_required"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := env.rawUpgrade(t, http.MethodGet, "/openai/v1/realtime?model=gpt-realtime", func(h http.Header) {
				h.Set("Sec-WebSocket-Protocol", tc.offered)
			})
			wsWantError(t, resp, body, http.StatusUnauthorized, tc.code)
		})
	}
	if n := up.conns.Load(); n != 0 {
		t.Fatalf("upstream connections = %d after refusals, want 0", n)
	}
	t.Run("right key, any letter case of the prefix", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: wsWait, Subprotocols: []string{"realtime", "OpenAI-Insecure-API-Key." + plantedKey}}
		c, resp, err := d.Dial(env.wsURL+"/openai/v1/realtime?model=gpt-realtime", nil)
		if err != nil {
			t.Fatalf("dial: %v (response %v)", err, resp)
		}
		defer c.Close()
		if c.Subprotocol() != "realtime" {
			t.Errorf("subprotocol = %q, want realtime", c.Subprotocol())
		}
		hs := up.seen.all()[0]
		if got := hs.header.Get("Sec-Websocket-Protocol"); got != "realtime" {
			t.Errorf("upstream offered %q, want realtime", got)
		}
	})
	// Not a WebSocket upgrade: the header is no place for a key.
	t.Run("plain HTTP request with the header", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, env.front.URL+"/openai/v1/models", nil)
		req.Header.Set("Sec-WebSocket-Protocol", "openai-insecure-api-key."+plantedKey)
		resp, err := (&http.Client{Timeout: wsWait}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wsWantError(t, resp, body, http.StatusUnauthorized, "inbound_key_required")
	})
}
