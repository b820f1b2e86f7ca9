package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
)

// These tests run azidentity's real code, which reads the process
// environment, so they use t.Setenv and cannot run in parallel.

// unsetenv removes keys for the test: azidentity tells unset from empty
// (AZURE_TOKEN_CREDENTIALS, AZURE_CLIENT_ID).
func unsetenv(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		t.Setenv(k, "") // restores the old value after the test
		os.Unsetenv(k)
	}
}

// cleanAzureEnv leaves the test no Azure configuration but what it sets.
func cleanAzureEnv(t *testing.T) {
	unsetenv(t, "AZURE_TOKEN_CREDENTIALS", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
		"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
		"AZURE_USERNAME", "AZURE_PASSWORD", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT",
		"MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AZURE_SDK_GO_LOGGING")
}

// listenAzureLog installs AzureLogListener for the test. The listener is
// process-global, another reason these tests are sequential.
func listenAzureLog(t *testing.T, logger *slog.Logger, cred azcore.TokenCredential) {
	azlog.SetListener(AzureLogListener(logger, cred))
	t.Cleanup(func() { azlog.SetListener(nil) })
}

// fetch runs a Source over cred until one Token call has an answer.
func fetch(t *testing.T, cred azcore.TokenCredential, scope string, logger *slog.Logger) (azcore.AccessToken, State, error) {
	t.Helper()
	// WaitTimeout is a hang guard: the fake endpoints answer at once.
	s := NewSource(Options{Credential: cred, Scope: scope, Logger: logger, WaitTimeout: 2 * time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tok, err := s.Token(t.Context())
	st := s.State()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	return tok, st, err
}

// uniqueScope defeats MSAL's process-wide managed identity token cache,
// which would otherwise answer a later test (or -count run) without asking
// the fake endpoint.
func uniqueScope() string {
	return fmt.Sprintf("api://entraproxy-test-%d/.default", rand.Int64())
}

func TestNewCredential(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("service-account-jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	workload := map[string]string{
		"AZURE_CLIENT_ID":            "11111111-1111-1111-1111-111111111111",
		"AZURE_TENANT_ID":            "22222222-2222-2222-2222-222222222222",
		"AZURE_FEDERATED_TOKEN_FILE": tokenFile,
	}
	for _, tc := range []struct {
		name     string
		kind     string
		env      map[string]string // process environment
		getenv   map[string]string
		wantName string
		wantErr  string
	}{
		{name: "default", kind: "default", wantName: "DefaultAzureCredential"},
		{name: "azure-cli", kind: "azure-cli", wantName: "AzureCLICredential"},
		{name: "azure-developer-cli", kind: "azure-developer-cli", wantName: "AzureDeveloperCLICredential"},
		{name: "managed-identity", kind: "managed-identity", wantName: "ManagedIdentityCredential"},
		{name: "managed-identity user-assigned", kind: "managed-identity", getenv: map[string]string{"AZURE_CLIENT_ID": "33333333-3333-3333-3333-333333333333"}, wantName: "ManagedIdentityCredential"},
		{name: "workload-identity", kind: "workload-identity", getenv: workload, wantName: "WorkloadIdentityCredential"},
		{name: "environment", kind: "environment", env: map[string]string{
			"AZURE_TENANT_ID": "22222222-2222-2222-2222-222222222222", "AZURE_CLIENT_ID": "11111111-1111-1111-1111-111111111111", "AZURE_CLIENT_SECRET": "s3cret",
		}, wantName: "EnvironmentCredential"},
		{name: "unknown kind", kind: "azure-powershell", wantErr: `unknown credential "azure-powershell": want one of default, azure-cli, azure-developer-cli, managed-identity, workload-identity, environment`},
		{name: "workload-identity unconfigured", kind: "workload-identity", wantErr: "build workload-identity credential: "},
		{name: "environment unconfigured", kind: "environment", wantErr: "build environment credential: "},
		{name: "default with bad AZURE_TOKEN_CREDENTIALS", kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "nope"}, wantErr: `build default credential: invalid AZURE_TOKEN_CREDENTIALS value "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAzureEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cred, err := NewCredential(tc.kind, CredentialOptions{Getenv: func(k string) string { return tc.getenv[k] }})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("NewCredential(%q) error = %v, want it to contain %q", tc.kind, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewCredential(%q) error = %v", tc.kind, err)
			}
			if got := credentialName(cred); got != tc.wantName {
				t.Errorf("credential name = %q, want %q", got, tc.wantName)
			}
		})
	}
}

// appService is a fake App Service managed identity endpoint.
type appService struct {
	token     string
	expiresOn time.Time

	mu       sync.Mutex
	requests []*http.Request
}

func (a *appService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, r)
	a.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Query().Get("api-version") != "2019-08-01" || r.Header.Get("X-IDENTITY-HEADER") != "secret" {
		http.Error(w, `{"error":"bad_request"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"access_token": a.token,
		"expires_on":   strconv.FormatInt(a.expiresOn.Unix(), 10),
		"resource":     r.URL.Query().Get("resource"),
		"token_type":   "Bearer",
	})
}

// countingTransport is a policy.Transporter that counts the requests it
// sends.
type countingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *countingTransport) Do(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return (&http.Client{}).Do(r)
}

func TestManagedIdentityAppService(t *testing.T) {
	for _, tc := range []struct {
		name         string
		kind         string
		env          map[string]string
		clientID     string // from CredentialOptions.Getenv
		wantClientID string
	}{
		{name: "system-assigned", kind: "managed-identity"},
		{name: "user-assigned", kind: "managed-identity", clientID: "33333333-3333-3333-3333-333333333333", wantClientID: "33333333-3333-3333-3333-333333333333"},
		{name: "default narrowed", kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential"}},
		{name: "default prod chain", kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAzureEnv(t)
			fake := &appService{token: "mi-token-" + strconv.FormatInt(rand.Int64(), 36), expiresOn: time.Now().Add(time.Hour).Truncate(time.Second)}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
			t.Setenv("IDENTITY_HEADER", "secret")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			transport := &countingTransport{}
			cred, err := NewCredential(tc.kind, CredentialOptions{
				Getenv:    func(k string) string { return map[string]string{"AZURE_CLIENT_ID": tc.clientID}[k] },
				Transport: transport,
			})
			if err != nil {
				t.Fatalf("NewCredential(%q) error = %v", tc.kind, err)
			}
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			listenAzureLog(t, logger, cred)

			scope := uniqueScope()
			tok, st, err := fetch(t, cred, scope, logger)
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok.Token != fake.token || !tok.ExpiresOn.Equal(fake.expiresOn) {
				t.Errorf("Token() = %q expiring %v, want %q expiring %v", tok.Token, tok.ExpiresOn, fake.token, fake.expiresOn)
			}
			if st.Credential != "ManagedIdentityCredential" {
				t.Errorf("State().Credential = %q, want ManagedIdentityCredential", st.Credential)
			}

			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.requests) != 1 {
				t.Fatalf("endpoint requests = %d, want 1", len(fake.requests))
			}
			q := fake.requests[0].URL.Query()
			if got, want := q.Get("resource"), strings.TrimSuffix(scope, "/.default"); got != want {
				t.Errorf("resource = %q, want %q", got, want)
			}
			if got := q.Get("client_id"); got != tc.wantClientID {
				t.Errorf("client_id = %q, want %q", got, tc.wantClientID)
			}
			if transport.n == 0 {
				t.Errorf("CredentialOptions.Transport sent no request")
			}
			if strings.Contains(logs.String(), fake.token) {
				t.Errorf("log holds the token:\n%s", logs.String())
			}
		})
	}
}

// fakeAz puts an executable az on PATH (only there) that prints a token and
// appends its arguments to the returned file, or fails like an az that is
// not logged in.
func fakeAz(t *testing.T, token string, expiresOn time.Time, fail bool) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> '%s'\nprintf '%%s' '{\"accessToken\":\"%s\",\"expires_on\":%d,\"tokenType\":\"Bearer\"}'\n", argsFile, token, expiresOn.Unix())
	if fail {
		script = fmt.Sprintf("#!/bin/sh\necho \"$@\" >> '%s'\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n", argsFile)
	}
	if err := os.WriteFile(filepath.Join(dir, "az"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return argsFile
}

func TestAzureCLI(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		env  map[string]string
	}{
		{name: "azure-cli", kind: "azure-cli"},
		{name: "default narrowed", kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "AzureCLICredential"}},
		{name: "default dev chain", kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAzureEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			want := azcore.AccessToken{Token: "cli-token-" + strconv.FormatInt(rand.Int64(), 36), ExpiresOn: time.Now().Add(time.Hour).Truncate(time.Second).UTC()}
			argsFile := fakeAz(t, want.Token, want.ExpiresOn, false)
			cred, err := NewCredential(tc.kind, CredentialOptions{})
			if err != nil {
				t.Fatalf("NewCredential(%q) error = %v", tc.kind, err)
			}
			var logs bytes.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			listenAzureLog(t, logger, cred)

			tok, st, err := fetch(t, cred, testScope, logger)
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok.Token != want.Token || !tok.ExpiresOn.Equal(want.ExpiresOn) {
				t.Errorf("Token() = %q expiring %v, want %q expiring %v", tok.Token, tok.ExpiresOn, want.Token, want.ExpiresOn)
			}
			if st.Credential != "AzureCLICredential" {
				t.Errorf("State().Credential = %q, want AzureCLICredential", st.Credential)
			}
			args, err := os.ReadFile(argsFile)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(args), "account get-access-token -o json --resource https://cognitiveservices.azure.com\n"; got != want {
				t.Errorf("az arguments = %q, want %q", got, want)
			}
			out := logs.String()
			if !strings.Contains(out, `"msg":"token acquired","credential":"AzureCLICredential"`) {
				t.Errorf("log does not name AzureCLICredential:\n%s", out)
			}
			if strings.Contains(out, want.Token) {
				t.Errorf("log holds the token:\n%s", out)
			}
		})
	}
}

// fakeAzd puts an executable azd on PATH (only there) that prints a token
// and appends its arguments to the returned file.
func fakeAzd(t *testing.T, token string, expiresOn time.Time) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> '%s'\nprintf '%%s' '{\"token\":\"%s\",\"expiresOn\":\"%s\"}'\n",
		argsFile, token, expiresOn.UTC().Format("2006-01-02T15:04:05Z"))
	if err := os.WriteFile(filepath.Join(dir, "azd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return argsFile
}

// The CLI kinds ask az / azd for the tenant they are logged in to, whatever
// AZURE_TENANT_ID says, exactly as DefaultAzureCredential's CLI sources do
// (azidentity gives them only DefaultAzureCredentialOptions.TenantID, never
// the variable): switching between default and azure-cli must not change
// the tenant of the token.
func TestCLITenantParity(t *testing.T) {
	const tenant = "22222222-2222-2222-2222-222222222222"
	for _, tc := range []struct {
		tool string // az or azd
		kind string // the dedicated kind
		only string // AZURE_TOKEN_CREDENTIALS narrowing default to the same source
	}{
		{"az", "azure-cli", "AzureCLICredential"},
		{"azd", "azure-developer-cli", "AzureDeveloperCLICredential"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			args := map[string]string{}
			for _, kind := range []string{"default", tc.kind} {
				cleanAzureEnv(t)
				t.Setenv("AZURE_TENANT_ID", tenant)
				t.Setenv("AZURE_TOKEN_CREDENTIALS", tc.only)
				expires := time.Now().Add(time.Hour)
				argsFile := fakeAz(t, "cli-token", expires, false)
				if tc.tool == "azd" {
					argsFile = fakeAzd(t, "cli-token", expires)
				}
				cred, err := NewCredential(kind, CredentialOptions{Getenv: func(k string) string {
					if k == "AZURE_TENANT_ID" {
						return tenant
					}
					return ""
				}})
				if err != nil {
					t.Fatalf("NewCredential(%q) error = %v", kind, err)
				}
				if _, _, err := fetch(t, cred, testScope, nil); err != nil {
					t.Fatalf("%s: Token() error = %v", kind, err)
				}
				b, err := os.ReadFile(argsFile)
				if err != nil {
					t.Fatal(err)
				}
				args[kind] = strings.TrimSpace(string(b))
			}
			if got, want := args[tc.kind], args["default"]; got != want {
				t.Errorf("%s ran %s %q, want %q as default does", tc.kind, tc.tool, got, want)
			}
			if strings.Contains(args[tc.kind], tenant) {
				t.Errorf("%s ran %s %q, want no tenant from AZURE_TENANT_ID", tc.kind, tc.tool, args[tc.kind])
			}
		})
	}
}

func TestCredentialFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      string
		env       map[string]string
		az        bool // a fake az that is not logged in; else no az at all
		wantInErr []string
		wantFix   string // in the CredentialError's Fix
	}{
		{
			name: "default dev chain, no tools",
			kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "dev"},
			wantInErr: []string{
				"DefaultAzureCredential: failed to acquire a token",
				"AzureCLICredential: executable not found on path",
				"AzureDeveloperCLICredential",
				"AzurePowerShellCredential",
			},
			wantFix: "install the Azure CLI",
		},
		{
			name: "default dev chain, az not logged in",
			kind: "default", env: map[string]string{"AZURE_TOKEN_CREDENTIALS": "dev"}, az: true,
			wantInErr: []string{"AzureCLICredential: ERROR: Please run 'az login' to setup account", "AzureDeveloperCLICredential"},
			wantFix:   "run `az login`",
		},
		{
			name: "azure-cli not logged in",
			kind: "azure-cli", az: true,
			wantInErr: []string{"AzureCLICredential: ERROR: Please run 'az login' to setup account"},
			wantFix:   "run `az login`",
		},
		{
			name:      "azure-cli not installed",
			kind:      "azure-cli",
			wantInErr: []string{"AzureCLICredential: executable not found on path"},
			wantFix:   "install the Azure CLI",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAzureEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.az {
				fakeAz(t, "", time.Time{}, true)
			} else {
				t.Setenv("PATH", t.TempDir())
			}
			cred, err := NewCredential(tc.kind, CredentialOptions{})
			if err != nil {
				t.Fatalf("NewCredential(%q) error = %v", tc.kind, err)
			}
			tok, st, err := fetch(t, cred, testScope, nil)
			if !errors.Is(err, ErrUnavailable) || tok.Token != "" {
				t.Fatalf("Token() = %q, %v, want error wrapping ErrUnavailable", tok.Token, err)
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Token() error = %q, want it to contain %q", err, want)
				}
			}
			if st.LastError == nil || st.Credential != "" || st.Valid {
				t.Errorf("State() = %+v, want LastError, no Credential, not Valid", st)
			}
			if ce := (*CredentialError)(nil); !errors.As(err, &ce) {
				t.Errorf("Token() error %v does not wrap a *CredentialError", err)
			} else if !strings.Contains(ce.Fix, tc.wantFix) {
				t.Errorf("fix = %q, want one containing %q", ce.Fix, tc.wantFix)
			}
		})
	}
}

func TestAzureLogListenerWithoutDefault(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cred := &fakeCredential{}
	listen := AzureLogListener(logger, cred)
	// A chain message about another credential must not rename one that is
	// not a DefaultAzureCredential.
	listen("Authentication", chainPrefix+"AzureCLICredential")
	if got := credentialName(cred); got != "FakeCredential" {
		t.Errorf("credential name = %q, want FakeCredential", got)
	}
	if !strings.Contains(logs.String(), `"event":"Authentication"`) {
		t.Errorf("log lacks the azure event:\n%s", logs.String())
	}
	AzureLogListener(nil, nil)("Request", "GET") // nil logger and credential are fine
}
