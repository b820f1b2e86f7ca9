package fakeazure

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

const scope = "https://cognitiveservices.azure.com/.default"

// usable reports whether the voices list accepts tok.
func usable(t *testing.T, a *Azure, tok string) int {
	t.Helper()
	resp, _ := send(t, http.MethodGet, a.URL()+"/tts/cognitiveservices/voices/list", map[string][]string{"Authorization": {bearer(tok)}}, "")
	return resp.StatusCode
}

// TestManagedIdentityCredential runs azidentity's real managed identity code
// (App Service flavour, chosen by IDENTITY_ENDPOINT + IDENTITY_HEADER)
// against the fake. It needs the process environment, hence t.Setenv.
func TestManagedIdentityCredential(t *testing.T) {
	// Under five minutes: MSAL keeps managed identity tokens in a cache
	// shared by the whole process and serves only those with more than five
	// minutes left, so this lifetime keeps tokens of another fake (another
	// test, -count=2) from being served here.
	const lifetime = 4 * time.Minute
	a := start(t, Settings{TokenLifetime: lifetime})
	t.Setenv("IDENTITY_ENDPOINT", a.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", a.IdentityHeader())
	t.Setenv("IDENTITY_SERVER_THUMBPRINT", "")
	t.Setenv("MSI_ENDPOINT", "")
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	before := time.Now()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	after := time.Now()
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if got := a.Issued(); got != 1 {
		t.Errorf("Issued() = %d, want 1", got)
	}
	wantExpiry(t, tok.ExpiresOn, before, after, lifetime)
	if got := usable(t, a, tok.Token); got != 200 {
		t.Errorf("service status with the managed identity token = %d, want 200", got)
	}
	var claims struct{ Aud, Tid, Oid string }
	if err := json.Unmarshal(decodeSegment(tok.Token, 1), &claims); err != nil || claims.Aud != Audience || claims.Tid != TenantID || claims.Oid != ObjectID {
		t.Errorf("claims = %+v, %v, want aud %s, tid %s, oid %s", claims, err, Audience, TenantID, ObjectID)
	}
}

func TestManagedIdentityEndpointChecks(t *testing.T) {
	a := start(t, Settings{})
	good := a.IdentityEndpoint() + "?api-version=2019-08-01&resource=" + Audience
	tests := []struct {
		name   string
		url    string
		header map[string][]string
		want   int
	}{
		{"valid", good, map[string][]string{"X-IDENTITY-HEADER": {a.IdentityHeader()}}, 200},
		{"no header", good, nil, 401},
		{"wrong header", good, map[string][]string{"X-IDENTITY-HEADER": {"nope"}}, 401},
		{"old api version", a.IdentityEndpoint() + "?api-version=2017-09-01&resource=" + Audience, map[string][]string{"X-IDENTITY-HEADER": {a.IdentityHeader()}}, 400},
		{"no resource", a.IdentityEndpoint() + "?api-version=2019-08-01", map[string][]string{"X-IDENTITY-HEADER": {a.IdentityHeader()}}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, http.MethodGet, tc.url, tc.header, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				return
			}
			var r map[string]string
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("decode %s: %v (expires_on must be a string)", body, err)
			}
			if r["token_type"] != "Bearer" || r["resource"] != Audience || r["expires_on"] == "" || r["access_token"] == "" {
				t.Errorf("reply = %v, want access_token, expires_on, resource, token_type", r)
			}
		})
	}
	if got := a.Issued(); got != 1 {
		t.Errorf("Issued() = %d, want 1", got)
	}
}

// TestAzureCLICredential runs azidentity's real Azure CLI credential with the
// fake az first on PATH.
func TestAzureCLICredential(t *testing.T) {
	const lifetime = 30 * time.Minute
	a := start(t, Settings{TokenLifetime: lifetime})
	dir := t.TempDir()
	if err := a.WriteAZ(dir); err != nil {
		t.Fatalf("WriteAZ: %v", err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cred, err := azidentity.NewAzureCLICredential(nil)
	if err != nil {
		t.Fatalf("NewAzureCLICredential: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	seen := map[string]bool{}
	for i := range 2 {
		before := time.Now()
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		after := time.Now()
		if err != nil {
			t.Fatalf("GetToken %d: %v", i, err)
		}
		wantExpiry(t, tok.ExpiresOn, before, after, lifetime)
		if got := usable(t, a, tok.Token); got != 200 {
			t.Errorf("service status with the az token = %d, want 200", got)
		}
		seen[tok.Token] = true
	}
	// The CLI credential never caches: each call ran az, which got a new token.
	if got := a.Issued(); got != 2 || len(seen) != 2 {
		t.Errorf("Issued() = %d with %d distinct tokens, want 2 and 2", got, len(seen))
	}
}

func TestFakeAZRefusesOtherCommands(t *testing.T) {
	a := start(t, Settings{})
	dir := t.TempDir()
	if err := a.WriteAZ(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), leakcheck.HangGuard)
	defer cancel()
	out, err := exec.CommandContext(ctx, dir+"/az", "login").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "supports only") {
		t.Errorf("az login = %q, %v, want exit 2 naming what it supports", out, err)
	}
	out, err = exec.CommandContext(ctx, dir+"/az", "account", "get-access-token", "--scope", scope, "-o", "json").Output()
	if err != nil {
		t.Fatalf("az account get-access-token --scope: %v", err)
	}
	var r struct {
		AccessToken string `json:"accessToken"`
		ExpiresOn   int64  `json:"expires_on"`
		TokenType   string `json:"tokenType"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.TokenType != "Bearer" || r.ExpiresOn == 0 || usable(t, a, r.AccessToken) != 200 {
		t.Errorf("az output %s (%v), want a usable token", out, err)
	}
	a.Close()
	if out, err := exec.CommandContext(ctx, dir+"/az", "account", "get-access-token").CombinedOutput(); err == nil {
		t.Errorf("az with the fake closed = %q, nil, want an error", out)
	}
}

// wantExpiry checks that a token issued between before and after expires
// lifetime after its issue, give or take the second its expiry is written in
// (whole seconds); how long the call took does not matter.
func wantExpiry(t *testing.T, expiresOn, before, after time.Time, lifetime time.Duration) {
	t.Helper()
	earliest, latest := before.Add(lifetime-time.Second), after.Add(lifetime+time.Second)
	if expiresOn.Before(earliest) || expiresOn.After(latest) {
		t.Errorf("ExpiresOn = %v, want %v after issue, between %v and %v", expiresOn, lifetime, earliest, latest)
	}
}
