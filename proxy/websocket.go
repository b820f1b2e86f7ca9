package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/entraproxy/entraproxy/metrics"
	"github.com/entraproxy/entraproxy/proxy/internal/wsrelay"
)

// wsProxy serves WebSocket upgrades. koding/websocketproxy relays the
// sessions, through the adapter in internal/wsrelay, which corrects what
// koding and gorilla get wrong (its package doc has the table); what is
// decided here is the proxy's policy, the same as for HTTP: the upgrade is
// checked and the token fetched before anything is dialed, the target and
// the headers the upstream sees, a 401 retried as authorizer.after401
// decides, redirects followed as redirectPolicy.check allows, refusals
// answered, one log line per session, and shutdown (live sessions end with
// 1001; handshakes under way are waited for).
type wsProxy struct {
	p     *Proxy
	relay *wsrelay.Relay

	mu       sync.Mutex
	sessions map[*wsrelay.Session]struct{}
	inflight int           // upgrade requests being served (see enter)
	idle     chan struct{} // closed when inflight drops to zero
	closing  bool          // shutdown has begun: no new upgrades
}

func isWebSocketUpgrade(r *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket")
}

// wsHandshake is one session's way to an upstream handshake: the target and
// credential of the next attempt, the 401 retry waiting for its answer, and
// what the access log tells of the attempts.
type wsHandshake struct {
	target *url.URL
	cred   credential
	retry  *authRetry
	facts  upstreamFacts
}

// answered notes the upstream's answer to an attempt: its request id, and
// the status for the 401 retry the attempt carried.
func (hs *wsHandshake) answered(status int, h http.Header) {
	hs.facts.answered(h)
	if hs.retry != nil {
		hs.retry.answered(status)
		hs.retry = nil
	}
}

func (s *wsProxy) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := wsrelay.CheckUpgrade(r); err != nil {
		s.p.refuse(w, r, &apiError{status: http.StatusBadRequest, code: CodeBadRequest, message: "bad WebSocket upgrade: " + err.Error()})
		return
	}
	if !s.enter() {
		s.p.refuse(w, r, errShuttingDown)
		return
	}
	running := false // a session runs on: its end logs it and leaves
	defer func() {
		if !running {
			s.leave()
		}
	}()
	hs := &wsHandshake{target: &url.URL{Scheme: wsScheme(s.p.upstream.Scheme), Host: s.p.upstream.Host, Path: r.URL.Path,
		RawPath: r.URL.RawPath, RawQuery: stripCredentialQuery(r.URL.RawQuery)}}
	if s.p.speechPaths {
		mapSpeechPath(hs.target)
	}
	for {
		if hs.retry == nil { // a first attempt at this target
			cred, err := s.p.auth.first(r.Context(), hs.target.Host)
			if err != nil {
				s.fail(w, r, start, classify(err), &hs.facts)
				return
			}
			hs.cred = cred
			hs.facts.attempt(hs.target.Host, hs.target.EscapedPath())
		}
		out := s.attempt(w, r, start, hs)
		switch {
		case out.Session != nil:
			running = true
			return
		case out.Err != nil:
			s.fail(w, r, start, handshakeError(out.Err), &hs.facts)
			return
		}
		hs.answered(out.Status, out.Header)
		switch {
		case out.Status == http.StatusUnauthorized && !hs.facts.retried:
			retry, ok := s.p.auth.after401(r.Context(), hs.target.Host, hs.cred)
			if !ok {
				s.relayRefusal(w, r, start, out, &hs.facts)
				return
			}
			hs.retry, hs.cred = retry, retry.credential
			hs.facts.retrying()
		case mustNotPass(out.Status):
			next, e := s.p.redirects.check(hs.target, out.Status, out.Header.Get("Location"), hs.facts.redirects())
			if e != nil {
				s.fail(w, r, start, e, &hs.facts)
				return
			}
			next.Scheme = wsScheme(next.Scheme)
			hs.target = next
			s.p.metrics.RedirectFollowed()
		default:
			s.relayRefusal(w, r, start, out, &hs.facts)
			return
		}
	}
}

func wsScheme(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "wss"
	}
	return "ws"
}

// attempt makes one upstream handshake with hs's target and credential and,
// when the upstream accepts, starts the session, which is logged and left
// (enter) when it ends. The upstream gets the client's fields without
// credentials or forwarding fields, and the proxy's Authorization.
func (s *wsProxy) attempt(w http.ResponseWriter, r *http.Request, start time.Time, hs *wsHandshake) wsrelay.Outcome {
	header := r.Header.Clone()
	stripCredentialHeaders(header)
	hs.facts.sending(hs.cred.form)
	return s.relay.Attempt(w, r, wsrelay.Handshake{Target: hs.target, Header: header, Authorization: s.p.auth.header(hs.cred),
		Upgraded: func(sess *wsrelay.Session, upstream101 http.Header) {
			// Reported now, not when the session ends: sessions opened
			// meanwhile, while this one may last minutes, start with the
			// form it taught.
			hs.answered(http.StatusSwitchingProtocols, upstream101)
			s.track(sess)
		},
		Ended: func(sess *wsrelay.Session) {
			defer s.leave() // even if logging panics (wsrelay recovers): Shutdown waits for it
			s.finish(r, start, sess, &hs.facts)
		},
	})
}

// handshakeError is the answer for a handshake that got no answer from the
// upstream to relay.
func handshakeError(err error) *apiError {
	if errors.Is(err, wsrelay.ErrNoAnswer) || errors.Is(err, wsrelay.ErrInvalidAnswer) {
		return &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable, message: err.Error()}
	}
	return classify(err)
}

// relayRefusal hands the upstream's refusal of the handshake to the client:
// its status, fields (but a Location: redirects never reach the client) and
// body (wsrelay keeps 1 KiB of it).
func (s *wsProxy) relayRefusal(w http.ResponseWriter, r *http.Request, start time.Time, out wsrelay.Outcome, up *upstreamFacts) {
	h := w.Header()
	for k, vs := range out.Header {
		if k != "Location" {
			h[k] = vs
		}
	}
	w.WriteHeader(out.Status)
	w.Write(out.Body)
	s.p.logAccess(accessEntry{r: r, start: start, status: out.Status, bytesOut: int64(len(out.Body)), upstream: up})
}

// fail answers e for a handshake that did not get through; up is what went
// to the upstream, nil when nothing did.
func (s *wsProxy) fail(w http.ResponseWriter, r *http.Request, start time.Time, e *apiError, up *upstreamFacts) {
	if e.cause != nil {
		s.p.logger.LogAttrs(r.Context(), e.logLevel(), "websocket handshake failed",
			slog.String("path", logPath(r)), slog.String("code", e.code), slog.String("error", e.cause.Error()))
	}
	status, n := writeError(w, r, e)
	s.p.logAccess(accessEntry{r: r, start: start, status: status, bytesOut: int64(n), errCode: e.code, upstream: up})
}

// track counts a session in once the upstream accepted it; one that comes
// up while shutdown waits is told to go away at once.
func (s *wsProxy) track(sess *wsrelay.Session) {
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	closing := s.closing
	s.mu.Unlock()
	if closing {
		sess.GoAway()
	}
	s.p.metrics.SessionStarted()
}

// finish forgets an ended session and logs it; forgotten first, so that a
// log that fails (panics) leaves no session behind for shutdown.
func (s *wsProxy) finish(r *http.Request, start time.Time, sess *wsrelay.Session, up *upstreamFacts) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	st := sess.Stats()
	s.p.metrics.AddFrames(metrics.DirectionClientToUpstream, int(st.FramesIn), int(st.BytesIn))
	s.p.metrics.AddFrames(metrics.DirectionUpstreamToClient, int(st.FramesOut), int(st.BytesOut))
	s.p.metrics.SessionEnded()
	s.p.logAccess(accessEntry{r: r, start: start, status: http.StatusSwitchingProtocols,
		bytesIn: st.BytesIn, bytesOut: st.BytesOut, session: true,
		framesIn: st.FramesIn, framesOut: st.FramesOut, closeCode: st.CloseCode, closedBy: st.ClosedBy, upstream: up})
}

// enter counts an upgrade request in, from before its token is fetched to
// the end of its session, so shutdown waits for handshakes too, not only for
// sessions already up (net/http forgets a connection once it is hijacked).
// It reports false once shutdown has begun.
func (s *wsProxy) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.inflight == 0 {
		s.idle = make(chan struct{})
	}
	s.inflight++
	return true
}

func (s *wsProxy) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight--; s.inflight == 0 {
		close(s.idle)
	}
}

// shutdown refuses new upgrades, asks every live session to close with 1001
// (going away), and waits for sessions and handshakes to end; a session that
// comes up meanwhile is asked at once (track). When ctx ends first, it cuts
// the connections.
func (s *wsProxy) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for sess := range s.sessions {
		sess.GoAway()
	}
	n, idle := s.inflight, s.idle
	s.mu.Unlock()
	if n == 0 {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.Cut()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
