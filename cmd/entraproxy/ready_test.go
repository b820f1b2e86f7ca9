package main

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/internal/testca"
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

// The ready line tells a user how to point an SDK at the proxy: an address
// a client can connect to (never 0.0.0.0 or [::]), the scheme TLS asks for,
// a name the certificate holds, and which key the SDK needs: any dummy one,
// or in gateway mode the user's ENTRAPROXY_INBOUND_KEYS key, never the key
// itself.
func TestReadyHint(t *testing.T) {
	ca := testca.New(t, "entraproxy TestReadyHint CA")
	proxyLeaf := ca.Issue(t, "gateway", "proxy.internal", "10.0.0.5").Leaf
	loopbackLeaf := ca.Issue(t, "local", "localhost", "127.0.0.1").Leaf
	const dummy = "; as the key, any dummy value (the proxy removes it)"
	const gateway = "; as the key, your ENTRAPROXY_INBOUND_KEYS key"
	const elsewhere = "; from other machines, this host's address instead of 127.0.0.1"
	tests := []struct {
		name string
		cfg  config.Config
		addr string
		leaf *x509.Certificate
		want string
	}{
		{"loopback", config.Config{}, "127.0.0.1:8080", nil,
			`point the SDK at the proxy: Speech SpeechConfig(host="ws://127.0.0.1:8080"), OpenAI azure_endpoint http://127.0.0.1:8080` + dummy},
		{"IPv6 loopback", config.Config{}, "[::1]:8080", nil,
			`point the SDK at the proxy: Speech SpeechConfig(host="ws://[::1]:8080"), OpenAI azure_endpoint http://[::1]:8080` + dummy},
		{"all interfaces, IPv4", config.Config{AllowUnauthenticated: true}, "0.0.0.0:8080", nil,
			`point the SDK at the proxy: Speech SpeechConfig(host="ws://127.0.0.1:8080"), OpenAI azure_endpoint http://127.0.0.1:8080` + dummy + elsewhere},
		{"all interfaces, IPv6, gateway", config.Config{InboundKeys: []string{"gateway-secret-1"}}, "[::]:8080", nil,
			`point the SDK at the proxy: Speech SpeechConfig(host="ws://127.0.0.1:8080"), OpenAI azure_endpoint http://127.0.0.1:8080` + gateway + elsewhere},
		{"a pod address, gateway", config.Config{InboundKeys: []string{"gateway-secret-1"}}, "10.0.0.5:8080", nil,
			`point the SDK at the proxy: Speech SpeechConfig(host="ws://10.0.0.5:8080"), OpenAI azure_endpoint http://10.0.0.5:8080` + gateway},
		{"TLS on loopback, certificate for localhost", config.Config{TLSCertFile: "tls.crt"}, "127.0.0.1:8443", loopbackLeaf,
			`point the SDK at the proxy: Speech SpeechConfig(host="wss://127.0.0.1:8443"), OpenAI azure_endpoint https://127.0.0.1:8443` + dummy},
		{"TLS gateway on all interfaces, certificate for a name", config.Config{TLSCertFile: "tls.crt", InboundKeys: []string{"gateway-secret-1"}}, "[::]:8443", proxyLeaf,
			`point the SDK at the proxy: Speech SpeechConfig(host="wss://proxy.internal:8443"), OpenAI azure_endpoint https://proxy.internal:8443` + gateway},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := readyHint(&tc.cfg, tc.addr, tc.leaf)
			if got != tc.want {
				t.Errorf("hint =\n  %s\nwant\n  %s", got, tc.want)
			}
			if strings.Contains(got, "gateway-secret-1") {
				t.Errorf("hint holds an inbound key: %s", got)
			}
		})
	}
}
