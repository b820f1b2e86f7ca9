package proxy

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/transform"
)

// batchAnswer is a batch transcription answer as Azure writes it: absolute
// URLs of the upstream in self, links and @nextLink, one with escaped
// slashes (as some JSON encoders write them), one of another host (the
// result files live in blob storage) and look-alikes of the upstream's
// host that are other hosts.
func batchAnswer(up string) string {
	return `{"self":"https://` + up + `/speechtotext/transcriptions/1?api-version=2024-11-15",` +
		`"links":{"files":"http://` + up + `/speechtotext/transcriptions/1/files?api-version=2024-11-15"},` +
		`"@nextLink":"HTTPS://` + strings.ToUpper(up) + `/speechtotext/transcriptions?skip=2&top=2",` +
		`"escaped":"https:\/\/` + up + `\/speechtotext\/transcriptions\/2",` +
		`"socket":"wss://` + up + `/openai/v1/realtime?model=m",` +
		`"contentUrl":"https://stspeech.blob.core.windows.net/bestor/1.json?sv=2024&sig=abc",` +
		`"notUpstream":["https://` + up + `0/x","https://` + up + `.evil.example/x","https://` + up + `@evil.example/x","see https://` + up + `"],` +
		`"text":"https://` + up + ` is where it runs"}`
}

// wantAnswer is batchAnswer pointing at proxy instead.
func wantAnswer(up, proxy string) string {
	return `{"self":"http://` + proxy + `/speechtotext/transcriptions/1?api-version=2024-11-15",` +
		`"links":{"files":"http://` + proxy + `/speechtotext/transcriptions/1/files?api-version=2024-11-15"},` +
		`"@nextLink":"http://` + proxy + `/speechtotext/transcriptions?skip=2&top=2",` +
		`"escaped":"http:\/\/` + proxy + `\/speechtotext\/transcriptions\/2",` +
		`"socket":"ws://` + proxy + `/openai/v1/realtime?model=m",` +
		`"contentUrl":"https://stspeech.blob.core.windows.net/bestor/1.json?sv=2024&sig=abc",` +
		`"notUpstream":["https://` + up + `0/x","https://` + up + `.evil.example/x","https://` + up + `@evil.example/x","see http://` + proxy + `"],` +
		`"text":"https://` + up + ` is where it runs"}`
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
// a rewrite of the whole does, and that equals a plain reference: every
// occurrence of scheme://HOST (any case, :\/\/ too) followed by a host end
// is replaced, nothing else changes.
func FuzzURLRewriter(f *testing.F) {
	const up, proxy = "up.example:8443", "127.0.0.1:8080"
	f.Add(batchAnswer(up), uint8(7))
	f.Add(`"https://up.example:8443"`, uint8(1))
	f.Add(`https://up.example:8443https://up.example:8443/`, uint8(3))
	f.Add(`hhttps://UP.example:8443\/x`, uint8(2))
	f.Add(`wss:\/\/up.example:8443?`, uint8(5))
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
		if want := referenceRewrite(body, up, proxy); whole != want {
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

// referenceRewrite is the rewrite done the slow, obvious way.
func referenceRewrite(s, up, proxy string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		done := false
		for _, scheme := range []string{"https", "http", "wss", "ws"} {
			for _, sep := range []string{"://", `:\/\/`} {
				p := scheme + sep + up
				if len(s)-i < len(p) || !strings.EqualFold(s[i:i+len(p)], p) {
					continue
				}
				if end := i + len(p); end < len(s) && !strings.ContainsRune(`/?#"\`, rune(s[end])) {
					continue
				}
				out := "http"
				if strings.HasPrefix(scheme, "ws") {
					out = "ws"
				}
				b.WriteString(out + sep + proxy)
				i += len(p)
				done = true
				break
			}
			if done {
				break
			}
		}
		if !done {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
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
