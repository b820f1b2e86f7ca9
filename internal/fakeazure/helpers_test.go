package fakeazure

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/gorilla/websocket"
)

// start runs a fake for the test and closes it at the end.
func start(t *testing.T, s Settings) *Azure {
	t.Helper()
	a, err := Start(Options{Settings: s})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func bearer(tok string) string { return "Bearer " + tok }

func aad(resourceID, tok string) string { return "Bearer aad#" + resourceID + "#" + tok }

// send makes a request with headers h (names kept as written) and returns
// the response with its body read.
func send(t *testing.T, method, url string, h map[string][]string, body string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range h {
		if strings.EqualFold(k, "Host") {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// dial opens a WebSocket with a bounded handshake and a read deadline.
func dial(t *testing.T, url string, h http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: leakcheck.HangGuard, Subprotocols: subprotocols}
	conn, resp, err := d.DialContext(ctx, url, h)
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
		if err := conn.SetReadDeadline(time.Now().Add(leakcheck.HangGuard)); err != nil {
			t.Fatalf("set read deadline: %v", err)
		}
	}
	return conn, resp, err
}

// azureError decodes Azure's error envelope.
func azureError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
		t.Fatalf("body %q is not Azure's error envelope (err %v)", body, err)
	}
	return e.Error.Code, e.Error.Message
}

// lastRequest is the newest request the fake recorded.
func lastRequest(t *testing.T, a *Azure) Request {
	t.Helper()
	reqs := a.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request recorded")
	}
	return reqs[len(reqs)-1]
}
