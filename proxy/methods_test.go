package proxy

import (
	"bufio"
	"cmp"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TRACE and TRACK make a server echo the request back, headers included: an
// upstream that answers them would hand the proxy's bearer token to the
// caller (RFC 9110 section 9.3.8 says clients must not send credentials in a
// TRACE; the proxy would add them). They are answered 405 and never
// forwarded, in any letter case, with or without a body, and as a WebSocket
// upgrade attempt.
func TestTraceAndTrackRefused(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An echoing upstream, as TRACE asks for: a leak would show here.
		w.Header().Set("Content-Type", "message/http")
		r.Write(w)
	}), nil)
	addr := f.front.Listener.Addr().String()
	wsHeaders := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	tests := []struct {
		name, request string
	}{
		{"TRACE", "TRACE /openai/v1/models HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"TRACK", "TRACK /openai/v1/models HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"lower-case trace", "trace / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"},
		{"TRACE with a body", "TRACE / HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"},
		{"TRACE with Max-Forwards", "TRACE / HTTP/1.1\r\nHost: " + addr + "\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n"},
		{"TRACE as a WebSocket upgrade", "TRACE " + wsSpeechPath + " HTTP/1.1\r\nHost: " + addr + "\r\n" + wsHeaders + "\r\n"},
		{"TRACK as a WebSocket upgrade", "TRACK " + wsSpeechPath + " HTTP/1.1\r\nHost: " + addr + "\r\n" + wsHeaders + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawHTTPRequest(t, addr, tc.request)
			wantProxyError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
			if allow := resp.Header.Get("Allow"); allow == "" || strings.Contains(strings.ToUpper(allow), "TRACE") {
				t.Errorf("Allow = %q, want the methods the proxy forwards, without TRACE", allow)
			}
		})
	}
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
}

// Some servers (ASP.NET's HttpMethodOverride middleware, Google's and
// Microsoft's older APIs) take the method from X-HTTP-Method-Override,
// X-HTTP-Method or X-Method-Override: a POST or GET naming TRACE or TRACK
// there is the TRACE the proxy refuses, and gets the same 405, whatever the
// header's letter case, the value's case, its padding, a list, or a second
// header line, on HTTP and on a WebSocket upgrade. An override to another
// method passes (Azure's APIs ignore it; the upstream decides). A refused
// WebSocket handshake is answered 400 with the same code, as every refusal
// of one is (the native Speech SDK shows the reason phrase of a 400 only).
func TestMethodOverrideToTraceRefused(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "message/http")
		r.Write(w)
	}), nil)
	addr := f.front.Listener.Addr().String()
	wsHeaders := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	request := func(method, path, headers string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 0\r\nConnection: close\r\n" + headers + "\r\n"
	}
	tests := []struct {
		name, request string
		status        int // 0: 405
	}{
		{"X-HTTP-Method-Override", request("POST", "/openai/v1/models", "X-HTTP-Method-Override: TRACE\r\n"), 0},
		{"X-Method-Override", request("GET", "/openai/v1/models", "X-Method-Override: TRACE\r\n"), 0},
		{"X-HTTP-Method", request("POST", "/openai/v1/models", "X-HTTP-Method: TRACK\r\n"), 0},
		{"lower-case name and value", request("POST", "/", "x-http-method-override: trace\r\n"), 0},
		{"upper-case name, mixed-case value", request("POST", "/", "X-METHOD-OVERRIDE: Track\r\n"), 0},
		{"padded value", request("POST", "/", "X-HTTP-Method-Override: \t TRACE \r\n"), 0},
		{"second line", request("POST", "/", "X-HTTP-Method-Override: GET\r\nX-HTTP-Method-Override: TRACE\r\n"), 0},
		{"a list", request("POST", "/", "X-HTTP-Method: GET, TRACE\r\n"), 0},
		{"two of the names", request("POST", "/", "X-HTTP-Method: PATCH\r\nX-Method-Override: TRACK\r\n"), 0},
		{"WebSocket upgrade", "GET " + wsSpeechPath + " HTTP/1.1\r\nHost: " + addr + "\r\nX-HTTP-Method-Override: TRACE\r\n" + wsHeaders + "\r\n", http.StatusBadRequest},
		{"WebSocket upgrade, X-HTTP-Method", "GET " + wsSpeechPath + " HTTP/1.1\r\nHost: " + addr + "\r\nX-HTTP-Method: track\r\n" + wsHeaders + "\r\n", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawHTTPRequest(t, addr, tc.request)
			wantProxyError(t, resp, body, cmp.Or(tc.status, http.StatusMethodNotAllowed), "method_not_allowed")
			if allow := resp.Header.Get("Allow"); allow == "" || strings.Contains(strings.ToUpper(allow), "TRACE") {
				t.Errorf("Allow = %q, want the methods the proxy forwards, without TRACE", allow)
			}
		})
	}
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
	resp, body := rawHTTPRequest(t, addr, request("POST", "/openai/v1/models", "X-HTTP-Method-Override: PATCH\r\nX-HTTP-Method: TRACEROUTE\r\n"))
	if resp.StatusCode != http.StatusOK || f.seen.count() != 1 {
		t.Errorf("an override to PATCH: status %d (body %.200s), upstream requests %d; want 200, 1", resp.StatusCode, body, f.seen.count())
	}
}

// curl --http2 on an http:// URL asks to switch to HTTP/2 in cleartext
// (Upgrade: h2c, HTTP2-Settings; RFC 7540 section 3.2). A server that does
// not take the offer answers over HTTP/1.1 as if it had not been made
// (RFC 9110 section 7.8), which is what a plain Go server does. The proxy
// does the same for every method, and never forwards the offer.
func TestH2CUpgradeAnsweredOverHTTP1(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(body))
	}), nil)
	addr := f.front.Listener.Addr().String()
	// What curl 7.88 sends with --http2 on an http:// URL.
	const h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
	tests := []struct {
		method, body string
		wantBody     string
	}{
		{"GET", "", "GET "},
		{"HEAD", "", ""},
		{"OPTIONS", "", "OPTIONS "},
		{"POST", "hello", "POST hello"},
		{"PUT", "hello", "PUT hello"},
		{"PATCH", "hello", "PATCH hello"},
		{"DELETE", "", "DELETE "},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			before := f.seen.count()
			req := tc.method + " /openai/v1/files HTTP/1.1\r\nHost: " + addr + "\r\n" + h2c
			if tc.body != "" {
				req += "Content-Length: " + strconv.Itoa(len(tc.body)) + "\r\n"
			}
			req += "\r\n" + tc.body
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(wsWait)) // a hang guard
			io.WriteString(conn, req)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, &http.Request{Method: tc.method})
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" || string(body) != tc.wantBody {
				t.Errorf("answer = %s %d %q, want HTTP/1.1 200 %q", resp.Proto, resp.StatusCode, body, tc.wantBody)
			}
			if f.seen.count() != before+1 {
				t.Fatalf("upstream requests = %d, want %d", f.seen.count(), before+1)
			}
			up := f.seen.last(t)
			for _, name := range []string{"Upgrade", "Http2-Settings", "Connection"} {
				if v := up.header.Values(name); len(v) > 0 {
					t.Errorf("upstream %s = %q, want none", name, v)
				}
			}
			// The connection stays an HTTP/1.1 connection: a second
			// request on it is answered too.
			io.WriteString(conn, "GET /again HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("second request on the connection: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("second request status = %d, want 200", resp.StatusCode)
			}
		})
	}
}

// Upgrades other than WebSocket and h2c are still refused: ReverseProxy would
// tunnel them as raw bytes, outside the proxy's control.
func TestOtherUpgradesRefused(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, nil)
	for _, upgrade := range []string{"TLS/1.2", "h2c, TLS/1.2", "foo"} {
		req := newHTTPRequest(t, http.MethodGet, f.url("/x"), nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", upgrade)
		resp, body := f.do(t, req)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"bad_request"`) {
			t.Errorf("Upgrade %q: status = %d, body %s; want 400 bad_request", upgrade, resp.StatusCode, body)
		}
	}
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
}
