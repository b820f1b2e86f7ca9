package wsrelay

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testWait only turns an event that never comes into a failure; no
// working relay comes near it.
const testWait = 30 * time.Second

// panicLog records the relay's log records and announces each.
type panicLog struct {
	mu      sync.Mutex
	records []slog.Record
	logged  chan struct{} // one send per record
}

func (l *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *panicLog) WithGroup(string) slog.Handler            { return l }
func (l *panicLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	l.logged <- struct{}{}
	return nil
}

// wantPanicRecord checks that the relay logged one panic, at error level,
// with the panic's value and the stack that raised it.
func (l *panicLog) wantPanicRecord(t *testing.T, value, frame string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.records) != 1 {
		t.Fatalf("%d log records, want 1 (the panic)", len(l.records))
	}
	r := l.records[0]
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if r.Level != slog.LevelError || attrs["panic"] != value || !strings.Contains(attrs["stack"], frame) {
		t.Errorf("log record %q level %v attrs %v, want level ERROR, panic %q and a stack through %s", r.Message, r.Level, attrs, value, frame)
	}
}

// panicRig is an upstream that upgrades and then reads until its
// connection ends, and a front that relays to it with a Handshake whose
// callbacks the test sets.
type panicRig struct {
	log          *panicLog
	front        *httptest.Server
	upstreamGone chan error   // the upstream's read error, once its connection ended
	attempted    chan Outcome // what Attempt returned
	ended        atomic.Int32 // Ended calls so far
}

func newPanicRig(t *testing.T, upgraded func(*Session, http.Header), ended func(*Session)) *panicRig {
	t.Helper()
	rig := &panicRig{log: &panicLog{logged: make(chan struct{}, 8)}, upstreamGone: make(chan error, 1), attempted: make(chan Outcome, 1)}
	upgrader := websocket.Upgrader{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				rig.upstreamGone <- err
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	target := &url.URL{Scheme: "ws", Host: up.Listener.Addr().String(), Path: "/"}
	relay := New(&net.Dialer{}, nil, nil, testWait, slog.New(rig.log))
	rig.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := CheckUpgrade(r); err != nil {
			t.Errorf("CheckUpgrade: %v", err)
			return
		}
		rig.attempted <- relay.Attempt(w, r, Handshake{Target: target, Header: http.Header{},
			Upgraded: upgraded,
			Ended: func(s *Session) {
				rig.ended.Add(1)
				ended(s)
			},
		})
	}))
	t.Cleanup(rig.front.Close)
	return rig
}

func (rig *panicRig) wsURL() string { return "ws" + strings.TrimPrefix(rig.front.URL, "http") }

func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("%s: not after %v", what, testWait)
		panic("unreachable")
	}
}

// A panic in Upgraded runs on the relay's own goroutine, where net/http's
// recovery does not reach: unrecovered, it would end the process and every
// session in it. The test binary surviving is the first check.
func TestAttemptRecoversPanicInUpgraded(t *testing.T) {
	rig := newPanicRig(t, func(*Session, http.Header) { panic("upgraded exploded") }, func(*Session) {})

	_, _, err := websocket.DefaultDialer.Dial(rig.wsURL(), nil)
	if err == nil {
		t.Fatal("client's upgrade succeeded, want the connection closed before the 101")
	}
	out := waitFor(t, "Attempt's return", rig.attempted)
	// Attempt returns once the relay's goroutine is done, Ended included.
	if out.Session == nil {
		t.Errorf("Outcome = %+v, want the session that came up", out)
	}
	if n := rig.ended.Load(); n != 1 {
		t.Errorf("Ended called %d times, want 1", n)
	}
	waitFor(t, "the upstream's connection closed", rig.upstreamGone)
	rig.log.wantPanicRecord(t, "upgraded exploded", "TestAttemptRecoversPanicInUpgraded")
}

func TestAttemptRecoversPanicInEnded(t *testing.T) {
	rig := newPanicRig(t, nil, func(*Session) { panic("ended exploded") })

	c, _, err := websocket.DefaultDialer.Dial(rig.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if out := waitFor(t, "Attempt's return", rig.attempted); out.Session == nil {
		t.Fatalf("Outcome = %+v, want a session", out)
	}
	if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upstream's connection closed", rig.upstreamGone)
	if _, _, err := c.ReadMessage(); err == nil {
		t.Error("client read after the session's end: nil error, want the connection gone")
	}
	waitFor(t, "the panic logged", rig.log.logged)
	if n := rig.ended.Load(); n != 1 {
		t.Errorf("Ended called %d times, want 1", n)
	}
	rig.log.wantPanicRecord(t, "ended exploded", "TestAttemptRecoversPanicInEnded")
}
