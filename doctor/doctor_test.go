package doctor

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
)

const inboundKey = "inbound-key-that-must-never-be-printed"

// scenario is one scripted situation: setup starts what it needs and
// returns the options and the secrets no output may hold; check makes the
// structured assertions on the JSON a script would read.
type scenario struct {
	name  string
	setup func(t *testing.T, log *tokenLog) (Options, []string)
	check func(t *testing.T, rep Report)
}

// fakeWithMI starts a fake and points the managed identity credential at it.
func fakeWithMI(t *testing.T, s fakeazure.Settings) *fakeazure.Azure {
	fake := startFake(t, s)
	useManagedIdentity(t, fake)
	return fake
}

// miOptions are the options for the managed-identity kind against upstream.
func miOptions(log *tokenLog, kv ...string) Options {
	return Options{Getenv: environ(append([]string{"ENTRAPROXY_CREDENTIAL", "managed-identity"}, kv...)...), NewCredential: recordingNew(log)}
}

// upstreamWithMI starts an httptest upstream answering status and body to
// everything, with tokens from a fake's managed identity endpoint.
func upstreamWithMI(t *testing.T, status int, body string) (*httptest.Server, *fakeazure.Azure) {
	fake := fakeWithMI(t, fakeazure.Settings{})
	srv := httptest.NewServer(answering(status, body))
	t.Cleanup(srv.Close)
	return srv, fake
}

var scenarios = []scenario{
	{
		name: "pass",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
				"ENTRAPROXY_INBOUND_KEYS", inboundKey), []string{inboundKey, fake.IdentityHeader()}
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Pass)
			wantExit(t, rep, ExitOK)
			if p := rep.Check("auth").Probes; len(p) != 4 {
				t.Errorf("auth probes = %d, want 4 (2 forms x voices list, TTS WebSocket)", len(p))
			}
			for _, p := range rep.Check("auth").Probes {
				if want := map[string]int{"http": 200, "websocket": 101}[p.Protocol]; p.Status != want {
					t.Errorf("%s %s status = %d, want %d", p.Form, p.Name, p.Status, want)
				}
			}
			if len(rep.Summary.Settings) != 0 {
				t.Errorf("settings = %v, want none", rep.Summary.Settings)
			}
		},
	},
	{
		// Speech accepts only aad; auto reaches it after a 401, so it is a
		// warning that recommends aad.
		name: "aad_only_auto",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{Auth: fakeazure.AuthAAD})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Warn)
			wantExit(t, rep, ExitOK)
			wantSetting(t, rep, "ENTRAPROXY_AUTH_FORMAT", "aad")
			for _, p := range rep.Check("auth").Probes {
				if want := map[string]bool{"bearer": true, "aad": false}[p.Form]; (p.Status == 401) != want {
					t.Errorf("%s %s status = %d, want 401: %v", p.Form, p.Name, p.Status, want)
				}
			}
		},
	},
	{
		// The same service with ENTRAPROXY_AUTH_FORMAT=bearer fails.
		name: "aad_only_bearer_configured",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{Auth: fakeazure.AuthAAD})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
				"ENTRAPROXY_AUTH_FORMAT", "bearer"), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantExit(t, rep, ExitFailed)
			wantSetting(t, rep, "ENTRAPROXY_AUTH_FORMAT", "aad")
		},
	},
	{
		// Without a resource id only bearer can be probed; the fix is to
		// set one.
		name: "aad_only_no_resource_id",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{Auth: fakeazure.AuthAAD})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL()), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantFix(t, rep, "auth", "set ENTRAPROXY_RESOURCE_ID")
		},
	},
	{
		name: "forbidden_403",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusForbidden,
				`{"error":{"code":"PermissionDenied","message":"Principal does not have access to API/Operation."}}`)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL, "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantExit(t, rep, ExitFailed)
			wantFix(t, rep, "auth", `az role assignment create --role "Cognitive Services Speech User" --assignee-object-id `+fakeazure.ObjectID+` --scope `+fakeazure.DefaultResourceID)
			for _, p := range rep.Check("auth").Probes {
				if p.Status != 403 || p.Code != "PermissionDenied" {
					t.Errorf("%s %s = %d %q, want 403 PermissionDenied", p.Form, p.Name, p.Status, p.Code)
				}
			}
		},
	},
	{
		// Azure OpenAI says a missing role with 401 PermissionDenied.
		name: "openai_permission_denied_401",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusUnauthorized,
				`{"error":{"code":"PermissionDenied","message":"The principal `+"`"+fakeazure.ObjectID+"`"+` lacks the required data action `+"`"+`Microsoft.CognitiveServices/accounts/OpenAI/models/read`+"`"+` to perform `+"`"+`GET /openai/models`+"`"+` operation."}}`)
			o := miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL)
			o.Service = ServiceOpenAI
			return o, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			if rep.Service != ServiceOpenAI {
				t.Errorf("service = %q, want openai", rep.Service)
			}
			wantFix(t, rep, "auth", `--role "Cognitive Services OpenAI User" --assignee-object-id `+fakeazure.ObjectID)
			if p := rep.Check("auth").Probes; len(p) != 1 || p[0].Path != "/openai/models?api-version="+OpenAIAPIVersion {
				t.Errorf("probes = %+v, want one GET /openai/models", p)
			}
		},
	},
	{
		// --service openai against the fake Azure OpenAI: the probe asks
		// for a path Azure OpenAI serves (GET /openai/models), so a working
		// resource passes.
		name: "openai_pass",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{Auth: fakeazure.AuthAAD})
			o := miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL())
			o.Service = ServiceOpenAI
			return o, []string{fake.IdentityHeader()}
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Pass)
			wantExit(t, rep, ExitOK)
			if p := rep.Check("auth").Probes; len(p) != 1 || p[0].Status != http.StatusOK || p[0].Form != "bearer" {
				t.Errorf("probes = %+v, want one bearer GET /openai/models answered 200", p)
			}
		},
	},
	{
		// A 403 from the resource's firewall is not a missing role.
		name: "network_denied_403",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusForbidden,
				`{"error":{"code":"403","message":"Access denied due to Virtual Network/Firewall rules."}}`)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantFix(t, rep, "auth", "Networking settings")
			for _, f := range rep.Check("auth").Fix {
				if strings.Contains(f, "az role assignment") {
					t.Errorf("fix %q: a firewall refusal is not a missing role", f)
				}
			}
		},
	},
	{
		// The upstream accepts connections (check 4's GET / is answered)
		// but drops every probe's: the proxy's 502 upstream_unreachable.
		name: "upstream_drops_requests",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fakeWithMI(t, fakeazure.Settings{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/" {
					w.WriteHeader(http.StatusNotFound)
					return
				}
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					conn.Close()
				}
			}))
			t.Cleanup(srv.Close)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			for _, p := range rep.Check("auth").Probes {
				if p.Code != "upstream_unreachable" {
					t.Errorf("%s %s = %d %q, want upstream_unreachable", p.Form, p.Name, p.Status, p.Code)
				}
			}
			wantFix(t, rep, "auth", "see check 4")
		},
	},
	{
		// A 500 is none of the known causes: Azure's side.
		name: "server_error_500",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusInternalServerError, `{"error":{"code":"InternalServerError","message":"An internal server error occurred."}}`)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantFix(t, rep, "auth", "a 5xx is Azure's side")
		},
	},
	{
		// --service openai on an AI Services host with
		// ENTRAPROXY_AUTH_FORMAT=aad (config refuses aad only with an Azure
		// OpenAI host): the OpenAI probe is bearer, which works.
		name: "aad_configured_openai_service",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{})
			o := miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_AUTH_FORMAT", "aad", "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID)
			o.Service = ServiceOpenAI
			return o, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantSetting(t, rep, "ENTRAPROXY_AUTH_FORMAT", "bearer")
		},
	},
	{
		name: "not_found_404",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusNotFound, `{"error":{"code":"404","message":"Resource not found"}}`)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			wantFix(t, rep, "auth", "custom domain of the Speech (or AI Services) resource")
			wantFix(t, rep, "auth", "--service openai")
		},
	},
	{
		name: "throttled_429",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			srv, _ := upstreamWithMI(t, http.StatusTooManyRequests, `{"error":{"code":"429","message":"Rate limit is exceeded. Try again in 1 seconds."}}`)
			return miOptions(log, "ENTRAPROXY_UPSTREAM", srv.URL), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Warn)
			wantExit(t, rep, ExitOK)
			if s := rep.Summary.Verdict; s != Warn {
				t.Errorf("summary verdict = %s, want warn", s)
			}
		},
	},
	{
		name: "expired_token",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := startFake(t, fakeazure.Settings{})
			tok := fake.IssueExpired()
			log.add(tok)
			return Options{
				Getenv:        environ("ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_CREDENTIAL", "azure-cli"),
				NewCredential: staticNew(tok, time.Now().Add(-time.Minute)),
			}, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Fail, Pass, Fail)
			wantFix(t, rep, "token", "expired token")
			wantFix(t, rep, "auth", "fix the token first (check 3)")
			for _, p := range rep.Check("auth").Probes {
				if p.Status != 401 || !strings.Contains(p.Detail, "expired") {
					t.Errorf("%s %s = %d %q, want 401 saying expired", p.Form, p.Name, p.Status, p.Detail)
				}
			}
		},
	},
	{
		name: "wrong_audience",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_SCOPE", "https://management.azure.com/.default"), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Fail, Pass, Fail)
			wantSetting(t, rep, "ENTRAPROXY_SCOPE", "https://cognitiveservices.azure.com/.default")
			if p := rep.Check("auth").Probes; len(p) == 0 || !strings.Contains(p[0].Detail, "wrong audience") {
				t.Errorf("probes = %+v, want the upstream's wrong-audience refusal", p)
			}
		},
	},
	{
		name: "tls_untrusted",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := startFake(t, fakeazure.Settings{})
			tok := fake.Issue()
			log.add(tok)
			srv := httptest.NewTLSServer(answering(http.StatusOK, `[]`))
			t.Cleanup(srv.Close)
			return Options{
				Getenv:        environ("ENTRAPROXY_UPSTREAM", srv.URL, "ENTRAPROXY_CREDENTIAL", "azure-cli"),
				NewCredential: staticNew(tok, time.Now().Add(time.Hour)),
			}, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Fail, Skip)
			wantFix(t, rep, "upstream", "SSL_CERT_FILE")
		},
	},
	{
		name: "dns_failure",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := startFake(t, fakeazure.Settings{})
			tok := fake.Issue()
			log.add(tok)
			return Options{
				Getenv:        environ("ENTRAPROXY_UPSTREAM", "https://entraproxy-doctor-test.invalid", "ENTRAPROXY_CREDENTIAL", "azure-cli"),
				NewCredential: staticNew(tok, time.Now().Add(time.Hour)),
			}, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Fail, Skip)
			wantFix(t, rep, "upstream", "properties.endpoint")
		},
	},
	{
		name: "connection_refused",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", "http://"+closedPort(t)), []string{fake.IdentityHeader()}
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Fail, Skip)
			wantFix(t, rep, "upstream", "nothing accepts connections")
		},
	},
	{
		// The TTS handshake is redirected to the regional host, which the
		// default ENTRAPROXY_REDIRECT_HOSTS does not allow.
		name: "redirect_disallowed",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{Redirect: true})
			t.Cleanup(func() {
				if n := fake.Rejections()[fakeazure.ReasonNoCustomDomain]; n != 0 {
					t.Errorf("the regional host saw %d requests; a disallowed redirect must not be followed", n)
				}
			})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL()), nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Pass, Pass, Pass, Fail)
			var ws Probe
			for _, p := range rep.Check("auth").Probes {
				if p.Protocol == "websocket" {
					ws = p
				}
			}
			if ws.Status != http.StatusBadGateway || ws.Code != "redirect_not_allowed" {
				t.Errorf("WebSocket probe = %d %q, want 502 redirect_not_allowed", ws.Status, ws.Code)
			}
			var got string
			for _, s := range rep.Summary.Settings {
				if s.Var == "ENTRAPROXY_REDIRECT_HOSTS" {
					got = s.Value
				}
			}
			if !strings.HasPrefix(got, "*.cognitiveservices.azure.com,") || !strings.Contains(got, ",127.0.0.1:") {
				t.Errorf("ENTRAPROXY_REDIRECT_HOSTS = %q, want the defaults plus the regional host", got)
			}
		},
	},
	{
		name: "settings_invalid",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			return Options{Getenv: environ(
				"ENTRAPROXY_UPSTREAM", "https://westeurope.api.cognitive.microsoft.com",
				"ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID,
				"ENTRAPROXY_INBOUND_KEYS", inboundKey+",",
			)}, []string{inboundKey}
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Fail, Skip, Skip, Skip, Skip)
			wantExit(t, rep, ExitSettings)
			wantSetting(t, rep, "ENTRAPROXY_UPSTREAM", "https://fake-speech.cognitiveservices.azure.com")
		},
	},
	{
		// DefaultAzureCredential narrowed to the CLIs, none installed: each
		// source's message, one line each.
		name: "credential_unavailable",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			t.Setenv("AZURE_TOKEN_CREDENTIALS", "dev")
			t.Setenv("PATH", t.TempDir())
			fake := startFake(t, fakeazure.Settings{})
			return Options{Getenv: environ("ENTRAPROXY_UPSTREAM", fake.URL()), NewCredential: recordingNew(log)}, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Fail, Skip, Pass, Skip)
			ev := rep.Check("credential").Evidence
			if !slices.Contains(ev, "tried AzureCLICredential: executable not found on path") {
				t.Errorf("credential evidence = %q, want a line for AzureCLICredential", ev)
			}
			wantFix(t, rep, "credential", "install the Azure CLI")
		},
	},
	{
		// A mistyped setting beside valid ones: it works, on the default,
		// and doctor says which variable was meant.
		name: "typo",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			fake := fakeWithMI(t, fakeazure.Settings{})
			o := miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID)
			o.Environ = []string{"ENTRAPROXY_UPSTREAM=" + fake.URL(), "ENTRAPROXY_LISTN=127.0.0.1:8081", "PATH=/usr/bin",
				"ENTRAPROXY_RESOURCE_ID=" + fakeazure.DefaultResourceID, "ENTRAPROXY_RESOURCEID=" + fakeazure.DefaultResourceID}
			return o, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Warn, Pass, Pass, Pass, Pass)
			wantExit(t, rep, ExitOK)
			wantFix(t, rep, "config", "rename ENTRAPROXY_LISTN to ENTRAPROXY_LISTEN (until then ENTRAPROXY_LISTEN is at its default)")
			// The look-alike of a setting that is set: no claim that the
			// setting is at its default.
			wantFix(t, rep, "config", "remove ENTRAPROXY_RESOURCEID: ENTRAPROXY_RESOURCE_ID is set as well, and only it is read")
			for _, f := range rep.Check("config").Fix {
				if strings.Contains(f, "ENTRAPROXY_RESOURCE_ID is at its default") {
					t.Errorf("fix %q: ENTRAPROXY_RESOURCE_ID is set", f)
				}
			}
		},
	},
	{
		// ENTRAPROXY_UPSTREM instead of ENTRAPROXY_UPSTREAM: the required
		// setting's problem names the look-alike.
		name: "upstream_typo",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			o := Options{Getenv: environ(), Environ: []string{"ENTRAPROXY_UPSTREM=https://name.cognitiveservices.azure.com"}}
			return o, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Fail, Skip, Skip, Skip, Skip)
			wantExit(t, rep, ExitSettings)
			wantFix(t, rep, "config", "ENTRAPROXY_UPSTREM is set: did you mean ENTRAPROXY_UPSTREAM?")
		},
	},
	{
		// ENTRAPROXY_CREDENTIAL=azure-cli and no az on the PATH: install
		// it, not "az login".
		name: "azure_cli_not_installed",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			t.Setenv("PATH", t.TempDir())
			fake := startFake(t, fakeazure.Settings{})
			return Options{Getenv: environ("ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_CREDENTIAL", "azure-cli"), NewCredential: recordingNew(log)}, nil
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Fail, Skip, Pass, Skip)
			wantFix(t, rep, "credential", "install the Azure CLI")
			for _, f := range rep.Check("credential").Fix {
				if strings.HasPrefix(f, "run `az login`") {
					t.Errorf("fix %q: az is not installed, so az login cannot be the fix", f)
				}
			}
		},
	},
	{
		// A token endpoint answering 500 with a JWT and an access_token
		// in its body: the report says 500, never the body's secrets.
		name: "token_endpoint_500",
		setup: func(t *testing.T, log *tokenLog) (Options, []string) {
			broken := httptest.NewServer(fakeazure.BrokenTokenEndpoint())
			t.Cleanup(broken.Close)
			t.Setenv("IDENTITY_ENDPOINT", broken.URL+"/msi/token")
			t.Setenv("IDENTITY_HEADER", "identity-header-of-the-broken-endpoint")
			fake := startFake(t, fakeazure.Settings{})
			return miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL()),
				[]string{fakeazure.BrokenJWT, fakeazure.BrokenToken, "identity-header-of-the-broken-endpoint"}
		},
		check: func(t *testing.T, rep Report) {
			wantVerdicts(t, rep, Pass, Fail, Skip, Pass, Skip)
			if ev := rep.Check("credential").Evidence; len(ev) != 1 || !strings.Contains(ev[0], "HTTP 500") {
				t.Errorf("credential evidence = %q, want one line with the status", ev)
			}
		},
	},
}

func TestScenarios(t *testing.T) {
	// shown collects the answer rules and causes each golden file shows
	// (rules.go): every rule must be pinned by one.
	shown := map[string]bool{}
	ran := 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ran++
			log := &tokenLog{}
			opts, secrets := sc.setup(t, log)
			out := runDoctor(t, opts)
			sc.check(t, out.decoded)
			assertNoSecrets(t, out, append(secrets, log.all()...)...)
			golden(t, sc.name, out.text)
			for _, c := range out.decoded.Checks {
				if (c.Verdict == Warn || c.Verdict == Fail) && len(c.Fix) == 0 {
					t.Errorf("check %s is %s without a fix", c.Name, c.Verdict)
				}
			}
			if auth := out.rep.Check("auth"); auth != nil {
				for _, p := range auth.Probes {
					shown["rule "+p.rule] = true
					shown["cause "+p.cause.String()] = true
				}
			}
		})
	}
	if ran < len(scenarios) {
		return // a -run filter chose some; the rule check needs them all
	}
	var want []string
	for _, r := range answerRules() {
		want = append(want, "rule "+r.name)
	}
	for k := causeRedirect; k <= causeOther; k++ {
		want = append(want, "cause "+k.String())
	}
	for _, w := range want {
		if !shown[w] {
			t.Errorf("no golden scenario shows %s", w)
		}
	}
}

// TestDefaultCredentialNamesItsSource runs the default kind through the
// real DefaultAzureCredential with azidentity's log observed, as the
// command does.
func TestDefaultCredentialNamesItsSource(t *testing.T) {
	fake := fakeWithMI(t, fakeazure.Settings{})
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
	out := runDoctor(t, Options{Getenv: environ("ENTRAPROXY_UPSTREAM", fake.URL()), ObserveAzureLog: true})
	c := out.decoded.Check("credential")
	if c.Verdict != Pass || !strings.HasPrefix(c.Summary, "ManagedIdentityCredential gave a token") ||
		!slices.Contains(c.Evidence, "DefaultAzureCredential authenticated with ManagedIdentityCredential") {
		t.Errorf("credential check = %s %q %q, want a pass naming ManagedIdentityCredential", c.Verdict, c.Summary, c.Evidence)
	}
	assertNoSecrets(t, out, fake.IdentityHeader())
}

// TestRedirectAllowed: with the regional host allowed, the proxy follows
// the redirect and the handshake succeeds there.
func TestRedirectAllowed(t *testing.T) {
	log := &tokenLog{}
	fake := fakeWithMI(t, fakeazure.Settings{Redirect: true})
	out := runDoctor(t, miOptions(log, "ENTRAPROXY_UPSTREAM", fake.URL(), "ENTRAPROXY_REDIRECT_HOSTS", fake.RegionalHost()))
	wantVerdicts(t, out.decoded, Pass, Pass, Pass, Pass, Pass)
	var regional int
	for _, r := range fake.Requests() {
		if r.Listener == "regional" && r.Status == http.StatusSwitchingProtocols {
			regional++
		}
	}
	if regional != 1 {
		t.Errorf("handshakes accepted on the regional host = %d, want 1", regional)
	}
	assertNoSecrets(t, out, log.all()...)
}

// TestProbesAreBounded: an upstream that accepts connections and never
// answers costs one probe timeout, not one per probe: every probe ends at
// the timeout with the proxy's 504, and all of them are in flight at the
// upstream at once (so doctor waits for one timeout, not one after another;
// the upstream counts this, no clock measures it).
//
// The timeout must also be long enough for what does answer (check 4's
// GET /, and each probe reaching the upstream before the first times out);
// on a machine too busy for a short one the test tries a longer one, so the
// verdict never depends on the machine's speed.
func TestProbesAreBounded(t *testing.T) {
	fake := startFake(t, fakeazure.Settings{})
	for _, timeout := range []time.Duration{300 * time.Millisecond, time.Second, 4 * time.Second, 15 * time.Second} {
		var (
			mu               sync.Mutex
			inFlight, atOnce int
		)
		hang := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				return // check 4's GET / answers; the probes hang
			}
			mu.Lock()
			inFlight++
			atOnce = max(atOnce, inFlight)
			mu.Unlock()
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
		}))
		out := runDoctor(t, Options{
			Getenv:        environ("ENTRAPROXY_UPSTREAM", srv.URL, "ENTRAPROXY_RESOURCE_ID", fakeazure.DefaultResourceID),
			NewCredential: staticNew(fake.Issue(), time.Now().Add(time.Hour)),
			ProbeTimeout:  timeout,
		})
		close(hang)
		srv.Close()
		mu.Lock()
		most := atOnce
		mu.Unlock()

		c := out.decoded.Check("auth")
		timedOut := 0
		for _, p := range c.Probes {
			// The app sees a refused WebSocket handshake as 502 with the
			// upstream_timeout code (proxy.handshakeAnswer); REST as 504.
			want := http.StatusGatewayTimeout
			if strings.Contains(p.Name, "WebSocket") {
				want = http.StatusBadGateway
			}
			if p.Status == want && p.Code == "upstream_timeout" {
				timedOut++
			}
		}
		if c.Verdict == Skip || most < len(c.Probes) || timedOut < len(c.Probes) {
			t.Logf("probe timeout %v: auth %s, %d of %d probes at the upstream at once, %d timed out (504, or 502 on a handshake); the machine was too slow for this timeout, trying a longer one",
				timeout, c.Verdict, most, len(c.Probes), timedOut)
			continue
		}
		if c.Verdict != Fail || !strings.Contains(c.Summary, "could not reach the upstream") {
			t.Errorf("auth = %s %q, want a failure saying the upstream was not reached", c.Verdict, c.Summary)
		}
		return
	}
	t.Errorf("with every probe timeout tried, the probes were never all in flight at once and all timed out: probes run one after another, or are not bounded")
}

func TestBadService(t *testing.T) {
	if _, err := Run(t.Context(), Options{Service: "vision", Getenv: environ()}); err == nil {
		t.Error("Run with service vision: no error, want one")
	}
}

func wantVerdicts(t *testing.T, rep Report, want ...Verdict) {
	t.Helper()
	var got []Verdict
	for _, c := range rep.Checks {
		got = append(got, c.Verdict)
	}
	if !slices.Equal(got, want) {
		var why []string
		for _, c := range rep.Checks {
			why = append(why, c.Name+": "+c.Summary)
		}
		t.Errorf("verdicts = %v, want %v\n%s", got, want, strings.Join(why, "\n"))
	}
}

func wantExit(t *testing.T, rep Report, want int) {
	t.Helper()
	if rep.Summary.ExitCode != want {
		t.Errorf("exit code = %d, want %d", rep.Summary.ExitCode, want)
	}
}

func wantSetting(t *testing.T, rep Report, variable, value string) {
	t.Helper()
	for _, s := range rep.Summary.Settings {
		if s.Var == variable {
			if s.Value != value {
				t.Errorf("setting %s = %q, want %q", variable, s.Value, value)
			}
			return
		}
	}
	t.Errorf("settings = %+v, want %s=%s", rep.Summary.Settings, variable, value)
}

func wantFix(t *testing.T, rep Report, check, substr string) {
	t.Helper()
	c := rep.Check(check)
	for _, f := range c.Fix {
		if strings.Contains(f, substr) {
			return
		}
	}
	t.Errorf("check %s fixes = %q, want one containing %q", check, c.Fix, substr)
}
