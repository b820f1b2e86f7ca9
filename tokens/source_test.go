package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const testScope = "https://cognitiveservices.azure.com/.default"

// fakeCredential answers GetToken with fn and records when it was called.
type fakeCredential struct {
	fn func(ctx context.Context, call int) (azcore.AccessToken, error)

	mu    sync.Mutex
	calls []time.Time
}

func (f *fakeCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	n := len(f.calls)
	f.mu.Unlock()
	return f.fn(ctx, n)
}

func (f *fakeCredential) CredentialName() string { return "FakeCredential" }

func (f *fakeCredential) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

func (f *fakeCredential) count() int { return len(f.callTimes()) }

func token(n int, expiresOn time.Time) azcore.AccessToken {
	return azcore.AccessToken{Token: fmt.Sprintf("token-%d", n), ExpiresOn: expiresOn}
}

// startSource runs a Source until the returned stop is called, which cancels
// Run and waits for it to return.
func startSource(t *testing.T, opts Options) (s *Source, stop func()) {
	t.Helper()
	if opts.Scope == "" {
		opts.Scope = testScope
	}
	s = NewSource(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

// sleepUntil advances the bubble's fake clock to at and lets every goroutine
// settle.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

func TestTokenColdCallersShareOneCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		runFirst bool
	}{
		{"callers before Run", false},
		{"callers during first fetch", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					<-release
					return token(n, time.Now().Add(time.Hour)), nil
				}}
				s := NewSource(Options{Credential: cred, Scope: testScope})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				run := func() { go func() { done <- s.Run(ctx) }() }
				if tc.runFirst {
					run()
				}

				const callers = 100
				got := make([]string, callers)
				errs := make([]error, callers)
				var wg sync.WaitGroup
				for i := range callers {
					wg.Go(func() {
						tok, err := s.Token(context.Background())
						got[i], errs[i] = tok.Token, err
					})
				}
				synctest.Wait()
				if !tc.runFirst {
					run()
					synctest.Wait()
				}
				close(release)
				wg.Wait()

				for i := range callers {
					if errs[i] != nil || got[i] != "token-1" {
						t.Errorf("Token() #%d = %q, %v, want token-1, nil", i, got[i], errs[i])
					}
				}
				// Wakes left by callers served meanwhile must not cause a
				// second call, now or after the minimum gap between calls.
				time.Sleep(time.Minute)
				synctest.Wait()
				if n := cred.count(); n != 1 {
					t.Errorf("credential calls = %d, want 1", n)
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			})
		})
	}
}

func TestRefreshAhead(t *testing.T) {
	for _, tc := range []struct {
		name        string
		lifetime    time.Duration
		refreshOn   time.Duration // after the first fetch; zero means unset
		wantRefresh time.Duration // after the first fetch
	}{
		{"at RefreshOn", time.Hour, 30 * time.Minute, 30 * time.Minute},
		{"RefreshOn near expiry", time.Hour, 58 * time.Minute, 58 * time.Minute},
		{"5 minutes before expiry", time.Hour, 0, 55 * time.Minute},
		{"RefreshOn already past", time.Hour, -time.Minute, 55 * time.Minute},
		{"short-lived at half its usable time", 4 * time.Minute, 0, time.Minute + 55*time.Second},
		{"24h token", 24 * time.Hour, 0, 24*time.Hour - 5*time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				release := make(chan struct{})
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					tok := token(n, time.Now().Add(tc.lifetime))
					if n == 1 {
						if tc.refreshOn != 0 {
							tok.RefreshOn = t0.Add(tc.refreshOn)
						}
						return tok, nil
					}
					<-release // a slow refresh
					return tok, nil
				}}
				s, stop := startSource(t, Options{Credential: cred})
				defer stop()

				sleepUntil(t0.Add(tc.wantRefresh - time.Second))
				if n := cred.count(); n != 1 {
					t.Fatalf("credential calls 1s before refresh = %d, want 1", n)
				}
				sleepUntil(t0.Add(tc.wantRefresh))
				calls := cred.callTimes()
				if len(calls) != 2 {
					t.Fatalf("credential calls at refresh time = %d, want 2", len(calls))
				}
				if got := calls[1].Sub(t0); got != tc.wantRefresh {
					t.Errorf("refresh at %v, want %v", got, tc.wantRefresh)
				}

				// The refresh is still running: Token answers from the cache.
				start := time.Now()
				tok, err := s.Token(context.Background())
				if err != nil || tok.Token != "token-1" {
					t.Errorf("Token() during refresh = %q, %v, want token-1, nil", tok.Token, err)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("Token() during refresh took %v, want 0", d)
				}

				close(release)
				synctest.Wait()
				if tok, err := s.Token(context.Background()); err != nil || tok.Token != "token-2" {
					t.Errorf("Token() after refresh = %q, %v, want token-2, nil", tok.Token, err)
				}
			})
		})
	}
}

func TestRefreshFailureKeepsTokenAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		exp := t0.Add(time.Hour)
		errBoom := errors.New("AzureCLICredential: az is offline")
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			if n == 1 {
				return token(1, exp), nil
			}
			return azcore.AccessToken{}, errBoom
		}}
		s, stop := startSource(t, Options{Credential: cred})
		defer stop()

		// Up to 11s before expiry the old token is served; Token never waits.
		sleepUntil(exp.Add(-11 * time.Second))
		start := time.Now()
		tok, err := s.Token(context.Background())
		if err != nil || tok.Token != "token-1" {
			t.Errorf("Token() with failing refresh = %q, %v, want token-1, nil", tok.Token, err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Token() with failing refresh took %v, want 0", d)
		}

		calls := cred.callTimes()
		if got, want := calls[1].Sub(t0), 55*time.Minute; got != want {
			t.Errorf("first refresh at %v, want %v", got, want)
		}
		// 55m to 59m49s: 1s, 2s, 4s, 8s, 16s, then every 30s, each less up
		// to 20% jitter.
		wantDelays := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30, 30, 30}
		if got, want := len(calls)-2, len(wantDelays); got < want {
			t.Fatalf("retries = %d, want at least %d", got, want)
		}
		for i, d := range wantDelays {
			d *= time.Second
			got := calls[i+2].Sub(calls[i+1])
			if got < d*8/10 || got > d {
				t.Errorf("retry %d after %v, want %v less up to 20%%", i+1, got, d)
			}
		}

		if st := s.State(); !st.Valid || !errors.Is(st.LastError, errBoom) {
			t.Errorf("State() = %+v, want Valid, LastError %v", st, errBoom)
		}
	})
}

func TestExpiredTokenNeverReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		exp := t0.Add(2 * time.Minute)
		errBoom := errors.New("ManagedIdentityCredential: IMDS unreachable")
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			if n == 1 {
				return token(1, exp), nil
			}
			return azcore.AccessToken{}, errBoom
		}}
		s, stop := startSource(t, Options{Credential: cred, WaitTimeout: 5 * time.Second})
		defer stop()

		for _, tc := range []struct {
			at      time.Time
			want    string
			wantErr bool
		}{
			{exp.Add(-11 * time.Second), "token-1", false},
			{exp.Add(-10 * time.Second), "", true},
			{exp.Add(-time.Second), "", true},
			{exp, "", true},
			{exp.Add(time.Hour), "", true},
		} {
			sleepUntil(tc.at)
			start := time.Now()
			tok, err := s.Token(context.Background())
			if tok.Token != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("Token() at expiry%+v = %q, %v, want %q, error %v", tc.at.Sub(exp), tok.Token, err, tc.want, tc.wantErr)
			}
			if tc.wantErr && !(errors.Is(err, ErrUnavailable) && errors.Is(err, errBoom)) {
				t.Errorf("Token() at expiry%+v error = %v, want ErrUnavailable wrapping %v", tc.at.Sub(exp), err, errBoom)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Token() at expiry%+v took %v, want at most WaitTimeout 5s", tc.at.Sub(exp), d)
			}
			if st := s.State(); st.Valid == tc.wantErr {
				t.Errorf("State().Valid at expiry%+v = %v, want %v", tc.at.Sub(exp), st.Valid, !tc.wantErr)
			}
		}
	})
}

func TestStuckCredential(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        Options
		wantWait    time.Duration
		wantCancel  time.Duration
		wantErrText string
	}{
		{"defaults", Options{}, 10 * time.Second, 30 * time.Second, "within 10s"},
		{"custom", Options{WaitTimeout: 2 * time.Second, FetchTimeout: 5 * time.Second}, 2 * time.Second, 5 * time.Second, "within 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				type cancelled struct {
					at  time.Duration
					err error
				}
				cancels := make(chan cancelled, 10)
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					<-ctx.Done() // az waiting for a prompt nobody answers
					cancels <- cancelled{time.Since(t0), ctx.Err()}
					return azcore.AccessToken{}, ctx.Err()
				}}
				opts := tc.opts
				opts.Credential = cred
				s, stop := startSource(t, opts)

				tok, err := s.Token(context.Background())
				if !errors.Is(err, ErrUnavailable) || tok.Token != "" {
					t.Errorf("Token() = %q, %v, want error wrapping ErrUnavailable", tok.Token, err)
				}
				if err != nil && !strings.Contains(err.Error(), tc.wantErrText) {
					t.Errorf("Token() error = %q, want it to contain %q", err, tc.wantErrText)
				}
				if got := time.Since(t0); got != tc.wantWait {
					t.Errorf("Token() returned after %v, want %v", got, tc.wantWait)
				}

				c := <-cancels
				if c.at != tc.wantCancel || !errors.Is(c.err, context.DeadlineExceeded) {
					t.Errorf("credential call cancelled after %v with %v, want %v with %v", c.at, c.err, tc.wantCancel, context.DeadlineExceeded)
				}

				// The next call is a retry after backoff; stopping Run
				// cancels it at once.
				sleepUntil(t0.Add(tc.wantCancel + 2*time.Second))
				if n := cred.count(); n != 2 {
					t.Errorf("credential calls = %d, want 2", n)
				}
				stopAt := time.Now()
				stop()
				if d := time.Since(stopAt); d != 0 {
					t.Errorf("Run took %v to return, want 0", d)
				}
				if c := <-cancels; !errors.Is(c.err, context.Canceled) {
					t.Errorf("credential call cancelled with %v, want %v", c.err, context.Canceled)
				}
			})
		})
	}
}

func TestRenew(t *testing.T) {
	for _, tc := range []struct {
		name string
		// refresh is answered to calls after the first; nil blocks until the
		// test releases it, then returns token-n.
		refresh   func(n int) (azcore.AccessToken, error)
		callers   int
		stale     string
		wait      time.Duration // before Renew
		want      string
		wantCalls int
	}{
		{"concurrent callers share one call", nil, 20, "token-1", 0, "token-2", 2},
		{"stale is not the held token", nil, 3, "token-0", 0, "token-1", 1},
		// ... and is retried after backoff.
		{"failed renew keeps the valid token", func(n int) (azcore.AccessToken, error) {
			if n == 2 {
				return azcore.AccessToken{}, errors.New("AADSTS50173: grant expired")
			}
			return token(n, time.Now().Add(time.Hour)), nil
		}, 5, "token-1", 0, "token-1", 3},
		{"cached credential returns the same token", func(int) (azcore.AccessToken, error) {
			return token(1, time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC)), nil
		}, 5, "token-1", 0, "token-1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					if n == 1 {
						return token(1, time.Now().Add(time.Hour)), nil
					}
					if tc.refresh != nil {
						return tc.refresh(n)
					}
					<-release
					return token(n, time.Now().Add(time.Hour)), nil
				}}
				s, stop := startSource(t, Options{Credential: cred})
				defer stop()
				synctest.Wait()
				time.Sleep(tc.wait)

				got := make([]string, tc.callers)
				errs := make([]error, tc.callers)
				var wg sync.WaitGroup
				for i := range tc.callers {
					wg.Go(func() {
						tok, err := s.Renew(context.Background(), tc.stale)
						got[i], errs[i] = tok.Token, err
					})
				}
				synctest.Wait()
				close(release)
				wg.Wait()
				for i := range tc.callers {
					if got[i] != tc.want || errs[i] != nil {
						t.Errorf("Renew() #%d = %q, %v, want %q, nil", i, got[i], errs[i], tc.want)
					}
				}
				time.Sleep(time.Minute) // no call is left pending
				synctest.Wait()
				if n := cred.count(); n != tc.wantCalls {
					t.Errorf("credential calls = %d, want %d", n, tc.wantCalls)
				}
			})
		})
	}
}

func TestRenewThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			return token(n, time.Now().Add(time.Hour)), nil
		}}
		s, stop := startSource(t, Options{Credential: cred})
		defer stop()
		synctest.Wait()

		// An upstream that rejects every token: each Renew reports the token
		// the previous one returned.
		stale := "token-1"
		for _, tc := range []struct {
			wait      time.Duration
			want      string
			wantCalls int
		}{
			{0, "token-2", 2},
			{time.Second, "token-2", 2},
			{7 * time.Second, "token-2", 2},
			{time.Second, "token-3", 3},
			{0, "token-3", 3},
		} {
			time.Sleep(tc.wait)
			tok, err := s.Renew(context.Background(), stale)
			if tok.Token != tc.want || err != nil {
				t.Errorf("Renew(%q) = %q, %v, want %q, nil", stale, tok.Token, err, tc.want)
			}
			synctest.Wait()
			if n := cred.count(); n != tc.wantCalls {
				t.Errorf("credential calls = %d, want %d", n, tc.wantCalls)
			}
			stale = tok.Token
		}
	})
}

func TestRenewDuringRefresh(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refreshed string // what the in-flight refresh returns
		want      string
		wantCalls int
	}{
		// The refresh that was running already replaced the stale token.
		{"refresh returns a new token", "token-2", "token-2", 2},
		// It started before the 401 and returned the stale token from a
		// cache: Renew waits for a call that started after it asked.
		{"refresh returns the stale token", "token-1", "token-3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				release := make(chan struct{})
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					switch n {
					case 1:
						return token(1, t0.Add(time.Hour)), nil
					case 2:
						<-release
						tok := token(2, t0.Add(time.Hour))
						tok.Token = tc.refreshed
						return tok, nil
					}
					return token(n, time.Now().Add(time.Hour)), nil
				}}
				s, stop := startSource(t, Options{Credential: cred})
				defer stop()

				sleepUntil(t0.Add(55 * time.Minute)) // refresh running
				result := make(chan string)
				go func() {
					tok, err := s.Renew(context.Background(), "token-1")
					if err != nil {
						t.Errorf("Renew() error = %v", err)
					}
					result <- tok.Token
				}()
				synctest.Wait()
				close(release)
				if got := <-result; got != tc.want {
					t.Errorf("Renew() = %q, want %q", got, tc.want)
				}
				time.Sleep(time.Minute) // no call is left pending
				synctest.Wait()
				if n := cred.count(); n != tc.wantCalls {
					t.Errorf("credential calls = %d, want %d", n, tc.wantCalls)
				}
			})
		})
	}
}

func TestRunStops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		block   bool // the credential blocks until cancelled
		want    string
		wantErr bool
	}{
		{"idle with a valid token", false, "token-1", false},
		{"during the first fetch", true, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					if tc.block {
						<-ctx.Done()
						return azcore.AccessToken{}, ctx.Err()
					}
					return token(n, time.Now().Add(time.Hour)), nil
				}}
				s, stop := startSource(t, Options{Credential: cred})
				synctest.Wait()

				// A caller waiting for the first token is released when Run
				// stops, not when WaitTimeout ends.
				type result struct {
					tok azcore.AccessToken
					err error
					d   time.Duration
				}
				waiter := make(chan result, 1)
				go func() {
					start := time.Now()
					tok, err := s.Token(context.Background())
					waiter <- result{tok, err, time.Since(start)}
				}()
				synctest.Wait()
				stop() // returns only after Run did; synctest reports leaks
				r := <-waiter
				if r.tok.Token != tc.want || (r.err != nil) != tc.wantErr || r.d != 0 {
					t.Errorf("Token() across stop = %q, %v after %v, want %q, error %v, at once", r.tok.Token, r.err, r.d, tc.want, tc.wantErr)
				}
				if tc.wantErr && !errors.Is(r.err, ErrUnavailable) {
					t.Errorf("Token() across stop error = %v, want ErrUnavailable", r.err)
				}

				tok, err := s.Token(context.Background())
				if tok.Token != tc.want || (err != nil) != tc.wantErr {
					t.Errorf("Token() after stop = %q, %v, want %q, error %v", tok.Token, err, tc.want, tc.wantErr)
				}
				if err := s.Run(context.Background()); err == nil {
					t.Errorf("second Run = nil, want error")
				}
			})
		})
	}
}

func TestRunNeedsCredentialAndScope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, opts := range []Options{
			{Scope: testScope},
			{Credential: &fakeCredential{}},
		} {
			s := NewSource(opts)
			if err := s.Run(context.Background()); err == nil {
				t.Errorf("Run() with %+v = nil, want error", opts)
			}
			start := time.Now()
			if _, err := s.Token(context.Background()); !errors.Is(err, ErrUnavailable) || time.Since(start) != 0 {
				t.Errorf("Token() = %v after %v, want ErrUnavailable at once", err, time.Since(start))
			}
		}
	})
}

func TestTokenCallerContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			<-ctx.Done()
			return azcore.AccessToken{}, ctx.Err()
		}}
		stuck, stop := startSource(t, Options{Credential: cred})
		defer stop()
		notRunning := NewSource(Options{Credential: cred, Scope: testScope})
		for name, s := range map[string]*Source{"stuck credential": stuck, "Run not started": notRunning} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			start := time.Now()
			_, err := s.Token(ctx)
			cancel()
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: Token() = %v, want ErrUnavailable and DeadlineExceeded", name, err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("%s: Token() returned after %v, want 1s", name, d)
			}
		}
		if st := notRunning.State(); st != (State{}) {
			t.Errorf("State() of a Source never run = %+v, want zero", st)
		}
	})
}

func TestStateAndOnRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		exp := t0.Add(time.Hour)
		errBoom := errors.New("boom")
		type event struct {
			expiresOn time.Time
			err       error
		}
		var (
			mu     sync.Mutex
			events []event
		)
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			switch {
			case n == 1:
				return token(1, exp), nil
			case n < 6:
				return azcore.AccessToken{}, errBoom
			}
			return token(n, time.Now().Add(time.Hour)), nil
		}}
		s, stop := startSource(t, Options{Credential: cred, OnRefresh: func(expiresOn time.Time, err error) {
			mu.Lock()
			events = append(events, event{expiresOn, err})
			mu.Unlock()
		}})
		defer stop()

		synctest.Wait()
		if st, want := s.State(), (State{Valid: true, ExpiresOn: exp, Credential: "FakeCredential"}); st != want {
			t.Errorf("State() = %+v, want %+v", st, want)
		}

		// The refresh at 55m fails 4 times (1s, 2s, 4s, 8s apart), then
		// succeeds: while it fails, the old token serves and LastError
		// says why; the success clears it.
		sleepUntil(t0.Add(55*time.Minute + 4*time.Second))
		if st := s.State(); !st.Valid || st.ExpiresOn != exp || !errors.Is(st.LastError, errBoom) {
			t.Errorf("State() while the refresh fails = %+v, want Valid, the first token's expiry, LastError %v", st, errBoom)
		}
		sleepUntil(t0.Add(56 * time.Minute))
		if st := s.State(); !st.Valid || st.ExpiresOn == exp || st.LastError != nil {
			t.Errorf("State() after the refresh = %+v, want Valid, a new expiry, no LastError", st)
		}

		mu.Lock()
		defer mu.Unlock()
		if len(events) != 6 || events[0] != (event{exp, nil}) || events[5].expiresOn.IsZero() || events[5].err != nil {
			t.Fatalf("OnRefresh events = %v, want a success, 4 failures, a success", events)
		}
		// A failure carries no expiry, and the call's *CredentialError.
		for i, e := range events[1:5] {
			var ce *CredentialError
			if !e.expiresOn.IsZero() || !errors.As(e.err, &ce) || !errors.Is(e.err, errBoom) {
				t.Errorf("OnRefresh event %d = %v, want zero expiry and a *CredentialError wrapping %v", i+1, e, errBoom)
			}
		}
	})
}

// Ready is closed once the first token is held, after its OnRefresh call
// returned, and never before: not while the first calls fail, not when Run
// stops without a token.
func TestReady(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failFirst int // calls that fail before the first token
	}{
		{"first call succeeds", 0},
		{"after failures", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					if n <= tc.failFirst {
						return azcore.AccessToken{}, errors.New("AzureCLICredential: please run 'az login'")
					}
					return token(n, time.Now().Add(time.Hour)), nil
				}}
				succeeded, release := make(chan struct{}), make(chan struct{})
				s, stop := startSource(t, Options{Credential: cred, OnRefresh: func(_ time.Time, err error) {
					if err == nil {
						succeeded <- struct{}{}
						<-release
					}
				}})
				defer stop()
				<-succeeded // after the failures' backoff: 1s, 2s, 4s
				select {
				case <-s.Ready():
					t.Errorf("Ready closed before OnRefresh returned")
				default:
				}
				if n := cred.count(); n != tc.failFirst+1 {
					t.Errorf("credential calls = %d, want %d", n, tc.failFirst+1)
				}
				close(release)
				<-s.Ready() // synctest reports a Ready that never closes
			})
		})
	}
	t.Run("Run stops before any token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
				return azcore.AccessToken{}, errors.New("AzureCLICredential: please run 'az login'")
			}}
			s, stop := startSource(t, Options{Credential: cred})
			time.Sleep(time.Minute)
			stop()
			select {
			case <-s.Ready():
				t.Errorf("Ready closed without a token after %d calls", cred.count())
			default:
			}
		})
	})
}

func TestLogsNeverHoldTheToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const secret = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.secret-payload.sig"
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			if n%2 == 0 {
				return azcore.AccessToken{}, errors.New("AzureCLICredential: please run 'az login'")
			}
			return azcore.AccessToken{Token: secret + fmt.Sprint(n), ExpiresOn: time.Now().Add(time.Hour)}, nil
		}}
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s, stop := startSource(t, Options{Credential: cred, Logger: logger})
		synctest.Wait()
		tok, _ := s.Token(context.Background())
		s.Renew(context.Background(), tok.Token) // fails: the old token is kept
		time.Sleep(time.Hour + time.Minute)
		s.Renew(context.Background(), tok.Token)
		synctest.Wait()
		stop()

		out := buf.String()
		if strings.Contains(out, "secret-payload") {
			t.Errorf("log holds the token:\n%s", out)
		}
		for _, want := range []string{
			`"msg":"token acquired"`, `"credential":"FakeCredential"`, `"expires_on":"2000-01-01T01:00:00Z"`, `"duration":`, `"refresh_in":`,
			`"msg":"token fetch failed"`, `"error":"AzureCLICredential: please run 'az login'"`, `"retry_in":`, `"serving_until":`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s:\n%s", want, out)
			}
		}
	})
}

func TestRefreshDelay(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		refreshOn time.Duration // zero means unset
		want      time.Duration
	}{
		{"1h token", time.Hour, 0, 55 * time.Minute},
		{"10m token", 10 * time.Minute, 0, 5 * time.Minute},
		{"6m token", 6 * time.Minute, 0, 2*time.Minute + 55*time.Second},
		{"20s token: half its 10s of use", 20 * time.Second, 0, 5 * time.Second},
		{"RefreshOn", 24 * time.Hour, 12 * time.Hour, 12 * time.Hour},
		{"RefreshOn past", time.Hour, -time.Second, 55 * time.Minute},
		{"RefreshOn within margin of expiry", time.Hour, time.Hour - 5*time.Second, 55 * time.Minute},
		{"nearly expired", 1500 * time.Millisecond, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := azcore.AccessToken{Token: "t", ExpiresOn: now.Add(tc.expiresIn)}
			if tc.refreshOn != 0 {
				tok.RefreshOn = now.Add(tc.refreshOn)
			}
			if got := refreshDelay(tok, now); got != tc.want {
				t.Errorf("refreshDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 1, 2: 2, 3: 4, 4: 8, 5: 16, 6: 30, 7: 30, 100: 30} {
		want *= time.Second
		for range 50 {
			if got := backoff(n); got < want*8/10 || got > want {
				t.Errorf("backoff(%d) = %v, want %v less up to 20%%", n, got, want)
			}
		}
	}
}

func TestUnusableTokenIsAFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		expiresIn time.Duration
		token     string
		wantErr   string
	}{
		{"empty", time.Hour, "", "credential returned an empty token"},
		{"expired", -time.Minute, "t", "credential returned a token that expires at 1999-12-31T23:59:00Z"},
		{"within the margin", 10 * time.Second, "t", "credential returned a token that expires at 2000-01-01T00:00:10Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
					return azcore.AccessToken{Token: tc.token, ExpiresOn: time.Now().Add(tc.expiresIn)}, nil
				}}
				s, stop := startSource(t, Options{Credential: cred})
				defer stop()
				tok, err := s.Token(context.Background())
				if tok.Token != "" || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Token() = %q, %v, want ErrUnavailable with %q", tok.Token, err, tc.wantErr)
				}
				if st := s.State(); st.Valid || st.Credential != "" || st.LastError == nil {
					t.Errorf("State() = %+v, want no token, a LastError", st)
				}
			})
		})
	}
}
