package fakeazure

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminControls drives the fake through the /_fake/ endpoints the
// JavaScript suite uses.
func TestAdminControls(t *testing.T) {
	a := start(t, Settings{})
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, b := send(t, http.MethodPost, a.URL()+path, map[string][]string{"Content-Type": {"application/json"}}, body)
		var out map[string]any
		if len(b) > 0 {
			if err := json.Unmarshal([]byte(b), &out); err != nil {
				t.Fatalf("POST %s: decode %q: %v", path, b, err)
			}
		}
		return resp.StatusCode, out
	}
	get := func(path string, v any) {
		t.Helper()
		resp, b := send(t, http.MethodGet, a.URL()+path, nil, "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d, want 200", path, resp.StatusCode)
		}
		if err := json.Unmarshal([]byte(b), v); err != nil {
			t.Fatalf("GET %s: decode %q: %v", path, b, err)
		}
	}

	status, cfg := post("/_fake/config", `{"auth":"aad","phrase":"Changed.","tokenLifetime":"2m","sseGap":0.05,"redirect":true,"chatDelay":"35s"}`)
	if status != 200 || cfg["auth"] != "aad" || cfg["phrase"] != "Changed." || cfg["tokenLifetime"] != "2m0s" || cfg["sseGap"] != "50ms" || cfg["redirect"] != true || cfg["chatDelay"] != "35s" {
		t.Fatalf("POST /_fake/config = %d %v, want the new settings", status, cfg)
	}
	if s := a.Settings(); s.Auth != AuthAAD || s.TokenLifetime != 2*time.Minute || s.SSEGap != 50*time.Millisecond || !s.Redirect || s.ResourceID != DefaultResourceID {
		t.Errorf("Settings() = %+v, want the posted values and the rest unchanged", s)
	}
	for _, bad := range []string{`{"auth":"key"}`, `{"tokenLifetime":"soon"}`, `{"unknown":1}`, `{"resourceId":"not-an-arm-id"}`} {
		if status, _ := post("/_fake/config", bad); status != 400 {
			t.Errorf("POST /_fake/config %s = %d, want 400", bad, status)
		}
	}

	tokens := map[string]string{}
	for _, kind := range []string{"valid", "expired", "foreign"} {
		status, out := post("/_fake/token", `{"kind":"`+kind+`"}`)
		tok, _ := out["token"].(string)
		if status != 200 || tok == "" || out["expiresOn"] == nil {
			t.Fatalf("POST /_fake/token %s = %d %v, want a token", kind, status, out)
		}
		tokens[kind] = tok
	}
	for _, c := range []struct {
		kind string
		want int
	}{{"valid", 200}, {"expired", 401}, {"foreign", 401}} {
		resp, _ := send(t, http.MethodGet, a.URL()+"/tts/cognitiveservices/voices/list",
			map[string][]string{"Authorization": {aad(DefaultResourceID, tokens[c.kind])}}, "")
		if resp.StatusCode != c.want {
			t.Errorf("%s token: status = %d, want %d", c.kind, resp.StatusCode, c.want)
		}
	}

	var reqs []Request
	get("/_fake/requests", &reqs)
	if len(reqs) != 3 || reqs[0].Form != "aad" || reqs[0].Status != 200 || reqs[1].Reject != ReasonExpiredToken || reqs[2].Reject != ReasonUnknownToken {
		t.Errorf("GET /_fake/requests = %+v, want the 3 service requests", reqs)
	}
	var stats struct {
		Issued     int            `json:"issued"`
		Rejections map[string]int `json:"rejections"`
	}
	get("/_fake/stats", &stats)
	if stats.Issued != 0 || stats.Rejections[ReasonExpiredToken] != 1 || stats.Rejections[ReasonUnknownToken] != 1 {
		t.Errorf("GET /_fake/stats = %+v, want issued 0 and one expired, one unknown", stats)
	}

	if status, _ := post("/_fake/reset", ""); status != http.StatusNoContent {
		t.Errorf("POST /_fake/reset = %d, want 204", status)
	}
	if s := a.Settings(); s.Auth != AuthBoth || s.Redirect || s.Phrase != DefaultPhrase {
		t.Errorf("Settings() after reset = %+v, want the start settings", s)
	}
	if n := len(a.Requests()); n != 0 {
		t.Errorf("requests after reset = %d, want 0", n)
	}
	if got := usable(t, a, tokens["valid"]); got != 200 {
		t.Errorf("issued token after reset: status = %d, want 200 (reset keeps tokens)", got)
	}
	var streams []map[string]any
	get("/_fake/streams", &streams)
	if len(streams) != 0 {
		t.Errorf("GET /_fake/streams = %v, want []", streams)
	}
	if resp, _ := send(t, http.MethodGet, a.URL()+"/_fake/nothing", nil, ""); resp.StatusCode != 404 {
		t.Errorf("GET /_fake/nothing = %d, want 404", resp.StatusCode)
	}
}

func TestStartRejectsBadSettings(t *testing.T) {
	for _, s := range []Settings{
		{Auth: "key"},
		{ResourceID: "speech"},
		{TokenLifetime: -time.Second},
		{SSEGap: -time.Second},
	} {
		if a, err := Start(Options{Settings: s}); err == nil {
			a.Close()
			t.Errorf("Start(%+v) error = nil, want an error", s)
		}
	}
}

// TestCloseEndsSessions checks that Close returns while a WebSocket session
// and a stream are open, and that they end.
func TestCloseEndsSessions(t *testing.T) {
	a, err := Start(Options{Settings: Settings{SSEGap: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := dial(t, ttsURL(a), http.Header{"Authorization": {bearer(a.Issue())}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, a.URL()+chatPath+"?api-version=1", strings.NewReader(`{"messages":[{}],"stream":true}`))
	req.Header.Set("Authorization", bearer(a.Issue()))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 6)
	if _, err := resp.Body.Read(first); err != nil {
		t.Fatalf("read first event: %v", err)
	}

	a.Close()
	if _, _, err := conn.ReadMessage(); err == nil {
		t.Error("WebSocket read after Close succeeded, want the session ended")
	}
	// ReadAll returns only once the stream has ended, cleanly or not.
	_, _ = io.ReadAll(resp.Body)
}
