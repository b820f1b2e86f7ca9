package proxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// A proxy-made refusal keeps the README's status on plain HTTP; on a
// WebSocket upgrade it becomes a status whose reason phrase the native
// Speech SDK shows, carrying the code and the message.
func TestHandshakeRefusalReasonPhrase(t *testing.T) {
	for _, tc := range []struct {
		e          *apiError
		wantHTTP   int
		wantUpgrad int
	}{
		{tokenUnavailable(nil), 503, 502},
		{errShuttingDown, 503, 502},
		{&apiError{status: 401, code: "inbound_key_invalid", message: "wrong key"}, 401, 400},
		{&apiError{status: 403, code: "host_not_allowed", message: "bad host"}, 403, 400},
		{&apiError{status: 403, code: CodeOriginNotAllowed, message: "bad origin"}, 403, 403},
		{&apiError{status: 504, code: "upstream_timeout", message: "slow"}, 504, 502},
		{redirectNotAllowed("evil.example"), 502, 502},
		{errAbsoluteForm, 400, 400},
	} {
		t.Run(tc.e.code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, r, tc.e)
			}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := strconv.Itoa(tc.wantHTTP) + " " + http.StatusText(tc.wantHTTP); resp.Status != want {
				t.Errorf("plain HTTP: status = %q, want %q", resp.Status, want)
			}

			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := tc.wantUpgrad
			wantStatus := strconv.Itoa(want) + " entraproxy " + tc.e.code + ": " + tc.e.message
			if resp.StatusCode != want || resp.Status != wantStatus {
				t.Errorf("upgrade: status line = %q, want %q", resp.Status, wantStatus)
			}
			if resp.ContentLength <= 0 || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("upgrade: Content-Length %d, Content-Type %q, want the JSON envelope", resp.ContentLength, resp.Header.Get("Content-Type"))
			}
		})
	}
}

// Control bytes in a message (a quoted client value) cannot end the status
// line early or inject a header.
func TestReasonPhraseHasNoControlBytes(t *testing.T) {
	got := reasonPhrase("a\r\nX-Injected: 1\x00\x7f\tb")
	if want := "a  X-Injected: 1  \tb"; got != want {
		t.Errorf("reasonPhrase = %q, want %q", got, want)
	}
}
