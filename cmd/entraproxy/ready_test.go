package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entraproxy/entraproxy/tokens"
)

// scriptedCredential answers GetToken as the test says, one call at a time.
type scriptedCredential struct {
	mu       sync.Mutex
	lifetime time.Duration
	fail     error
	calls    chan struct{} // receives after each call
}

func (c *scriptedCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		select {
		case c.calls <- struct{}{}:
		default:
		}
	}()
	if c.fail != nil {
		return azcore.AccessToken{}, c.fail
	}
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(c.lifetime)}, nil
}

func (c *scriptedCredential) set(fail error) {
	c.mu.Lock()
	c.fail = fail
	c.mu.Unlock()
}

// /readyz in each state: starting, ready, token lost, draining.
func TestReadinessStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &scriptedCredential{lifetime: time.Hour, fail: errors.New("hold"), calls: make(chan struct{}, 1)}
		source := tokens.NewSource(tokens.Options{Credential: cred, Scope: "s"})
		var draining atomic.Bool
		ready := readiness(source, &draining)

		if err := ready(); err == nil || err.Error() != "starting: no token yet" {
			t.Errorf("before Run: ready = %v, want starting: no token yet", err)
		}

		cred.set(nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go source.Run(ctx)
		<-cred.calls
		synctest.Wait()
		if err := ready(); err != nil {
			t.Errorf("with a token: ready = %v, want nil", err)
		}

		// The credential starts failing; once the held token expires the
		// proxy is no longer ready, and says why.
		cred.set(errors.New("ManagedIdentityCredential: endpoint unreachable"))
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		err := ready()
		if err == nil || !strings.HasPrefix(err.Error(), "token_unavailable: ") || !strings.Contains(err.Error(), "endpoint unreachable") {
			t.Errorf("token lost: ready = %v, want token_unavailable with the credential's error", err)
		}

		cred.set(nil)
		time.Sleep(time.Minute) // past the capped backoff
		synctest.Wait()
		if err := ready(); err != nil {
			t.Errorf("after recovery: ready = %v, want nil", err)
		}

		draining.Store(true)
		if err := ready(); err == nil || !strings.HasPrefix(err.Error(), "draining") {
			t.Errorf("draining: ready = %v, want draining", err)
		}
		cancel()
		synctest.Wait()
	})
}

// A token that expires while its refresh is still running: /readyz says
// so, rather than "starting" (the last call succeeded, so there is no
// error to quote).
func TestReadinessTokenExpiresDuringRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		cred := tokenThenStuck{expiresOn: t0.Add(time.Minute)}
		source := tokens.NewSource(tokens.Options{Credential: cred, Scope: "s", FetchTimeout: time.Hour})
		var draining atomic.Bool
		ready := readiness(source, &draining)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- source.Run(ctx) }()

		// The refresh starts at 25s (half the token's 50 s of use) and
		// never answers; at 50s the token is no longer handed out.
		time.Sleep(55 * time.Second)
		synctest.Wait()
		want := "token_unavailable: the token expires at " + cred.expiresOn.UTC().Format(time.RFC3339) + " and its refresh has not finished"
		if err := ready(); err == nil || err.Error() != want {
			t.Errorf("ready = %v, want %s", err, want)
		}
		cancel()
		<-done
	})
}

// tokenThenStuck answers its first call with a token that expires at
// expiresOn, and every later call never (until its context ends).
type tokenThenStuck struct{ expiresOn time.Time }

func (c tokenThenStuck) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if time.Now().Before(c.expiresOn.Add(-50 * time.Second)) {
		return azcore.AccessToken{Token: "t", ExpiresOn: c.expiresOn}, nil
	}
	<-ctx.Done()
	return azcore.AccessToken{}, ctx.Err()
}
