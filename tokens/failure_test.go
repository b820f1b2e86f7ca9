package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
)

// syncBuffer is a log destination safe for the Source's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines decodes JSON log lines.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A token endpoint that answers 500 with a body holding a JWT and an
// access_token field (azidentity's message quotes the whole body): the real
// managed identity credential against it, then every log line at debug
// level (azcore's own events included), the error Token returns and State's
// LastError. None holds either secret; the warning carries the status, the
// credential's first line, the likely fix and the doctor hint, and the debug
// line the whole message, redacted.
func TestBrokenTokenEndpointNeverShown(t *testing.T) {
	cleanAzureEnv(t)
	srv := httptest.NewServer(fakeazure.BrokenTokenEndpoint())
	defer srv.Close()
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "identity-header-secret")
	cred, err := NewCredential("managed-identity", CredentialOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	listenAzureLog(t, logger, cred)

	_, st, err := fetch(t, cred, uniqueScope(), logger) // Run has returned: every line is written
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Token() error = %v, want ErrUnavailable", err)
	}
	var ce *CredentialError
	if !errors.As(err, &ce) {
		t.Fatalf("Token() error %v does not wrap a *CredentialError", err)
	}
	if ce.Status != http.StatusInternalServerError || ce.Credential != "ManagedIdentityCredential" {
		t.Errorf("CredentialError = %s, status %d, want ManagedIdentityCredential, 500", ce.Credential, ce.Status)
	}
	if len(ce.Error()) > maxSummary || strings.Contains(ce.Error(), "\n") {
		t.Errorf("summary is %d bytes or spans lines: %q", len(ce.Error()), ce.Error())
	}

	shown := map[string]string{
		"log":           logs.String(),
		"Token() error": err.Error(),
		"LastError":     st.LastError.Error(),
		"Detail()":      ce.Detail(),
	}
	for what, text := range shown {
		for _, secret := range []string{fakeazure.BrokenJWT, fakeazure.BrokenToken, "identity-header-secret"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the secret %.12s...:\n%s", what, secret, text)
			}
		}
		if m := jwtPattern.FindString(text); m != "" {
			t.Errorf("%s holds a JWT-shaped string %.16s...", what, m)
		}
	}

	var warns, details int
	for _, l := range logLines(t, logs.String()) {
		switch {
		case l["level"] == "WARN" && l["msg"] == "token fetch failed":
			warns++
			errText, _ := l["error"].(string)
			fix, _ := l["fix"].(string)
			hint, _ := l["hint"].(string)
			if l["credential"] != "ManagedIdentityCredential" || l["status"] != float64(500) ||
				!strings.HasPrefix(errText, "ManagedIdentityCredential authentication failed (HTTP 500") ||
				fix == "" || !strings.Contains(hint, "entraproxy doctor") {
				t.Errorf("warning = %v, want the credential, status 500, its first line, a fix and the doctor hint", l)
			}
		case l["level"] == "DEBUG" && strings.HasPrefix(l["msg"].(string), "token fetch failed"):
			details++
			if d, _ := l["detail"].(string); !strings.Contains(d, "server_error") || !strings.Contains(d, redacted) {
				t.Errorf("debug detail = %q, want the whole message, redacted", d)
			}
		case l["level"] == "ERROR":
			t.Errorf("error line %v: a failed fetch is a warning", l)
		}
	}
	if warns == 0 || details != warns {
		t.Errorf("warnings = %d, debug details = %d, want one of each per attempt\n%s", warns, details, logs.String())
	}
}

func TestRedact(t *testing.T) {
	jwt := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	for _, tc := range []struct{ name, in, want string }{
		{"nothing secret", "AzureCLICredential: executable not found on path", "AzureCLICredential: executable not found on path"},
		{"jwt", "token " + jwt + " refused", "token [redacted] refused"},
		{"jwt without signature", "got eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. here", "got [redacted] here"},
		{"access_token and after", `{"error":"x","access_token":"opaque","refresh_token":"r"}`, `{"error":"x","access_token [redacted]`},
		{"az's accessToken", `{"accessToken": "opaque", "expiresOn": "2026"}`, `{"accessToken [redacted]`},
		{"client_secret in a form", "grant_type=client_credentials&client_secret=abc&scope=x", "grant_type=client_credentials&client_secret [redacted]"},
		{"bearer value", "Authorization: Bearer opaque-value-123", "Authorization: Bearer [redacted]"},
		{"aad form", "Bearer aad#/subscriptions/s/x#" + jwt, "Bearer [redacted]"},
		{"a variable name is no field", "missing environment variable AZURE_CLIENT_SECRET", "missing environment variable AZURE_CLIENT_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// Messages as azidentity v1.15 writes them (the tests above and in
// credential_test.go produce most of these with the real credentials;
// these are the ones that need Entra ID or an Azure host).
func TestDescribeCredentialError(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name        string
		msg         string
		authFailed  int // wrap an AuthenticationFailedError with this response status
		wantSummary string
		wantStatus  int
		wantSources int
		wantFix     string
	}{
		{
			name:        "client secret wrong (AADSTS7000215)",
			msg:         "ClientSecretCredential authentication failed. \nPOST https://login.microsoftonline.com/t/oauth2/v2.0/token\n----\nRESPONSE 401: 401 Unauthorized\n----\n{\n  \"error\": \"invalid_client\",\n  \"error_description\": \"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\\r\\nTrace ID: 1\"\n}\n----\nTo troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#client-secret",
			authFailed:  401,
			wantSummary: "ClientSecretCredential authentication failed (HTTP 401 Unauthorized); AADSTS7000215: Invalid client secret provided",
			wantStatus:  401,
			wantFix:     "AZURE_CLIENT_SECRET",
		},
		{
			// Outside Azure behind a proxy that answers the IMDS address:
			// the chain stops at managed identity.
			name: "default chain stopped by an answer at the IMDS address",
			msg: "DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:\n\tEnvironmentCredential: missing environment variable AZURE_TENANT_ID\n" +
				"\tWorkloadIdentityCredential: no client ID specified. Check pod configuration or set ClientID in the options\n" +
				"\tManagedIdentityCredential authentication failed. \n\t\tGET http://169.254.169.254/metadata/identity/oauth2/token\n\t\t----\n\t\tRESPONSE 403: 403 Forbidden\n\t\t----\n\t\tresolve_deny: denied destination\n\t\t----\n\t\tTo troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#managed-id",
			authFailed: 403,
			wantSummary: "DefaultAzureCredential: failed to acquire a token. Tried EnvironmentCredential: missing environment variable AZURE_TENANT_ID; " +
				"WorkloadIdentityCredential: no client ID specified; ManagedIdentityCredential authentication failed (HTTP 403 Forbidden)",
			wantStatus:  403,
			wantSources: 3,
			wantFix:     "elsewhere something else answers at its address: outside Azure pick another credential",
		},
		{
			// Every kind of source line at once: unavailable, an answer
			// with a body, and az passing on an AADSTS code.
			name: "default chain, all sources",
			msg: "DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:" +
				"\n\tEnvironmentCredential: missing environment variable AZURE_TENANT_ID" +
				"\n\tManagedIdentityCredential authentication failed. the requested identity isn't assigned to this resource" +
				"\n\t\tGET http://169.254.169.254/metadata/identity/oauth2/token" +
				"\n\t\t--------------------------------------------------------------------------------" +
				"\n\t\tRESPONSE 400: 400 Bad Request" +
				"\n\t\t--------------------------------------------------------------------------------" +
				"\n\t\t{ \"error\": \"invalid_request\", \"error_description\": \"Identity not found\" }" +
				"\n\t\tTo troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#managed-id" +
				"\n\tAzureCLICredential: ERROR: AADSTS700082: The refresh token has expired due to inactivity. The token was issued on 2026-01-01." +
				"\n\t\tTo troubleshoot, visit https://aka.ms/azsdk/go/identity/troubleshoot#azure-cli",
			wantSummary: "DefaultAzureCredential: failed to acquire a token. Tried EnvironmentCredential: missing environment variable AZURE_TENANT_ID; " +
				"ManagedIdentityCredential authentication failed: the requested identity isn't assigned to this resource (HTTP 400 Bad Request); invalid_request; " +
				"AzureCLICredential: ERROR: AADSTS700082: The refresh token has expired due to inactivity",
			wantSources: 3,
			wantFix:     "run `az login`",
		},
		{
			name:        "workload identity not configured",
			msg:         "WorkloadIdentityCredential: no client ID specified. Check pod configuration or set ClientID in the options",
			wantSummary: "WorkloadIdentityCredential: no client ID specified",
			wantFix:     "AZURE_FEDERATED_TOKEN_FILE",
		},
		{
			name:        "not azidentity's",
			msg:         "credential returned an empty token",
			wantSummary: "FakeCredential: credential returned an empty token",
		},
		{
			name:        "bounded",
			msg:         "AzureCLICredential: " + long,
			wantSummary: "AzureCLICredential: " + long[:maxSourceLine-len("AzureCLICredential: ")-len("…")] + "…",
			wantFix:     "az account get-access-token",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error = errors.New(tc.msg)
			if tc.authFailed != 0 {
				err = &authFailed{msg: tc.msg, afe: &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: tc.authFailed}}}
			}
			ce := DescribeCredentialError("FakeCredential", err)
			if ce.Error() != tc.wantSummary {
				t.Errorf("summary = %q\nwant      %q", ce.Error(), tc.wantSummary)
			}
			if ce.Status != tc.wantStatus || len(ce.Sources) != tc.wantSources {
				t.Errorf("status %d, %d sources, want %d, %d", ce.Status, len(ce.Sources), tc.wantStatus, tc.wantSources)
			}
			if tc.wantFix == "" && ce.Fix != "" || !strings.Contains(ce.Fix, tc.wantFix) {
				t.Errorf("fix = %q, want one containing %q", ce.Fix, tc.wantFix)
			}
			if len(ce.Detail()) > maxDetail || !errors.Is(ce, err) {
				t.Errorf("detail %d bytes, wraps %v: want at most %d, wrapping the credential's error", len(ce.Detail()), errors.Unwrap(ce), maxDetail)
			}
		})
	}
}

// authFailed is an error with msg's text that wraps an azidentity
// AuthenticationFailedError, as DefaultAzureCredential's error does when a
// source stopped the chain.
type authFailed struct {
	msg string
	afe *azidentity.AuthenticationFailedError
}

func (e *authFailed) Error() string { return e.msg }
func (e *authFailed) Unwrap() error { return e.afe }

// memoryTransport answers azidentity's HTTP requests in memory, so that
// under synctest azcore's retry delays pass at once.
type memoryTransport func(*http.Request) (*http.Response, error)

func (f memoryTransport) Do(r *http.Request) (*http.Response, error) { return f(r) }

func answer(status int, body string) memoryTransport {
	return func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r, ContentLength: int64(len(body))}, nil
	}
}

// The managed identity cases with the real credential: nothing listening,
// nothing answering (DefaultAzureCredential's IMDS probe), and an IMDS that
// does not know the user-assigned identity.
func TestManagedIdentityFixes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kind      string
		env       map[string]string
		clientID  string
		transport memoryTransport
		wantInErr string
		wantFix   string
	}{
		{
			name: "app service endpoint refuses connections",
			kind: "managed-identity",
			env:  map[string]string{"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "h"},
			transport: func(*http.Request) (*http.Response, error) {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
			},
			wantInErr: "connection refused",
			wantFix:   "no managed identity endpoint answers here",
		},
		{
			// The prod chain probes IMDS first: environment, workload
			// identity, managed identity, no CLI.
			name: "default prod chain, IMDS probe unanswered",
			kind: "default",
			env:  map[string]string{"AZURE_TOKEN_CREDENTIALS": "prod"},
			transport: func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			},
			wantInErr: "managed identity timed out",
			wantFix:   "no managed identity endpoint answers here",
		},
		{
			name:      "IMDS does not know the user-assigned identity",
			kind:      "managed-identity",
			clientID:  "44444444-4444-4444-4444-444444444444",
			transport: answer(http.StatusBadRequest, `{"error":"invalid_request","error_description":"Identity not found"}`),
			wantInErr: "isn't assigned to this resource",
			wantFix:   "assign the user-assigned identity",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAzureEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			synctest.Test(t, func(t *testing.T) {
				cred, err := NewCredential(tc.kind, CredentialOptions{
					Getenv:    func(k string) string { return map[string]string{"AZURE_CLIENT_ID": tc.clientID}[k] },
					Transport: tc.transport,
				})
				if err != nil {
					t.Fatal(err)
				}
				// azcore retries a failed connection 3 times, 0.8 s, 2.4 s and
				// 5.6 s apart, each give or take 20%: past the default 10 s.
				// The bubble's clock makes a minute cost nothing.
				s := NewSource(Options{Credential: cred, Scope: uniqueScope(), WaitTimeout: time.Minute, FetchTimeout: time.Minute})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- s.Run(ctx) }()
				_, err = s.Token(context.Background())
				cancel()
				<-done
				var ce *CredentialError
				if !errors.As(err, &ce) {
					t.Fatalf("Token() error %v does not wrap a *CredentialError", err)
				}
				if !strings.Contains(ce.Error(), tc.wantInErr) || !strings.Contains(ce.Fix, tc.wantFix) {
					t.Errorf("summary %q, fix %q: want %q and a fix containing %q", ce.Error(), ce.Fix, tc.wantInErr, tc.wantFix)
				}
			})
		})
	}
}

// Every rule of fix, and the order between them: which failure gets which
// fix. A want of "" means no fix; otherwise the fix must contain want.
func TestFixRules(t *testing.T) {
	const (
		cli      = "AzureCLICredential"
		azd      = "AzureDeveloperCLICredential"
		pwsh     = "AzurePowerShellCredential"
		mi       = "ManagedIdentityCredential"
		wi       = "WorkloadIdentityCredential"
		env      = "EnvironmentCredential"
		notFound = "executable not found on path"
	)
	for _, tc := range []struct {
		name string
		src  source
		want string
	}{
		{"az passes an AADSTS code on", source{name: cli, aadsts: "700082"}, "run `az login` as the user"},
		{"az asks for az login", source{name: cli, text: "ERROR: Please run 'az login' to setup account."}, "run `az login` as the user"},
		{"az login beats a secret code", source{name: cli, aadsts: "7000215"}, "run `az login` as the user"},
		{"azd passes an AADSTS code on", source{name: azd, aadsts: "700082"}, "run `azd auth login`"},
		{"wrong client secret", source{name: "ClientSecretCredential", aadsts: "7000215"}, "is not a valid secret of the app AZURE_CLIENT_ID"},
		{"expired client secret", source{name: env, aadsts: "7000222"}, "the client secret has expired"},
		{"unknown application", source{name: mi, aadsts: "700016", status: 400}, "is not an application in tenant AZURE_TENANT_ID"},
		{"unknown tenant", source{aadsts: "90002"}, "tenant AZURE_TENANT_ID does not exist"},
		{"federated credential 70021", source{name: wi, aadsts: "70021"}, "the federated identity credential of AZURE_CLIENT_ID"},
		{"federated credential 700211", source{name: wi, aadsts: "700211"}, "the federated identity credential of AZURE_CLIENT_ID"},
		{"federated credential 700212", source{name: wi, aadsts: "700212"}, "the federated identity credential of AZURE_CLIENT_ID"},
		{"federated credential 700213", source{name: wi, aadsts: "700213"}, "the federated identity credential of AZURE_CLIENT_ID"},
		{"other AADSTS code", source{name: "ClientSecretCredential", aadsts: "50126"}, ""},
		{"no az", source{name: cli, text: notFound}, "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)"},
		{"az fails otherwise", source{name: cli, text: "ERROR: something"}, "check that `az account get-access-token"},
		{"no azd", source{name: azd, text: notFound}, "install the Azure Developer CLI (https://learn.microsoft.com/azure/developer/azure-developer-cli/install-azd)"},
		{"azd fails otherwise", source{name: azd, text: "something"}, "run `azd auth login`"},
		{"no PowerShell: rarely the one meant", source{name: pwsh, text: notFound}, ""},
		{"PowerShell fails otherwise", source{name: pwsh, text: "something"}, "run `Connect-AzAccount`"},
		{"user-assigned identity not assigned", source{name: mi, status: 400, text: "the requested identity isn't assigned to this resource"}, "assign the user-assigned identity AZURE_CLIENT_ID"},
		{"no system-assigned identity", source{name: mi, status: 400, text: "no system assigned identity"}, "turn on this Azure resource's system-assigned identity"},
		{"identity not assigned beats a 5xx", source{name: mi, status: 500, text: "isn't assigned to this resource"}, "assign the user-assigned identity"},
		{"identity endpoint 5xx", source{name: mi, status: 503, text: "timed out"}, "the managed identity endpoint failed; entraproxy retries"},
		{"identity endpoint refuses", source{name: mi, status: 403, text: "timed out"}, "the managed identity endpoint refused (HTTP 403). On Azure"},
		{"identity endpoint unreachable", source{name: mi, text: "dial tcp 169.254.169.254:80: connect: no route to host"}, "no managed identity endpoint answers here"},
		{"identity endpoint timed out", source{name: mi, text: "managed identity timed out"}, "no managed identity endpoint answers here"},
		{"managed identity otherwise", source{name: mi, text: "something"}, ""},
		{"workload identity unconfigured", source{name: wi, text: "no client ID specified"}, "set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE"},
		{"workload identity token file", source{name: wi, text: "failed to read token file"}, "set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE"},
		{"workload identity otherwise", source{name: wi, text: "something"}, ""},
		{"environment unconfigured", source{name: env, text: "missing environment variable AZURE_TENANT_ID"}, "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"},
		{"environment otherwise", source{name: env, text: "something"}, ""},
		{"unknown credential", source{name: "FakeCredential", text: "az login"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.src.fix()
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("fix() = %q, want one containing %q", got, tc.want)
			}
		})
	}
}
