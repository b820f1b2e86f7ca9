package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/hosts"
	"github.com/entraproxy/entraproxy/internal/testport"
)

// wantOnlyProxyCredential checks that the upstream got exactly one
// Authorization, want, and no inbound credential or client forwarding header.
func wantOnlyProxyCredential(t *testing.T, got upstreamRequest, want string) {
	t.Helper()
	if auth := got.header.Values("Authorization"); len(auth) != 1 || auth[0] != want {
		t.Errorf("upstream Authorization = %q, want exactly [%q]", auth, want)
	}
	for name, values := range got.header {
		switch {
		case strings.EqualFold(name, "Ocp-Apim-Subscription-Key"), strings.EqualFold(name, "Api-Key"), strings.EqualFold(name, "Subscription-Key"):
			t.Errorf("upstream header %s = %q, want none", name, values)
		case strings.EqualFold(name, "Forwarded"), strings.HasPrefix(strings.ToLower(name), "x-forwarded-"):
			t.Errorf("upstream header %s = %q, want none (client forwarding headers are dropped)", name, values)
		case strings.EqualFold(name, "Connection"):
			t.Errorf("upstream header Connection = %q, want none", values)
		}
		for _, v := range values {
			if strings.Contains(strings.ToLower(v), "openai-insecure-api-key") {
				t.Errorf("upstream header %s = %q holds a key subprotocol", name, v)
			}
		}
	}
	decoded, err := url.QueryUnescape(got.rawQuery)
	if err != nil {
		decoded = got.rawQuery
	}
	for _, name := range []string{"authorization", "ocp-apim-subscription-key", "api-key", "subscription-key", "client-key"} {
		if strings.Contains(strings.ToLower(decoded), name) {
			t.Errorf("upstream query %q holds %s, want it removed", got.rawQuery, name)
		}
	}
}

func TestAuthorizationForm(t *testing.T) {
	tests := []struct {
		name       string
		format     AuthFormat
		resourceID string
		want       string
	}{
		{"bearer", FormatBearer, "", "Bearer " + plantedToken},
		{"bearer ignores resource id", FormatBearer, plantedResourceID, "Bearer " + plantedToken},
		{"aad", FormatAAD, plantedResourceID, "Bearer aad#" + plantedResourceID + "#" + plantedToken},
		{"auto starts with bearer", FormatAuto, plantedResourceID, "Bearer " + plantedToken},
		{"auto without resource id", FormatAuto, "", "Bearer " + plantedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) {
				o.AuthFormat = tc.format
				o.ResourceID = tc.resourceID
			})
			req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
			req.Header.Set("Authorization", "Bearer client-token")
			resp, body := f.do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
			}
			wantOnlyProxyCredential(t, f.seen.last(t), tc.want)
		})
	}
}

// One named case per way a client might smuggle its own credential (or a
// forwarding header) past the proxy.
func TestInboundCredentialsRemoved(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		header    map[string][]string // written as is, so the wire keeps its letter case
		wantQuery string
	}{
		{name: "Authorization header", header: map[string][]string{"Authorization": {"Bearer client-token"}}},
		{name: "two Authorization headers", header: map[string][]string{"Authorization": {"Bearer one", "Bearer two"}}},
		{name: "AUTHORIZATION header upper case", header: map[string][]string{"AUTHORIZATION": {"Bearer client-token"}}},
		{name: "ocp-apim-subscription-key header lower case", header: map[string][]string{"ocp-apim-subscription-key": {"client-key"}}},
		{name: "aPi-KeY header mixed case", header: map[string][]string{"aPi-KeY": {"client-key"}}},
		{name: "all three headers", header: map[string][]string{
			"Authorization": {"Bearer x"}, "Ocp-Apim-Subscription-Key": {"k1"}, "Api-Key": {"k2"}}},
		{
			name:   "Connection: Authorization trick",
			header: map[string][]string{"Connection": {"Authorization"}, "Authorization": {"Bearer client-token"}},
		},
		{name: "Connection: Authorization without Authorization", header: map[string][]string{"Connection": {"Authorization, Keep-Alive"}}},
		{
			name: "Forwarded and X-Forwarded-*",
			header: map[string][]string{
				"Forwarded":          {"for=203.0.113.7;host=evil.example"},
				"X-Forwarded-For":    {"203.0.113.7"},
				"X-Forwarded-Host":   {"evil.example"},
				"X-Forwarded-Proto":  {"https"},
				"X-Forwarded-Port":   {"443"},
				"x-forwarded-prefix": {"/evil"},
			},
		},
		{
			name:      "query ocp-apim-subscription-key lower case",
			query:     "language=en-US&ocp-apim-subscription-key=client-key&format=simple",
			wantQuery: "language=en-US&format=simple",
		},
		{
			name:      "query aPi-KeY mixed case",
			query:     "aPi-KeY=client-key&api-version=2024-10-21",
			wantQuery: "api-version=2024-10-21",
		},
		{
			name:      "query AUTHORIZATION=Bearer%20x",
			query:     "X-ConnectionId=0123abcd&AUTHORIZATION=Bearer%20x",
			wantQuery: "X-ConnectionId=0123abcd",
		},
		{
			name:      "query name percent-encoded",
			query:     "%41uthorization=Bearer%20x&api%2Dkey=k&language=en-US",
			wantQuery: "language=en-US",
		},
		{
			name:      "query subscription-key, API Management's default name",
			query:     "subscription-key=k&api-version=2024-11-15",
			wantQuery: "api-version=2024-11-15",
		},
		{name: "Subscription-Key header", header: map[string][]string{"Subscription-Key": {"client-key"}}},
		{
			name:   "a key subprotocol on a plain request",
			header: map[string][]string{"Sec-WebSocket-Protocol": {"openai-insecure-api-key.client-key"}},
		},
		{
			name:      "query all three, SDK style",
			query:     "Ocp-Apim-Subscription-Key=k&Authorization=Bearer%20t&api-key=k2&X-ConnectionId=abc",
			wantQuery: "X-ConnectionId=abc",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.AuthFormat = FormatBearer })
			target := "/speechtotext/transcriptions:transcribe"
			if tc.query != "" {
				target += "?" + tc.query
			}
			req := newHTTPRequest(t, http.MethodGet, f.url(target), nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, body := f.do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
			}
			got := f.seen.last(t)
			wantOnlyProxyCredential(t, got, "Bearer "+plantedToken)
			if got.rawQuery != tc.wantQuery {
				t.Errorf("upstream query = %q, want %q", got.rawQuery, tc.wantQuery)
			}
		})
	}
}

func TestOtherHeadersAndQueryPass(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, nil)
	const query = "language=en-US&format=detailed&X-ConnectionId=9f86d081884c7d65&api-version=2024-11-15&b=2&a=1&a=0"
	req := newHTTPRequest(t, http.MethodPost, f.url("/speechtotext/transcriptions:transcribe?"+query), strings.NewReader("{}"))
	pass := map[string]string{
		"X-ConnectionId":           "9f86d081884c7d65",
		"User-Agent":               "SpeechSDK-JavaScript/1.52.0",
		"Content-Type":             "application/ssml+xml",
		"X-Microsoft-OutputFormat": "riff-24khz-16bit-mono-pcm",
		"Ocp-Apim-Custom-Domain":   "kept",
	}
	for k, v := range pass {
		req.Header.Set(k, v)
	}
	req.Header.Set("Api-Key", "client-key")
	resp, body := f.do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	got := f.seen.last(t)
	if got.method != http.MethodPost {
		t.Errorf("upstream method = %q, want POST", got.method)
	}
	if got.rawQuery != query {
		t.Errorf("upstream query = %q, want %q (bytes and order kept)", got.rawQuery, query)
	}
	for k, want := range pass {
		if v := got.header.Get(k); v != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	wantOnlyProxyCredential(t, got, "Bearer "+plantedToken)
}

// The query reaches the upstream as the client sent it, HTTP and WebSocket
// alike, less the credential pieces: a query Go cannot parse (a ';', a bad
// '%' escape, more than 10,000 parameters) too. httputil.ReverseProxy
// re-encodes such a query for Rewrite (cleanQueryParams in net/http/httputil:
// unparsable pairs dropped, the rest sorted, over 10,000 all dropped), so the
// proxy starts from the client's. A server may split on ';' as well as '&',
// so a ';' piece naming a credential goes, and only it: before,
// "a=1;api-key=K&c=3" reached the upstream as "c=3" on both paths.
func TestQueryPassesAsSent(t *testing.T) {
	tooMany := strings.Repeat("p=1&", 10000) + "p=1"
	tests := []struct{ name, query, want string }{
		{"parsable", "b=2&a=%41&c=x+y", "b=2&a=%41&c=x+y"},
		{"a ';' pair", "b=2&a=1;x=y&c=x%20y&d=%41", "b=2&a=1;x=y&c=x%20y&d=%41"},
		{"a bad '%' pair", "z=1&c=%zz&a=%7e", "z=1&c=%zz&a=%7e"},
		{"a bad '%' in a name", "%zz=1&b=2", "%zz=1&b=2"},
		{"over 10,000 parameters", tooMany, tooMany},
		{"a credential after a ';'", "a=1;api-key=K&c=3", "a=1&c=3"},
		{"a credential before a ';'", "Ocp-Apim-Subscription-Key=K;a=1&c=3", "a=1&c=3"},
		{"credentials between pieces", "a=1;authorization=Bearer%20K;b=2;subscription-key=K&c=%zz", "a=1;b=2&c=%zz"},
		{"a part that was all credentials", "b=2&api-key=k;Api-Key=k2&c=3", "b=2&c=3"},
		{"a credential beside a bare piece", "b=2&api-key=k;x&api-key=k2", "b=2&x"},
	}
	f := newHTTPFixture(t, upstreamOK, nil)
	env := newWSFixture(t, nil, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := f.get(t, "/x?"+tc.query); resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d (body %s), want 200", resp.StatusCode, body)
			}
			if got := f.seen.last(t).rawQuery; got != tc.want {
				t.Errorf("HTTP: upstream query = %.80q, want %.80q", got, tc.want)
			}
			env.dial(t, "/x?"+tc.query, nil)
			if got := env.upstream.seen.last(t).rawQuery; got != tc.want {
				t.Errorf("WebSocket: upstream query = %.80q, want %.80q", got, tc.want)
			}
		})
	}
}

func TestHostIsUpstreams(t *testing.T) {
	for _, host := range []string{"evil.example", "localhost:8080", "169.254.169.254", "127.0.0.1:1"} {
		t.Run(host, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, nil)
			req := newHTTPRequest(t, http.MethodGet, f.url("/openai/v1/models"), nil)
			req.Host = host
			resp, body := f.do(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
			}
			want := f.upstream.Listener.Addr().String()
			if got := f.seen.last(t).host; got != want {
				t.Errorf("upstream Host = %q, want %q", got, want)
			}
		})
	}
}

// The client never chooses where traffic goes: absolute-form and CONNECT
// get 400 and the host they name is never contacted.
func TestAbsoluteFormAndConnectRefused(t *testing.T) {
	evil, evilSeen := newRecordingUpstream(t, upstreamOK)
	evilAddr := evil.Listener.Addr().String()
	tests := []struct {
		name string
		raw  string
	}{
		{"absolute-form GET", "GET http://" + evilAddr + "/ HTTP/1.1\r\nHost: " + evilAddr + "\r\nConnection: close\r\n\r\n"},
		{"absolute-form with Host of the proxy", "GET http://" + evilAddr + "/openai/v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"},
		{"absolute-form https", "GET https://" + evilAddr + "/ HTTP/1.1\r\nHost: " + evilAddr + "\r\nConnection: close\r\n\r\n"},
		{"absolute-form POST", "POST http://" + evilAddr + "/cognitiveservices/v1 HTTP/1.1\r\nHost: " + evilAddr + "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"},
		{"CONNECT", "CONNECT " + evilAddr + " HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, nil)
			resp, body := rawHTTPRequest(t, f.front.Listener.Addr().String(), tc.raw)
			wantProxyError(t, resp, body, http.StatusBadRequest, "bad_request")
			if n := f.seen.count(); n != 0 {
				t.Errorf("upstream requests = %d, want 0", n)
			}
		})
	}
	if n := evilSeen.count(); n != 0 {
		t.Errorf("requests to the named host = %d, want 0", n)
	}
}

// The client holds the first event before the upstream writes the second.
func TestServerSentEventsStream(t *testing.T) {
	g := newUpstreamGate()
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		g.wait(r)
		io.WriteString(w, "data: two\n\n")
	}), nil)
	t.Cleanup(g.open)

	// Should the proxy buffer, event one never comes; the deadline turns
	// that into a failure instead of a hang.
	ctx, cancel := context.WithTimeout(t.Context(), wsWait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.url("/openai/deployments/d/chat/completions?api-version=2024-10-21"), strings.NewReader(`{"stream":true}`))
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", got)
	}
	events := bufio.NewReader(resp.Body)
	if got := readEvent(t, events); got != "data: one" {
		t.Fatalf("first event = %q, want %q", got, "data: one")
	}
	g.open() // only now may the upstream write event two
	if got := readEvent(t, events); got != "data: two" {
		t.Fatalf("second event = %q, want %q", got, "data: two")
	}
}

// readEvent reads one server-sent event (up to its blank line).
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v (read %q so far)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, line)
	}
}

// A response of unknown length reaches the client as the upstream writes it.
func TestChunkedResponseStreams(t *testing.T) {
	g := newUpstreamGate()
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		io.WriteString(w, "first-part")
		w.(http.Flusher).Flush()
		g.wait(r)
		io.WriteString(w, "second-part")
	}), nil)
	t.Cleanup(g.open)

	ctx, cancel := context.WithTimeout(t.Context(), wsWait) // a hang guard
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url("/tts/cognitiveservices/v1"), nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want -1 (unknown)", resp.ContentLength)
	}
	first := make([]byte, len("first-part"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("read first part: %v", err)
	}
	if string(first) != "first-part" {
		t.Fatalf("first part = %q, want %q", first, "first-part")
	}
	g.open()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read rest: %v", err)
	}
	if string(rest) != "second-part" {
		t.Errorf("rest = %q, want %q", rest, "second-part")
	}
}

// aadOnlyUpstream accepts only the aad form; anything else gets 401. It
// records the body of each request it reads.
func aadOnlyUpstream(bodies *[]string, mu *sync.Mutex) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		*bodies = append(*bodies, string(b))
		mu.Unlock()
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer aad#"+plantedResourceID+"#") {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"401","message":"Unauthorized"}}`)
			return
		}
		io.WriteString(w, "ok")
	})
}

func TestAutoLearnsAADForm(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			f := newHTTPFixture(t, aadOnlyUpstream(&bodies, &mu), func(o *Options) {
				o.AuthFormat = FormatAuto
				o.ResourceID = plantedResourceID
			})
			send := func() {
				t.Helper()
				var body io.Reader
				if method == http.MethodPost {
					body = strings.NewReader("<speak>hello</speak>")
				}
				resp, got := f.do(t, newHTTPRequest(t, method, f.url("/tts/cognitiveservices/v1"), body))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, got)
				}
			}

			send()
			if n := f.seen.count(); n != 2 {
				t.Errorf("upstream requests after the first call = %d, want 2 (one retry)", n)
			}
			if n := f.tokens.renewCount(); n != 1 {
				t.Errorf("Renew calls = %d, want 1", n)
			}
			wantOnlyProxyCredential(t, f.seen.last(t), "Bearer aad#"+plantedResourceID+"#"+f.tokens.current())

			send()
			if n := f.seen.count(); n != 3 {
				t.Errorf("upstream requests after the second call = %d, want 3 (aad first)", n)
			}
			if n := f.tokens.renewCount(); n != 1 {
				t.Errorf("Renew calls = %d, want still 1", n)
			}
			if method == http.MethodPost {
				mu.Lock()
				defer mu.Unlock()
				for i, b := range bodies {
					if b != "<speak>hello</speak>" {
						t.Errorf("upstream body %d = %q, want the request body (replayed)", i, b)
					}
				}
			}
		})
	}
}

// Without a resource id, auto retries once in bearer form with a fresh token.
func TestAutoRetriesBearerWithFreshToken(t *testing.T) {
	stale := "Bearer " + plantedToken
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == stale {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}), func(o *Options) {
		o.AuthFormat = FormatAuto
		o.ResourceID = ""
	})
	resp, body := f.get(t, "/openai/v1/models")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	if n := f.seen.count(); n != 2 {
		t.Errorf("upstream requests = %d, want 2", n)
	}
	if n := f.tokens.renewCount(); n != 1 {
		t.Errorf("Renew calls = %d, want 1", n)
	}
	fresh := f.tokens.current()
	if fresh == plantedToken {
		t.Fatalf("token after Renew = %q, want a fresh one", fresh)
	}
	wantOnlyProxyCredential(t, f.seen.last(t), "Bearer "+fresh)
}

// A 2 MiB body with a Content-Length reaches the upstream while the client
// is still writing it: the proxy does not read it whole first.
func TestLargeBodyStreamed(t *testing.T) {
	const size = 2 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	gotFirst := make(chan struct{})
	type result struct {
		n   int64
		sum [32]byte
	}
	received := make(chan result, 1)
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(gotFirst)
		h := sha256.New()
		h.Write(first)
		n, _ := io.Copy(h, r.Body)
		var res result
		res.n = n + 1
		copy(res.sum[:], h.Sum(nil))
		received <- res
		io.WriteString(w, "ok")
	}), nil)

	pr, pw := io.Pipe()
	defer pr.Close()
	req := newHTTPRequest(t, http.MethodPost, f.url("/speechtotext/transcriptions:transcribe?api-version=2024-11-15"), pr)
	req.ContentLength = size
	req.Header.Set("Content-Type", "audio/wav")

	secondHalf := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		if _, err := pw.Write(payload[:size/2]); err != nil {
			writerDone <- err
			return
		}
		<-secondHalf
		_, err := pw.Write(payload[size/2:])
		pw.CloseWithError(err)
		writerDone <- err
	}()

	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := f.client.Do(req)
		answered <- answer{resp, err}
	}()

	select {
	case <-gotFirst:
	case a := <-answered:
		t.Fatalf("answered before the upstream got a byte: %v", a.err)
	case <-time.After(wsWait): // a hang guard, not synchronisation
		close(secondHalf)
		t.Fatal("upstream got no byte while the client held back half the body (body buffered, not streamed)")
	}
	close(secondHalf)
	if err := <-writerDone; err != nil {
		t.Fatalf("write body: %v", err)
	}
	a := <-answered
	if a.err != nil {
		t.Fatalf("POST: %v", a.err)
	}
	defer a.resp.Body.Close()
	if a.resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", a.resp.StatusCode)
	}
	res := <-received
	if res.n != size {
		t.Errorf("upstream body bytes = %d, want %d", res.n, size)
	}
	if res.sum != sha256.Sum256(payload) {
		t.Error("upstream body differs from what the client sent")
	}
	if n := f.seen.count(); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
}

// A body over 1 MiB is sent once: under auto a 401 reaches the client as the
// upstream's answer, with no retry.
func TestLargeBodyNotReplayed(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	f := newHTTPFixture(t, aadOnlyUpstream(&bodies, &mu), func(o *Options) {
		o.AuthFormat = FormatAuto
		o.ResourceID = plantedResourceID
	})
	payload := bytes.Repeat([]byte{'a'}, 2<<20)
	req := newHTTPRequest(t, http.MethodPost, f.url("/speechtotext/transcriptions:transcribe?api-version=2024-11-15"), bytes.NewReader(payload))
	resp, body := f.do(t, req)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401 (the upstream's)", resp.StatusCode)
	}
	if !strings.Contains(body, "Unauthorized") {
		t.Errorf("body = %q, want the upstream's 401 body", body)
	}
	if n := f.seen.count(); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}
	if n := f.tokens.renewCount(); n != 0 {
		t.Errorf("Renew calls = %d, want 0", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 1 && len(bodies[0]) != len(payload) {
		t.Errorf("upstream body bytes = %d, want %d", len(bodies[0]), len(payload))
	}
}

// No token means a 503, never an unauthenticated call to Azure.
func TestTokenUnavailable(t *testing.T) {
	f := newHTTPFixture(t, upstreamOK, nil)
	f.tokens.setErr(errors.New("DefaultAzureCredential: no credential in the chain"))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			resp, body := f.do(t, newHTTPRequest(t, method, f.url("/tts/cognitiveservices/v1"), strings.NewReader("<speak/>")))
			wantProxyError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
		})
	}
	if n := f.seen.count(); n != 0 {
		t.Errorf("upstream requests = %d, want 0", n)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	// Connection refused: a held port nobody listens on (a closed
	// listener's port could be given to another test and answer).
	refusing := testport.Reserve(t).Addr()
	f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.Upstream = &url.URL{Scheme: "http", Host: refusing} })
	resp, body := f.get(t, "/openai/v1/models")
	wantProxyError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
}

// Every proxy-made answer is JSON in the Azure envelope and never holds the
// token or a key, even when the request carried them.
func TestProxyErrorsAreJSONWithoutSecrets(t *testing.T) {
	refusing := testport.Reserve(t).Addr() // connection refused
	withKey := func(r *http.Request) {
		r.Header.Set("Ocp-Apim-Subscription-Key", plantedKey)
		q := r.URL.Query()
		q.Set("api-key", plantedKey)
		r.URL.RawQuery = q.Encode()
	}
	tests := []struct {
		name      string
		upstream  http.Handler
		configure func(o *Options)
		prepare   func(f *fixture, r *http.Request)
		raw       bool // send an absolute-form request instead
		status    int
		code      string
	}{
		{name: "bad_request", raw: true, status: 400, code: "bad_request"},
		{
			name:    "inbound_key_required",
			prepare: func(*fixture, *http.Request) {},
			status:  401, code: "inbound_key_required",
		},
		{
			name:    "inbound_key_invalid",
			prepare: func(_ *fixture, r *http.Request) { r.Header.Set("Api-Key", plantedWrong) },
			status:  401, code: "inbound_key_invalid",
		},
		{
			name: "origin_not_allowed",
			prepare: func(_ *fixture, r *http.Request) {
				withKey(r)
				r.Header.Set("Origin", "https://evil.example")
			},
			status: 403, code: "origin_not_allowed",
		},
		{
			name:      "host_not_allowed",
			configure: func(o *Options) { o.AllowedHosts = hosts.ForListener("127.0.0.1:8080", nil) },
			prepare: func(_ *fixture, r *http.Request) {
				withKey(r)
				r.Host = "evil.example"
			},
			status: 403, code: "host_not_allowed",
		},
		{
			name: "token_unavailable",
			prepare: func(f *fixture, r *http.Request) {
				withKey(r)
				f.tokens.setErr(errors.New("credential failed"))
			},
			status: 503, code: "token_unavailable",
		},
		{
			name:      "upstream_unreachable",
			configure: func(o *Options) { o.Upstream = &url.URL{Scheme: "http", Host: refusing} },
			prepare:   func(_ *fixture, r *http.Request) { withKey(r) },
			status:    502, code: "upstream_unreachable",
		},
		{
			name: "upstream_timeout",
			upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// With the body read, the server notices when the proxy gives
				// up and hangs up, and ends the request.
				io.Copy(io.Discard, r.Body)
				<-r.Context().Done()
			}),
			configure: func(o *Options) { o.ResponseTimeout = 200 * time.Millisecond },
			prepare:   func(_ *fixture, r *http.Request) { withKey(r) },
			status:    504, code: "upstream_timeout",
		},
		{
			name: "redirect_not_allowed",
			upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://eastus.tts.speech.microsoft.com.evil.example/x", http.StatusTemporaryRedirect)
			}),
			prepare: func(_ *fixture, r *http.Request) { withKey(r) },
			status:  502, code: "redirect_not_allowed",
		},
		{
			name: "shutting_down",
			prepare: func(f *fixture, r *http.Request) {
				withKey(r)
				f.proxy.Shutdown(context.Background())
			},
			status: 503, code: "shutting_down",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := tc.upstream
			if up == nil {
				up = upstreamOK
			}
			f := newHTTPFixture(t, up, func(o *Options) {
				o.InboundKeys = []string{plantedKey, plantedKey2}
				if tc.configure != nil {
					tc.configure(o)
				}
			})
			var resp *http.Response
			var body string
			if tc.raw {
				resp, body = rawHTTPRequest(t, f.front.Listener.Addr().String(),
					"GET http://evil.example/?api-key="+plantedKey+" HTTP/1.1\r\nHost: evil.example\r\nApi-Key: "+plantedKey+"\r\nConnection: close\r\n\r\n")
			} else {
				req := newHTTPRequest(t, http.MethodPost, f.url("/tts/cognitiveservices/v1"), strings.NewReader("<speak/>"))
				tc.prepare(f, req)
				resp, body = f.do(t, req)
			}
			wantProxyError(t, resp, body, tc.status, tc.code)
		})
	}
}

// One JSON line per request, with the fields the README's Logs guarantee names, and never
// a token or key, at any level.
func TestAccessLog(t *testing.T) {
	var logs logBuffer
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "world!")
	}), func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.InboundKeys = []string{plantedKey}
	})
	const path = "/speech/recognition/conversation/cognitiveservices/v1"
	req := newHTTPRequest(t, http.MethodPost, f.url(path+"?language=en-US&Ocp-Apim-Subscription-Key="+plantedKey), strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer "+plantedKey)
	resp, body := f.do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	f.front.Close() // waits for the handler, so its log line is written

	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("request lines = %d, want 1; log:\n%s", len(lines), logs.String())
	}
	want := map[string]any{
		"method": "POST", "path": path, "status": float64(200),
		"bytes_in": float64(len("hello")), "bytes_out": float64(len("world!")),
	}
	for k, w := range want {
		if got := lines[0][k]; got != w {
			t.Errorf("log %s = %v, want %v", k, got, w)
		}
	}
	if _, ok := lines[0]["duration"]; !ok {
		t.Error("log has no duration")
	}
	wantNoPlantedSecret(t, "log", logs.String())
}

// A request target that starts with "//" is a path, not an authority: it
// still goes to the upstream, never to the host it names.
func TestDoubleSlashPathStaysOnUpstream(t *testing.T) {
	evil, evilSeen := newRecordingUpstream(t, upstreamOK)
	evilAddr := evil.Listener.Addr().String()
	f := newHTTPFixture(t, upstreamOK, nil)
	resp, body := rawHTTPRequest(t, f.front.Listener.Addr().String(),
		"GET //"+evilAddr+"/x HTTP/1.1\r\nHost: "+evilAddr+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	got := f.seen.last(t)
	if want := f.upstream.Listener.Addr().String(); got.host != want {
		t.Errorf("upstream Host = %q, want %q", got.host, want)
	}
	if want := "//" + evilAddr + "/x"; got.requestURI != want {
		t.Errorf("upstream request URI = %q, want %q", got.requestURI, want)
	}
	if n := evilSeen.count(); n != 0 {
		t.Errorf("requests to the named host = %d, want 0", n)
	}
}

// The caller's Options.TLSConfig is shared with the WebSocket dialer and
// may be the caller's own; forwarding must not modify it (http.Transport
// adds ALPN protocols to the config it is given).
func TestTLSConfigNotModified(t *testing.T) {
	secure := httptest.NewTLSServer(upstreamOK)
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	f := newHTTPFixtureFor(t, secure, &upstreamLog{}, func(o *Options) { o.TLSConfig = cfg })
	resp, body := f.get(t, "/openai/v1/models")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
	}
	if cfg.NextProtos != nil {
		t.Errorf("Options.TLSConfig.NextProtos = %q after a request, want nil (unmodified)", cfg.NextProtos)
	}
}
