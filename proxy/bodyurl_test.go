package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/transform"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// batchAnswer is a batch transcription answer as Azure writes it: absolute
// URLs of the upstream in self, links and @nextLink, one with escaped
// slashes (as some JSON encoders write them), one of another host (the
// result files live in blob storage) and look-alikes of the upstream's
// host that are other hosts, and text that mentions the upstream's URL.
func batchAnswer(up string) string {
	return `{"self":"https://` + up + `/speechtotext/transcriptions/1?api-version=2024-11-15",` +
		`"links":{"files":"http://` + up + `/speechtotext/transcriptions/1/files?api-version=2024-11-15"},` +
		`"@nextLink":"HTTPS://` + strings.ToUpper(up) + `/speechtotext/transcriptions?skip=2&top=2",` +
		`"escaped":"https:\/\/` + up + `\/speechtotext\/transcriptions\/2",` +
		`"socket":"wss://` + up + `/openai/v1/realtime?model=m",` +
		`"contentUrl":"https://stspeech.blob.core.windows.net/bestor/1.json?sv=2024&sig=abc",` +
		`"notUpstream":["https://` + up + `0/x","https://` + up + `.evil.example/x","https://` + up + `@evil.example/x","https://` + up + `\u0040evil.example/x"],` +
		`"text":"see https://` + up + `/x","https://` + up + `/ is where it runs":"https://` + up + `/ is where it runs"}`
}

// wantAnswer is batchAnswer pointing at proxy instead.
func wantAnswer(up, proxy string) string {
	return `{"self":"http://` + proxy + `/speechtotext/transcriptions/1?api-version=2024-11-15",` +
		`"links":{"files":"http://` + proxy + `/speechtotext/transcriptions/1/files?api-version=2024-11-15"},` +
		`"@nextLink":"http://` + proxy + `/speechtotext/transcriptions?skip=2&top=2",` +
		`"escaped":"http:\/\/` + proxy + `\/speechtotext\/transcriptions\/2",` +
		`"socket":"ws://` + proxy + `/openai/v1/realtime?model=m",` +
		`"contentUrl":"https://stspeech.blob.core.windows.net/bestor/1.json?sv=2024&sig=abc",` +
		`"notUpstream":["https://` + up + `0/x","https://` + up + `.evil.example/x","https://` + up + `@evil.example/x","https://` + up + `\u0040evil.example/x"],` +
		`"text":"see https://` + up + `/x","https://` + up + `/ is where it runs":"https://` + up + `/ is where it runs"}`
}

// Batch transcription answers carry absolute upstream URLs in their JSON
// (self, links.files, @nextLink); Microsoft's batch sample follows them,
// which would send the app to Azure with its dummy key. In JSON answers such
// URLs (the upstream's host, any scheme and letter case, escaped slashes
// too) point at the proxy, as the client addressed it; other hosts and
// look-alikes stay. Content-Length stays right: an answer of known length up
// to 1 MiB is rewritten whole and gets its new length, a longer or chunked
// one is rewritten as it streams and goes chunked; a gzip answer is
// decoded (the proxy asks the upstream for gzip itself) and streams too.
func TestJSONBodyURLsPointAtProxy(t *testing.T) {
	var up string
	big := strings.Repeat(" ", 1<<20) // JSON whitespace, to pass 1 MiB
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := batchAnswer(up)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch r.URL.Path {
		case "/known-length":
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		case "/over-1mib":
			body = body[:1] + big + body[1:]
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
		case "/chunked-in-pieces":
			// A few bytes per write, flushed: URLs cross every boundary.
			for i := 0; i < len(body); i += 7 {
				io.WriteString(w, body[i:min(i+7, len(body))])
				w.(http.Flusher).Flush()
			}
		case "/gzip":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				t.Errorf("Accept-Encoding = %q, want gzip asked for", r.Header.Get("Accept-Encoding"))
			}
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			io.WriteString(gz, body)
			gz.Close()
		case "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, body)
		}
	}), nil)
	up = f.upstream.Listener.Addr().String()
	proxy := f.front.Listener.Addr().String()
	want := wantAnswer(up, proxy)
	tests := []struct {
		path          string
		status        int
		contentLength bool // the answer has a Content-Length
		padded        bool
	}{
		{"/known-length", 200, true, false},
		{"/over-1mib", 200, false, true},
		{"/chunked-in-pieces", 200, false, false},
		{"/gzip", 200, false, false}, // decoded as it streams
		{"/problem", 404, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			req := newHTTPRequest(t, http.MethodGet, f.url(tc.path), nil)
			req.Header.Set("Accept-Encoding", "gzip, br, zstd") // as a browser or Python requests would
			resp, body := f.do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.padded {
				body = body[:1] + strings.TrimLeft(body[1:], " ")
			}
			if body != want {
				t.Errorf("body =\n%s\nwant\n%s", body, want)
			}
			if enc := resp.Header.Get("Content-Encoding"); enc != "" {
				t.Errorf("Content-Encoding = %q, want none (the proxy decoded it)", enc)
			}
			cl := resp.Header.Get("Content-Length")
			switch {
			case tc.contentLength && cl != strconv.Itoa(int(resp.ContentLength)):
				t.Errorf("Content-Length = %q, want the body's length", cl)
			case !tc.contentLength && (cl != "" || resp.ContentLength != -1):
				t.Errorf("Content-Length = %q, want none (chunked)", cl)
			}
		})
	}
}

// A long rewritten answer streams: the client has its first part while the
// upstream still holds the rest (memory stays bounded whatever its size).
func TestJSONBodyURLsRewrittenAsTheyStream(t *testing.T) {
	var up string
	g := newUpstreamGate()
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"self":"https://`+up+`/speechtotext/transcriptions/1"},`)
		w.(http.Flusher).Flush()
		g.wait(r)
		io.WriteString(w, `{"self":"https://`+up+`/speechtotext/transcriptions/2"}]`)
	}), nil)
	t.Cleanup(g.open)
	up = f.upstream.Listener.Addr().String()
	resp, err := f.client.Do(newHTTPRequest(t, http.MethodGet, f.url("/speechtotext/transcriptions"), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	proxy := f.front.Listener.Addr().String()
	first := `[{"self":"http://` + proxy + `/speechtotext/transcriptions/1"},`
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != first {
		t.Fatalf("first part = %q, %v; want %q while the upstream holds the rest", buf, err, first)
	}
	g.open()
	rest, _ := io.ReadAll(resp.Body)
	if want := `{"self":"http://` + proxy + `/speechtotext/transcriptions/2"}]`; string(rest) != want {
		t.Errorf("rest = %q, want %q", rest, want)
	}
}

// Answers that are not JSON pass byte for byte, and with the setting off
// JSON does too, with the client's Accept-Encoding passed on.
func TestBodyURLsLeftAlone(t *testing.T) {
	var up string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := batchAnswer(up)
		if r.URL.Path == "/text" {
			w.Header().Set("Content-Type", "text/plain")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("X-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	t.Run("not JSON", func(t *testing.T) {
		f := newHTTPFixture(t, handler, nil)
		up = f.upstream.Listener.Addr().String()
		resp, body := f.get(t, "/text")
		if body != batchAnswer(up) || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("body changed: %s", body)
		}
	})
	t.Run("setting off", func(t *testing.T) {
		f := newHTTPFixture(t, handler, func(o *Options) { o.KeepBodyURLs = true })
		up = f.upstream.Listener.Addr().String()
		req := newHTTPRequest(t, http.MethodGet, f.url("/json"), nil)
		req.Header.Set("Accept-Encoding", "identity")
		resp, body := f.do(t, req)
		if body != batchAnswer(up) || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("body changed: %s", body)
		}
		if got := resp.Header.Get("X-Accept-Encoding"); got != "identity" {
			t.Errorf("upstream Accept-Encoding = %q, want the client's", got)
		}
	})
}

// Hosts the proxy was redirected to are the upstream's too: a JSON answer
// (and a 2xx Location) from the redirect target pointing at itself is
// pointed at the proxy, so the client's next call comes back with the token.
func TestBodyURLsOfRedirectTargetPointAtProxy(t *testing.T) {
	var target string
	tgt, _ := newRecordingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "http://"+target+"/speechtotext/transcriptions/9")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"self":"http://`+target+`/speechtotext/transcriptions/9"}`)
	}))
	target = tgt.Listener.Addr().String()
	f := newHTTPFixture(t, redirectTo("http://"+target, http.StatusTemporaryRedirect), func(o *Options) {
		o.RedirectHosts = []string{target}
	})
	resp, body := f.do(t, newHTTPRequest(t, http.MethodPost, f.url("/speechtotext/transcriptions"), bytes.NewReader([]byte(`{"displayName":"x"}`))))
	proxy := f.front.Listener.Addr().String()
	if want := `{"self":"http://` + proxy + `/speechtotext/transcriptions/9"}`; resp.StatusCode != http.StatusCreated || body != want {
		t.Errorf("answer = %d %s, want 201 %s", resp.StatusCode, body, want)
	}
	if got, want := resp.Header.Get("Location"), "http://"+proxy+"/speechtotext/transcriptions/9"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}

// However a JSON answer is cut into reads, streaming rewrites it exactly as
// a rewrite of the whole does, and that equals a plain reference: each JSON
// string value whose whole text is scheme://HOST (any case, :\/\/ too)
// followed by a path, query, fragment or nothing, without whitespace, gets
// the proxy's scheme and host; nothing else changes.
func FuzzURLRewriter(f *testing.F) {
	const up, proxy = "up.example:8443", "127.0.0.1:8080"
	f.Add(batchAnswer(up), uint8(7))
	f.Add(`"https://up.example:8443"`, uint8(1))
	f.Add(`["https://up.example:8443","https://up.example:8443/"]`, uint8(3))
	f.Add(`{"hhttps://UP.example:8443\/x":"HTTPS://UP.example:8443\/x"}`, uint8(2))
	f.Add(`{"a" : "wss:\/\/up.example:8443?" , "b":"wss:\/\/up.example:8443\u003f"}`, uint8(5))
	f.Add(`{"text":"Our endpoint is https://up.example:8443/ and HTTPS://up.example:8443/x","u":"https://up.example:8443/a\u00a0b"}`, uint8(4))
	f.Add(`["https://up.example:8443/\"x", "https://up.example:8443/\n", "https://up.example:8443\u0040e.example"]`, uint8(6))
	f.Fuzz(func(t *testing.T, body string, cut uint8) {
		rw := newURLRewriter([]string{up}, clientAddr{host: proxy})
		whole, _, err := transform.String(rw, body)
		if err != nil {
			t.Fatalf("whole: %v", err)
		}
		streamed, err := io.ReadAll(transform.NewReader(&cutReader{s: body, n: int(cut%16) + 1}, newURLRewriter([]string{up}, clientAddr{host: proxy})))
		if err != nil {
			t.Fatalf("streamed: %v", err)
		}
		if string(streamed) != whole {
			t.Fatalf("streamed %q, whole %q", streamed, whole)
		}
		if want, judged := referenceRewrite(body, up, proxy); judged && whole != want {
			t.Fatalf("rewrote %q to %q, want %q", body, whole, want)
		}
	})
}

// cutReader reads s n bytes at a time.
type cutReader struct {
	s string
	n int
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[n:]
	return n, nil
}

// referenceRewrite is the rewrite done the slow, obvious way: find each
// string whole, decode it with encoding/json, and judge it. judged is false
// when a string is not valid JSON: how such text is rewritten is not
// specified.
func referenceRewrite(s, up, proxy string) (out string, judged bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '"' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i + 1
		for j < len(s) && s[j] != '"' {
			if s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) { // unterminated: passes
			b.WriteString(s[i:])
			break
		}
		content := s[i+1 : j]
		var decoded string
		if json.Unmarshal([]byte(s[i:j+1]), &decoded) != nil {
			return "", false
		}
		k := j + 1
		for k < len(s) && strings.IndexByte(" \t\n\r", s[k]) >= 0 {
			k++
		}
		isKey := k < len(s) && s[k] == ':'
		b.WriteByte('"')
		b.WriteString(referenceLink(content, decoded, isKey, up, proxy))
		b.WriteByte('"')
		i = j + 1
	}
	return b.String(), true
}

// referenceLink is content, a JSON string's text (decoded: its value),
// pointed at proxy when it is a link to up.
func referenceLink(content, decoded string, isKey bool, up, proxy string) string {
	if isKey || len(content) > maxLinkHeld || strings.ContainsFunc(decoded, func(r rune) bool { return r < ' ' || unicode.IsSpace(r) }) {
		return content
	}
	for _, scheme := range []string{"https", "http", "wss", "ws"} {
		for _, sep := range []string{"://", `:\/\/`} {
			p := scheme + sep + up
			if len(content) < len(p) || !strings.EqualFold(content[:len(p)], p) {
				continue
			}
			var rest string
			if json.Unmarshal([]byte(`"`+content[len(p):]+`"`), &rest) != nil || rest != "" && !strings.ContainsRune("/?#", rune(rest[0])) {
				continue
			}
			out := "http"
			if strings.HasPrefix(scheme, "ws") {
				out = "ws"
			}
			return out + sep + proxy + content[len(p):]
		}
	}
	return content
}

// trickleBody gives its first bytes, then, on the next read, notes how much
// the process has allocated since start and ends as an upstream that
// stopped would.
type trickleBody struct {
	first     []byte
	start     runtime.MemStats
	allocated uint64
}

func (b *trickleBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	var now runtime.MemStats
	runtime.ReadMemStats(&now)
	b.allocated = now.TotalAlloc - b.start.TotalAlloc
	return 0, io.ErrUnexpectedEOF
}

func (b *trickleBody) Close() error { return nil }

// TestJSONAnswerMemoryFollowsBytesReceived: a JSON answer of known length
// that the proxy reads whole (at most 1 MiB) takes memory as its bytes
// arrive, not as its Content-Length declares, as request bodies do
// (TestReplayBufferGrowsWithBytesReceived). Before, a 1 MiB buffer was made
// before the first byte. The bound is an eighth of the declared length;
// the first read's buffer is 32 KiB.
func TestJSONAnswerMemoryFollowsBytesReceived(t *testing.T) {
	const declared = maxRewrittenBody
	req := httptest.NewRequest(http.MethodGet, "/speechtotext/transcriptions", nil)
	body := &trickleBody{first: []byte(`{"self":"https://`)}
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		ContentLength: declared, Body: body, Request: req}
	rw := newURLRewriter([]string{"up.example"}, clientAddr{host: "127.0.0.1:8080"})
	bufs := &copyBuffers{}
	bufs.Put(bufs.Get()) // a pooled buffer, as a running proxy has
	runtime.ReadMemStats(&body.start)
	if err := rewriteJSONURLs(resp, rw, bufs); err == nil {
		t.Fatal("an answer that ended early was taken")
	}
	t.Logf("allocated %d bytes for an answer that declared %d and sent %d", body.allocated, declared, len(`{"self":"https://`))
	if bound := uint64(declared / 8); body.allocated > bound {
		t.Errorf("allocated %d bytes before the answer's second read, want at most %d: memory must follow the bytes received", body.allocated, bound)
	}
}

// Only links are rewritten, never content: a Translator answer translating
// a text that names the upstream's URL comes back as the service wrote it,
// whatever the answer's framing, while a link beside it (a string value
// that is the URL, whole) still points at the proxy. A string that starts
// with the URL and goes on in prose, one with escaped whitespace, an
// object key, and a URL whose host the escaped '@' makes another's pass too.
func TestBodyURLsOnlyLinks(t *testing.T) {
	var up string
	answer := func() string {
		return `[{"translations":[{"text":"Our endpoint is https://` + up + `/ and HTTPS://` + strings.ToUpper(up) + `/x","to":"de"},` +
			`{"text":"https://` + up + `/ is our endpoint","to":"fr"},{"text":"https://` + up + `/a\tb","to":"it"}],` +
			`"https://` + up + `/":"a key","link":"https://` + up + `/translate?to=de","at":"https://` + up + `\u0040evil.example/"}]`
	}
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := answer()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.URL.Query().Get("framing") == "known-length" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			io.WriteString(w, body)
			return
		}
		for i := 0; i < len(body); i += 5 { // chunked, flushed in small pieces
			io.WriteString(w, body[i:min(i+5, len(body))])
			w.(http.Flusher).Flush()
		}
	}), nil)
	up = f.upstream.Listener.Addr().String()
	want := strings.Replace(answer(), `"link":"https://`+up, `"link":"http://`+f.front.Listener.Addr().String(), 1)
	for _, framing := range []string{"known-length", "chunked"} {
		t.Run(framing, func(t *testing.T) {
			req := newHTTPRequest(t, http.MethodPost, f.url("/translate?api-version=3.0&to=de&framing="+framing),
				strings.NewReader(`[{"Text":"Our endpoint is https://`+up+`/"}]`))
			resp, body := f.do(t, req)
			if resp.StatusCode != http.StatusOK || body != want {
				t.Errorf("answer = %d\n%s\nwant 200\n%s", resp.StatusCode, body, want)
			}
		})
	}
}

// A replacement longer than the rewriter's output buffer (4 KiB in
// transform.Reader) gets through whole: a client that addresses the proxy
// by a long allowed name (ENTRAPROXY_ALLOWED_HOSTS *.example) gets its
// streamed answer's links pointed at that name. Before, the rewriter could
// never write it and the answer was cut after its headers.
func TestBodyURLsLongClientHost(t *testing.T) {
	var up string
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"self":"https://`+up+`/speechtotext/transcriptions/1","@nextLink":"https://`+up+`/speechtotext/transcriptions?skip=1"}`)
		w.(http.Flusher).Flush() // chunked: rewritten as it streams
	}), func(o *Options) { o.AllowedHosts = hosts.ForListener("127.0.0.1:0", []string{"*.example"}) })
	up = f.upstream.Listener.Addr().String()
	long := strings.Repeat("a123456789.", 600) + "example" // 6,607 bytes, labels of 10
	req := newHTTPRequest(t, http.MethodGet, f.url("/speechtotext/transcriptions"), nil)
	req.Host = long
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer: %v (after %d bytes)", err, len(body))
	}
	if want := `{"self":"http://` + long + `/speechtotext/transcriptions/1","@nextLink":"http://` + long + `/speechtotext/transcriptions?skip=1"}`; string(body) != want {
		t.Errorf("answer = %d, %d bytes %.200q..., want %d bytes", resp.StatusCode, len(body), body, len(want))
	}
}

// The rewriter holds a string that may be a link until it ends, at most
// maxLinkHeld bytes: a longer one passes unchanged (no server takes a URL
// that long), streamed or whole, and memory stays bounded.
func TestURLRewriterHoldsAtMostMaxLinkHeld(t *testing.T) {
	const up, proxy = "up.example", "127.0.0.1:8080"
	path := func(n int) string { return "https://" + up + "/" + strings.Repeat("p", n-len("https://"+up+"/")) }
	body := `["` + path(maxLinkHeld) + `","` + path(maxLinkHeld+1) + `"]`
	want := `["` + strings.Replace(path(maxLinkHeld), "https://"+up, "http://"+proxy, 1) + `","` + path(maxLinkHeld+1) + `"]`
	rw := newURLRewriter([]string{up}, clientAddr{host: proxy})
	streamed, err := io.ReadAll(transform.NewReader(&cutReader{s: body, n: 1000}, rw))
	if err != nil || string(streamed) != want {
		t.Errorf("streamed: %v, equal %v", err, string(streamed) == want)
	}
	if c := cap(rw.held); c > 2*maxLinkHeld {
		t.Errorf("held capacity %d, want at most %d", c, 2*maxLinkHeld)
	}
	whole, _, err := transform.String(newURLRewriter([]string{up}, clientAddr{host: proxy}), body)
	if err != nil || whole != want {
		t.Errorf("whole: %v, equal %v", err, whole == want)
	}
}
