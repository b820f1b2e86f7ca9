package proxy

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/internal/wstest"
	"github.com/entraproxy/entraproxy/proxy/internal/wsrelay"
)

// Absurd WebSocket messages from a client: koding relays whole messages, so
// without a limit one message would make the proxy hold all of it. A data
// frame that would take its message past wsrelay.MaxClientMessage is withheld and
// the session ends with 1009 (message too big) to both sides.
func TestWebSocketClientMessageLimit(t *testing.T) {
	t.Run("20 MiB in one frame: 1009 both ways, memory flat", func(t *testing.T) {
		env := newWSFixture(t, nil, nil)
		client, upstream := env.open(t, wsSpeechPath, nil)
		frame := append(wstest.HeaderOnly(true, opBinary, 20<<20, wsZeroKey), make([]byte, 20<<20)...)

		base := heapInuse()
		var peak atomic.Uint64
		stopSampling := sampleHeap(&peak)
		wrote := make(chan error, 1)
		go func() { _, err := client.NetConn().Write(frame); wrote <- err }()

		_, _, err := upstream.ReadMessage()
		wsWantClose(t, "upstream", err, websocket.CloseMessageTooBig, wsrelay.MessageTooBigReason)
		_, _, err = client.ReadMessage()
		wsWantClose(t, "client", err, websocket.CloseMessageTooBig, "")
		stopSampling()
		wsRecv(t, "client write ends", wrote) // cut off once the proxy closed
		if grew := int64(peak.Load()) - int64(base); grew > 8<<20 {
			t.Errorf("proxy heap in use grew by %d MiB while a 20 MiB message was refused, want < 8 MiB", grew>>20)
		}
		wsSessionsDone(t, env.proxy)
		if lines := env.logs.sessionLines(t); len(lines) != 1 || lines[0].CloseCode != 1009 || lines[0].ClosedBy != "proxy" {
			t.Errorf("session log = %+v, want close_code 1009 closed_by proxy", lines)
		}
	})

	t.Run("fragments summing to one byte over the limit: 1009 both ways", func(t *testing.T) {
		env := newWSFixture(t, nil, nil)
		client, upstream := env.open(t, wsSpeechPath, nil)
		// A 1-byte first fragment, a ping (not part of the message), then a
		// continuation that declares the rest: the header alone decides.
		stream := wstest.Frame(false, opBinary, []byte{1}, wstest.Key)
		stream = append(stream, wstest.Frame(true, 0x9, nil, wstest.Key)...)
		stream = append(stream, wstest.HeaderOnly(true, opContinuation, wsrelay.MaxClientMessage, wstest.Key)...)
		if _, err := client.NetConn().Write(stream); err != nil {
			t.Fatal(err)
		}
		_, _, err := upstream.ReadMessage()
		wsWantClose(t, "upstream", err, websocket.CloseMessageTooBig, wsrelay.MessageTooBigReason)
		_, _, err = client.ReadMessage()
		wsWantClose(t, "client", err, websocket.CloseMessageTooBig, "")
	})

	t.Run("15 MiB passes", func(t *testing.T) {
		env := newWSFixture(t, nil, nil)
		client, upstream := env.open(t, wsSpeechPath, nil)
		msg := make([]byte, 15<<20)
		for i := range msg {
			msg[i] = byte(i * 31)
		}
		frame := append(wstest.HeaderOnly(true, opBinary, uint64(len(msg)), wsZeroKey), msg...)
		wrote := make(chan error, 1)
		go func() { _, err := client.NetConn().Write(frame); wrote <- err }()
		_, got, err := upstream.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("upstream got %d bytes, %v; want the 15 MiB message", len(got), err)
		}
		if err := wsRecv(t, "client write", wrote); err != nil {
			t.Fatal(err)
		}
		wsRoundTrip(t, client, upstream, websocket.TextMessage, []byte("still open"), "after")
	})
}

// wsZeroKey masks a client frame without changing its bytes (a valid key),
// so big test frames need no masking pass.
var wsZeroKey = []byte{0, 0, 0, 0}

// heapInuse is the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// sampleHeap records the highest HeapInuse seen into peak until stop is
// called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// WebSocket opcodes (RFC 6455, section 5.2) of the frames these tests write
// themselves.
const (
	opContinuation = 0x0
	opBinary       = 0x2
)

// The guards run on WebSocket upgrades before anything is dialed: a page in
// a browser cannot open a session (cross-site WebSocket hijacking), a DNS
// rebinding page cannot either, and in gateway mode a session needs a key,
// which never reaches the upstream.
func TestWebSocketGuardsBeforeDial(t *testing.T) {
	const allowed = "http://localhost:3000"
	for _, tc := range []struct {
		name   string
		host   string // "" keeps 127.0.0.1:port
		header http.Header
		query  string
		status int
		code   string
	}{
		{name: "foreign origin", header: http.Header{"Origin": {"https://evil.example"}, "Api-Key": {plantedKey}}, status: 403, code: "origin_not_allowed"},
		{name: "null origin", header: http.Header{"Origin": {"null"}, "Api-Key": {plantedKey}}, status: 403, code: "origin_not_allowed"},
		{name: "rebound host", host: "evil.example:8080", header: http.Header{"Api-Key": {plantedKey}}, status: 403, code: "host_not_allowed"},
		{name: "rebound host, allowed origin", host: "evil.example", header: http.Header{"Origin": {allowed}, "Api-Key": {plantedKey}}, status: 403, code: "host_not_allowed"},
		{name: "no key", status: 401, code: "inbound_key_required"},
		{name: "wrong key", header: http.Header{"Ocp-Apim-Subscription-Key": {"wrong-" + plantedKey}}, status: 401, code: "inbound_key_invalid"},
		{name: "wrong key in the query", query: "?Ocp-Apim-Subscription-Key=wrong", status: 401, code: "inbound_key_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newWSFixture(t, nil, func(o *Options) {
				o.InboundKeys = []string{plantedKey}
				o.AllowedOrigins = []string{allowed}
			})
			req, err := http.NewRequest(http.MethodGet, env.front.URL+wsSpeechPath+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wsWait}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wsWantError(t, resp, body, tc.status, tc.code)
			if n := env.upstream.conns.Load(); n != 0 {
				t.Errorf("upstream connections = %d, want 0", n)
			}
		})
	}
	t.Run("key in the query, as the JavaScript SDK sends it, allowed origin", func(t *testing.T) {
		env := newWSFixture(t, nil, func(o *Options) {
			o.InboundKeys = []string{plantedKey}
			o.AllowedOrigins = []string{allowed}
		})
		client, upstream := env.open(t, wsSpeechPath+"?Ocp-Apim-Subscription-Key="+plantedKey+"&X-ConnectionId=abc", http.Header{"Origin": {allowed}})
		wsRoundTrip(t, client, upstream, websocket.TextMessage, []byte("hi"), "client to upstream")
		hs := env.upstream.seen.all()[0]
		if hs.rawQuery != "X-ConnectionId=abc" {
			t.Errorf("upstream query = %q, want the key removed", hs.rawQuery)
		}
		for k, vs := range hs.header {
			for _, v := range vs {
				if strings.Contains(v, plantedKey) {
					t.Errorf("upstream header %s holds the inbound key", k)
				}
			}
		}
	})
}
