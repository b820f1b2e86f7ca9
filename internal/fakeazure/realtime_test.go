package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestRealtime: a text conversation over the realtime WebSocket, on the GA
// and the preview path, with the 101 a front end with session affinity
// sends.
func TestRealtime(t *testing.T) {
	for _, path := range []string{"/openai/v1/realtime?model=gpt-realtime", "/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime"} {
		t.Run(path, func(t *testing.T) {
			a := start(t, Settings{})
			ws := "ws" + strings.TrimPrefix(a.URL(), "http") + path
			conn, resp, err := dial(t, ws, http.Header{"Authorization": {bearer(a.Issue())}}, "realtime")
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			if conn.Subprotocol() != "realtime" {
				t.Errorf("subprotocol = %q, want realtime", conn.Subprotocol())
			}
			if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || !strings.HasPrefix(got[0], RealtimeCookieAffinity+"=") || !strings.HasPrefix(got[1], RealtimeCookieSession+"=") {
				t.Errorf("101 Set-Cookie = %q, want %s and %s", got, RealtimeCookieAffinity, RealtimeCookieSession)
			}
			if resp.Header.Get("Apim-Request-Id") == "" {
				t.Error("101 has no apim-request-id")
			}
			next := func() map[string]any {
				t.Helper()
				_, b, err := conn.ReadMessage()
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				var ev map[string]any
				if err := json.Unmarshal(b, &ev); err != nil {
					t.Fatalf("event %s: %v", b, err)
				}
				return ev
			}
			if ev := next(); ev["type"] != "session.created" {
				t.Fatalf("first event = %v, want session.created", ev)
			}
			conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Say hello."}]}}`))
			if ev := next(); ev["type"] != "conversation.item.created" {
				t.Fatalf("event = %v, want conversation.item.created", ev)
			}
			conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"response.create"}`))
			var text strings.Builder
			for {
				ev := next()
				if ev["type"] == "response.output_text.delta" {
					text.WriteString(ev["delta"].(string))
				}
				if ev["type"] == "response.done" {
					break
				}
			}
			if text.String() != OpenAIReply {
				t.Errorf("deltas = %q, want %q", text.String(), OpenAIReply)
			}
			reqs := a.Requests()
			if len(reqs) != 1 || reqs[0].Status != 101 || reqs[0].Subprotocol != "realtime" || reqs[0].Form != "bearer" {
				t.Errorf("request log = %+v, want one accepted realtime session in the bearer form", reqs)
			}
		})
	}
}

// TestRealtimeRefusals: the realtime endpoint is as strict as the others,
// and a key offered as a subprotocol, as the openai browser client does, is
// a key.
func TestRealtimeRefusals(t *testing.T) {
	a := start(t, Settings{})
	base := "ws" + strings.TrimPrefix(a.URL(), "http")
	tests := []struct {
		name, path   string
		header       http.Header
		subprotocols []string
		status       int
		reason       string
	}{
		{"key subprotocol", "/openai/v1/realtime?model=m", http.Header{"Authorization": {bearer(a.Issue())}}, []string{"realtime", "openai-insecure-api-key.dummy"}, 401, ReasonCredentialInSubprotocol},
		{"key subprotocol, any case", "/openai/v1/realtime?model=m", http.Header{"Authorization": {bearer(a.Issue())}}, []string{"OPENAI-INSECURE-API-KEY.dummy", "realtime"}, 401, ReasonCredentialInSubprotocol},
		{"no token", "/openai/v1/realtime?model=m", nil, []string{"realtime"}, 401, ReasonNoAuthorization},
		{"aad form", "/openai/v1/realtime?model=m", http.Header{"Authorization": {aad(DefaultResourceID, a.Issue())}}, []string{"realtime"}, 401, ReasonWrongForm},
		{"api-key in the query", "/openai/realtime?api-version=2025-04-01-preview&deployment=m&api-key=dummy", http.Header{"Authorization": {bearer(a.Issue())}}, []string{"realtime"}, 401, ReasonCredentialInQuery},
		{"no model", "/openai/v1/realtime", http.Header{"Authorization": {bearer(a.Issue())}}, []string{"realtime"}, 400, ""},
		{"preview without api-version", "/openai/realtime?deployment=m", http.Header{"Authorization": {bearer(a.Issue())}}, []string{"realtime"}, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := dial(t, base+tc.path, tc.header, tc.subprotocols...)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("dial = %v (%v), want %d", err, resp, tc.status)
			}
			if got := resp.Header.Get("X-Fake-Reject-Reason"); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
	for _, r := range a.Requests() {
		for _, p := range r.Subprotocols {
			if strings.Contains(p, "dummy") {
				t.Errorf("request log keeps the key: %q", r.Subprotocols)
			}
		}
	}
}
