package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// ErrUnavailable means no valid token could be had in time. Callers answer
// 503 token_unavailable.
var ErrUnavailable = errors.New("no valid token")

// DoctorHint ends every warning about a failed credential call: the command
// that diagnoses the credential, token and upstream step by step.
const DoctorHint = "run `entraproxy doctor` with the same settings for a step-by-step diagnosis"

const (
	defaultFetchTimeout = 30 * time.Second
	defaultWaitTimeout  = 10 * time.Second

	// expiryMargin: a token this close to ExpiresOn counts as expired, so a
	// request (or a WebSocket handshake) that starts with it does not reach
	// Azure after it expired.
	expiryMargin = 10 * time.Second
	// refreshLead is how long before expiry a token without RefreshOn is
	// refreshed: the 5 minutes azcore's BearerTokenPolicy uses.
	refreshLead = 5 * time.Minute
	// minRetry is the first retry delay, and the least time between the end
	// of one credential call and the start of the next, however many callers
	// ask: a failing credential is not hammered by traffic.
	minRetry = time.Second
	// maxRetry caps the exponential backoff after failures.
	maxRetry = 30 * time.Second
	// renewInterval is the least time between fetches forced by Renew while
	// a valid token is held: when an upstream answers 401 to every token
	// (a missing role assignment), each request must not run az again.
	renewInterval = 10 * time.Second
)

// Options configures a Source.
type Options struct {
	// Credential produces the tokens. Required: Run fails without it.
	Credential azcore.TokenCredential
	// Scope is the one scope tokens are requested for. Required.
	Scope string
	// Logger receives token events: each fetch's result, credential,
	// expiry and duration; a failed fetch is one warning with the
	// credential's summary and likely fix (see CredentialError) and, at
	// debug level, its whole message, redacted. Nil means discard. Token
	// values are never logged, at any level.
	Logger *slog.Logger
	// FetchTimeout bounds one credential call, so a stuck credential (az
	// waiting on a prompt) is cancelled and retried. Zero means 30s.
	FetchTimeout time.Duration
	// WaitTimeout bounds how long Token and Renew wait for a fetch when no
	// valid token is held, after which they return an error wrapping
	// ErrUnavailable. Zero means 10s.
	WaitTimeout time.Duration
	// OnRefresh, when set, is called on Run's goroutine after each
	// credential call: with the new token's expiry and a nil error, or with
	// the zero time and the call's *CredentialError (a failure changes no
	// expiry; State says whether an older token still serves). It must not
	// block. For metrics.
	OnRefresh func(expiresOn time.Time, err error)
}

// State is a snapshot of a Source, for /readyz and the ready log line.
type State struct {
	// Valid reports whether Token would return a token now without waiting.
	Valid bool
	// ExpiresOn is the held token's expiry; zero when none was fetched.
	ExpiresOn time.Time
	// Credential names the credential that produced the held token, such
	// as "AzureCLICredential"; empty when none was fetched.
	Credential string
	// LastError is the *CredentialError of the latest credential call when
	// that call failed; its Error is a bounded, redacted summary safe to
	// show. Nil before the first call ends and after a call succeeds.
	LastError error
}

// Source is the one token cache in front of a credential. Run, on one
// goroutine, makes every credential call: the first at once, then refreshes
// ahead of expiry and retries with backoff. Token and Renew only read what it
// holds, or wake it and wait for its next result, so concurrent callers
// share one credential call and a slow credential never blocks a caller that
// can be served from the cache. The zero value is not usable; call NewSource.
type Source struct {
	cred         azcore.TokenCredential
	scope        string
	log          *slog.Logger
	fetchTimeout time.Duration
	waitTimeout  time.Duration
	onRefresh    func(time.Time, error)

	// wake asks Run for a fetch now; one slot, so any number of askers
	// coalesce into one request.
	wake chan struct{}
	// ready is closed by Run once the first token is held (Ready).
	ready chan struct{}

	mu sync.Mutex
	// tok is the latest token fetched, from the credential named name; it
	// may have expired.
	tok  azcore.AccessToken
	name string
	// lastErr is the latest call's error if that call failed, else nil.
	lastErr error
	// started and finished count credential calls; waiters compare them
	// with the call they need.
	started, finished uint64
	// fetched is closed, and replaced, when a call finishes or Run stops.
	fetched chan struct{}
	// renewNeed is the call a pending Renew waits for: until that call has
	// started (renewNeed > started), a wake makes Run fetch even while tok
	// is valid. renewStale is the token it replaces, lastRenew when Renew
	// last asked for a call.
	renewNeed  uint64
	renewStale string
	lastRenew  time.Time
	phase      phase
}

// phase is where a Source stands in its one Run.
type phase int

const (
	beforeRun phase = iota
	running
	stopped // Run has returned: nobody answers a wake any more
)

// NewSource returns a Source; call Run to start fetching.
func NewSource(opts Options) *Source {
	s := &Source{
		cred:         opts.Credential,
		scope:        opts.Scope,
		log:          opts.Logger,
		fetchTimeout: opts.FetchTimeout,
		waitTimeout:  opts.WaitTimeout,
		onRefresh:    opts.OnRefresh,
		wake:         make(chan struct{}, 1),
		ready:        make(chan struct{}),
		fetched:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.fetchTimeout <= 0 {
		s.fetchTimeout = defaultFetchTimeout
	}
	if s.waitTimeout <= 0 {
		s.waitTimeout = defaultWaitTimeout
	}
	return s
}

// Run fetches the first token at once, then refreshes it ahead of expiry (at
// RefreshOn when the credential sets one, else 5 minutes before ExpiresOn, or
// at half its usable lifetime for a token usable for under about 10 minutes) and
// retries failures after 1s, 2s, 4s ... at most 30s, less up to 20% jitter.
// It makes every credential call on the calling goroutine, starts none, and
// returns nil once ctx is done, after which Token serves only a still-valid
// token. The credential must honour its context: that is how FetchTimeout
// and shutdown stop it. Call Run once.
func (s *Source) Run(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	defer s.stop()

	var (
		lastEnd  time.Time // end of the latest credential call
		failures int       // consecutive failures, for backoff
		next     = time.Now()
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.wake:
			now := time.Now()
			if !s.wanted(now) {
				continue
			}
			if at := lastEnd.Add(minRetry); at.After(now) {
				if at.Before(next) {
					next = at
					timer.Reset(at.Sub(now))
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		delay := s.fetch(ctx, &failures)
		if ctx.Err() != nil {
			return nil
		}
		lastEnd = time.Now()
		next = lastEnd.Add(delay)
		timer.Reset(delay)
	}
}

func (s *Source) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.phase != beforeRun:
		return errors.New("run token source: Run called twice")
	case s.cred == nil || s.scope == "":
		s.phase = stopped
		close(s.fetched)
		return errors.New("run token source: Options.Credential and Options.Scope are required")
	}
	s.phase = running
	return nil
}

// stop releases every waiter: without Run nobody would answer them.
func (s *Source) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = stopped
	close(s.fetched)
}

// wanted reports whether a wake calls for a fetch: a waiter exists only if
// no valid token is held or a Renew waits for a call not yet started. Wakes left over from callers
// that the previous fetch already served are dropped here, which is what
// makes N cold callers cost one credential call.
func (s *Source) wanted(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewNeed > s.started || !s.validLocked(now)
}

// fetch makes one credential call, records the result, releases waiters and
// returns the delay until the next call.
func (s *Source) fetch(ctx context.Context, failures *int) time.Duration {
	s.mu.Lock()
	s.started++
	s.mu.Unlock()

	fctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	start := time.Now()
	tok, err := s.cred.GetToken(fctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	cancel()
	now := time.Now()
	took := now.Sub(start)
	if ctx.Err() != nil {
		// Shutting down: not a failure worth recording; stop releases waiters.
		return 0
	}
	name := credentialName(s.cred)
	if err == nil {
		switch {
		case tok.Token == "":
			err = errors.New("credential returned an empty token")
		case !tok.ExpiresOn.Add(-expiryMargin).After(now):
			err = fmt.Errorf("credential returned a token that expires at %s", tok.ExpiresOn.UTC().Format(time.RFC3339))
		}
	}
	var failure *CredentialError
	if err != nil {
		// From here on only the description travels: the credential's
		// message may quote the token endpoint's answer, token and all, and
		// azidentity's AuthenticationFailedError rebuilds it from the body
		// on each Error call, which is not safe from two goroutines (Token
		// and State callers read it while this one logs it).
		failure = DescribeCredentialError(name, err)
		err = failure
	}

	var delay time.Duration
	s.mu.Lock()
	s.finished++
	first := s.tok.Token == ""
	s.lastErr = err
	if err == nil {
		if tok.Token != s.renewStale {
			// A call that started before Renew asked already replaced the
			// stale token: the call Renew asked for is no longer needed.
			s.renewNeed = min(s.renewNeed, s.finished)
		}
		s.tok, s.name = tok, name
		*failures = 0
		delay = refreshDelay(tok, now)
	} else {
		*failures++
		delay = backoff(*failures)
	}
	held, valid := s.tok.ExpiresOn, s.validLocked(now)
	close(s.fetched)
	s.fetched = make(chan struct{})
	s.mu.Unlock()

	if err == nil {
		s.log.Info("token acquired",
			"credential", name,
			"scope", s.scope,
			"expires_on", tok.ExpiresOn,
			"duration", took,
			"refresh_in", delay)
		if s.onRefresh != nil {
			s.onRefresh(tok.ExpiresOn, nil)
		}
		if first {
			close(s.ready)
		}
		return delay
	}
	// One warning per attempt, and so per backoff step: what failed, in
	// one bounded line, and what to do. The whole message is for debug.
	attrs := []any{"credential", failure.Credential, "scope", s.scope, "error", failure.Error()}
	if failure.Status != 0 {
		attrs = append(attrs, "status", failure.Status)
	}
	if failure.Fix != "" {
		attrs = append(attrs, "fix", failure.Fix)
	}
	attrs = append(attrs, "hint", DoctorHint, "duration", took, "retry_in", delay.Round(time.Millisecond))
	if valid {
		// Still serving the old token: nothing fails yet.
		attrs = append(attrs, "serving_until", held.Add(-expiryMargin))
	}
	s.log.Warn("token fetch failed", attrs...)
	s.log.Debug("token fetch failed: the credential's whole message, redacted", "credential", failure.Credential, "detail", failure.Detail())
	if s.onRefresh != nil {
		s.onRefresh(time.Time{}, failure)
	}
	return delay
}

// refreshDelay is how long after now a token should be refreshed.
func refreshDelay(tok azcore.AccessToken, now time.Time) time.Duration {
	// usable is how long the token may still be handed out (expiryMargin).
	usable := tok.ExpiresOn.Add(-expiryMargin).Sub(now)
	// 5 minutes ahead, as azcore does; a token usable for under about 10
	// minutes at half its usable time, so it is neither refetched in a loop
	// nor left to expire, and a failed refresh is retried while it still
	// serves. (Half the remaining lifetime would be the very moment a token
	// of 20 s stops serving: no retry would fit before it.)
	at := tok.ExpiresOn.Add(-min(refreshLead, expiryMargin+usable/2))
	// RefreshOn is the authority's advice (MSAL sets it at half lifetime for
	// long tokens); one already past, as a cache may return, is ignored.
	if r := tok.RefreshOn; !r.IsZero() && r.After(now) && r.Before(tok.ExpiresOn.Add(-expiryMargin)) {
		at = r
	}
	return max(at.Sub(now), minRetry)
}

// backoff is the delay after the n-th consecutive failure: 1s doubling to
// 30s, less up to 20% so that replicas that failed together spread out.
func backoff(n int) time.Duration {
	d := maxRetry
	if n <= 5 {
		d = min(minRetry<<(n-1), maxRetry)
	}
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}

// validLocked reports whether the held token may be handed out at now.
func (s *Source) validLocked(now time.Time) bool {
	return s.tok.Token != "" && now.Before(s.tok.ExpiresOn.Add(-expiryMargin))
}

// Token returns the held token while it is valid: more than 10s from
// ExpiresOn, so an expired token is never handed out. With none valid, it
// wakes Run for a fetch and waits for the result, at most WaitTimeout or
// until ctx is done; the error then wraps ErrUnavailable and, if the fetch
// failed, its *CredentialError (so its text is safe to show). It never calls
// the credential itself.
func (s *Source) Token(ctx context.Context) (azcore.AccessToken, error) {
	s.mu.Lock()
	if s.validLocked(time.Now()) {
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	}
	need := s.finished + 1
	s.mu.Unlock()
	s.askRun()
	return s.await(ctx, need, "")
}

// Renew is for an upstream 401 on stale, the token that was sent: it asks
// Run for a new token now and waits, bounded like Token, for that call.
// Concurrent callers share one call; if the held token already differs from
// stale, it is returned at once. While a valid token is held, Renew forces
// at most one call per 10s and otherwise returns the held token, so an
// upstream that rejects every token does not turn each request into a
// credential call. If the call fails, the still-valid old token is returned.
// The credential may answer from its own cache (azidentity's managed
// identity, workload identity and secret credentials do; the CLIs do not),
// so the "new" token can be the same string: Renew cannot make Entra ID issue
// a different one, only stop this cache from holding on to one.
func (s *Source) Renew(ctx context.Context, stale string) (azcore.AccessToken, error) {
	now := time.Now()
	s.mu.Lock()
	valid := s.validLocked(now)
	var need uint64
	switch {
	case valid && s.tok.Token != stale:
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	case s.renewNeed > s.finished:
		need = s.renewNeed
	case valid && !s.lastRenew.IsZero() && now.Sub(s.lastRenew) < renewInterval:
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	default:
		// A call already running may have started before the upstream
		// rejected stale and return it again: wait for the next one.
		need = s.started + 1
		s.renewNeed, s.renewStale, s.lastRenew = need, stale, now
	}
	s.mu.Unlock()
	s.askRun()
	return s.await(ctx, need, stale)
}

func (s *Source) askRun() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake is already pending
	}
}

// await waits until credential call number need has finished, a valid token
// other than stale is held, or Run has stopped, bounded by ctx and
// WaitTimeout, and returns the held token if valid.
func (s *Source) await(ctx context.Context, need uint64, stale string) (azcore.AccessToken, error) {
	timer := time.NewTimer(s.waitTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		valid := s.validLocked(time.Now())
		if s.finished >= need || s.phase == stopped || valid && s.tok.Token != stale {
			defer s.mu.Unlock()
			if valid {
				return s.tok, nil
			}
			if s.phase == stopped {
				return azcore.AccessToken{}, fmt.Errorf("get token for %s: %w: token source stopped", s.scope, ErrUnavailable)
			}
			return azcore.AccessToken{}, s.unavailableLocked("")
		}
		ch := s.fetched
		s.mu.Unlock()

		select {
		case <-ch:
		case <-ctx.Done():
			return azcore.AccessToken{}, fmt.Errorf("get token for %s: %w: %w", s.scope, ErrUnavailable, ctx.Err())
		case <-timer.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			return azcore.AccessToken{}, s.unavailableLocked(fmt.Sprintf("credential did not answer within %s", s.waitTimeout))
		}
	}
}

// unavailableLocked is the error for a caller left without a token: why,
// and the latest call's error if that call failed.
func (s *Source) unavailableLocked(why string) error {
	last := s.lastErr
	switch {
	case why != "" && last != nil:
		return fmt.Errorf("get token for %s: %w: %s (last error: %w)", s.scope, ErrUnavailable, why, last)
	case why != "":
		return fmt.Errorf("get token for %s: %w: %s", s.scope, ErrUnavailable, why)
	case last != nil:
		return fmt.Errorf("get token for %s: %w: %w", s.scope, ErrUnavailable, last)
	default:
		return fmt.Errorf("get token for %s: %w", s.scope, ErrUnavailable)
	}
}

// State returns a snapshot for /readyz and the ready log line.
func (s *Source) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{
		Valid:      s.validLocked(time.Now()),
		ExpiresOn:  s.tok.ExpiresOn,
		Credential: s.name,
		LastError:  s.lastErr,
	}
}

// Ready returns a channel that Run closes once it holds its first token,
// after that token's log line and OnRefresh call. It stays open while no
// token has come, also after Run stops.
func (s *Source) Ready() <-chan struct{} { return s.ready }
