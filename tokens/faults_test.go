package tokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// A short-lived token (20 s, so usable for 10 s) is refreshed at half its
// usable time, and a failed refresh is retried while it still serves.
// Refreshing at half its whole lifetime would first try at the very moment
// it stops serving, leaving clients without a token for as long as that one
// try takes to fail and back off.
func TestShortTokenRefreshRetriedWhileValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			if n == 1 {
				return token(n, time.Now().Add(20*time.Second)), nil
			}
			return azcore.AccessToken{}, errors.New("token endpoint down")
		}}
		s, stop := startSource(t, Options{Credential: cred})
		defer stop()

		sleepUntil(t0.Add(10*time.Second - time.Millisecond))
		if tok, err := s.Token(context.Background()); err != nil || tok.Token != "token-1" {
			t.Errorf("Token() while token-1 is usable = %q, %v, want token-1", tok.Token, err)
		}
		var before []time.Duration
		for _, c := range cred.callTimes()[1:] {
			before = append(before, c.Sub(t0))
		}
		if len(before) < 2 || before[0] != 5*time.Second {
			t.Errorf("refresh attempts before the token stopped serving at 10s = %v, want the first at 5s and a retry", before)
		}
	})
}

// restlessError is like azidentity's AuthenticationFailedError: Error
// changes the value (it reads the response body again), so two goroutines
// calling it at once race.
type restlessError struct{ reads int }

func (e *restlessError) Error() string {
	e.reads++
	return "ManagedIdentityCredential authentication failed: 500 token service failed"
}

// The credential's error is read by Run (its log line) and by every caller
// left without a token (Token's error, State): under -race this fails
// unless the Source fixes the message once, on Run's goroutine. In a
// synctest bubble, so that the 50ms wait cannot run out before the first
// call has failed (the goroutines still run at once, as -race needs).
func TestCredentialErrorReadConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &fakeCredential{fn: func(ctx context.Context, n int) (azcore.AccessToken, error) {
			return azcore.AccessToken{}, &restlessError{}
		}}
		s, stop := startSource(t, Options{Credential: cred, WaitTimeout: 50 * time.Millisecond})
		defer stop()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 8 {
					if _, err := s.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "token service failed") {
						t.Errorf("Token() error = %v, want the credential's", err)
					}
					if e := s.State().LastError; e != nil {
						_ = e.Error()
					}
				}
			})
		}
		wg.Wait()
		var re *restlessError
		if !errors.As(s.State().LastError, &re) {
			t.Errorf("LastError %v does not wrap the credential's error", s.State().LastError)
		}
	})
}
