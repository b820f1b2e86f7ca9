package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
	"github.com/entraproxy/entraproxy/internal/testport"
	"github.com/entraproxy/entraproxy/tokens"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// tokenLifetime is below the 5 minutes for which azidentity's managed
// identity credential (MSAL) serves a token from its process-wide cache, so
// that no test sees a token another test's fake issued.
const tokenLifetime = 4 * time.Minute

func environ(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func startFake(t *testing.T, s fakeazure.Settings) *fakeazure.Azure {
	t.Helper()
	if s.TokenLifetime == 0 {
		s.TokenLifetime = tokenLifetime
	}
	fake, err := fakeazure.Start(fakeazure.Options{Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake
}

// useManagedIdentity points azidentity's managed identity credential,
// which reads only the process environment, at fake.
func useManagedIdentity(t *testing.T, fake *fakeazure.Azure) {
	t.Setenv("IDENTITY_ENDPOINT", fake.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", fake.IdentityHeader())
}

// tokenLog collects every token a test's credentials handed out, so the
// outputs can be scanned for them.
type tokenLog struct {
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) add(tok string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, tok)
}

func (l *tokenLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

// recording wraps the real credential and logs its tokens.
type recording struct {
	inner azcore.TokenCredential
	log   *tokenLog
}

func (r recording) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := r.inner.GetToken(ctx, o)
	if err == nil {
		r.log.add(tok.Token)
	}
	return tok, err
}

func (r recording) CredentialName() string { return r.inner.(tokens.Named).CredentialName() }

// recordingNew is an Options.NewCredential that builds the real credential
// with tokens.NewCredential and records its tokens.
func recordingNew(log *tokenLog) func(string, tokens.CredentialOptions) (azcore.TokenCredential, error) {
	return func(kind string, o tokens.CredentialOptions) (azcore.TokenCredential, error) {
		c, err := tokens.NewCredential(kind, o)
		if err != nil {
			return nil, err
		}
		return recording{inner: c, log: log}, nil
	}
}

// staticCredential hands out one token, for tests that need a token the
// identity endpoint would not issue (expired) or no identity endpoint.
type staticCredential struct{ tok azcore.AccessToken }

func (s staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return s.tok, nil
}

func (staticCredential) CredentialName() string { return "StaticTestCredential" }

func staticNew(tok string, expires time.Time) func(string, tokens.CredentialOptions) (azcore.TokenCredential, error) {
	return func(string, tokens.CredentialOptions) (azcore.TokenCredential, error) {
		return staticCredential{azcore.AccessToken{Token: tok, ExpiresOn: expires}}, nil
	}
}

// noProxy keeps a stray HTTPS_PROXY in the test environment out of the
// results.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// outputs is one run rendered both ways.
type outputs struct {
	rep  *Report
	text string
	json []byte
	// decoded is the JSON read back, as a script would.
	decoded Report
}

func runDoctor(t *testing.T, opts Options) outputs {
	t.Helper()
	if opts.Proxy == nil {
		opts.Proxy = noProxy
	}
	if opts.ProbeTimeout == 0 {
		// The fakes answer (or refuse) at once, so the verdicts never
		// wait for a timeout; the default 3s could be reached by a
		// loaded machine, and turn a pass into an unreachable upstream.
		opts.ProbeTimeout = leakcheck.HangGuard
	}
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, rep, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	out := outputs{rep: rep, text: text.String(), json: js.Bytes()}
	if err := json.Unmarshal(out.json, &out.decoded); err != nil {
		t.Fatalf("the JSON report does not parse: %v\n%s", err, out.json)
	}
	return out
}

// assertNoSecrets fails when any output holds a secret, or any of its last
// 16 characters (a token's signature end), or anything JWT-shaped.
func assertNoSecrets(t *testing.T, out outputs, secrets ...string) {
	t.Helper()
	for name, s := range map[string]string{"text": out.text, "json": string(out.json)} {
		for _, secret := range secrets {
			if secret == "" {
				continue
			}
			if strings.Contains(s, secret) || (len(secret) > 40 && strings.Contains(s, secret[len(secret)-16:])) {
				t.Errorf("the %s output holds a secret (%.6s…)", name, secret)
			}
		}
		if strings.Contains(s, "eyJ") {
			t.Errorf("the %s output holds something JWT-shaped:\n%s", name, s)
		}
	}
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "TIME"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|us|ms|s)\b`), "DUR"},
	// The resolver's address, when the message names one, is the machine's.
	{regexp.MustCompile(`lookup ([a-z.-]+)( on [^:]+:\d+)?: `), "lookup $1: "},
}

// normalize makes a text report stable: times, ports and durations vary.
func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got = normalize(got)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./doctor -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("text output differs from %s (go test ./doctor -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// closedPort is a loopback address nothing listens on: a held port, which
// no other test or process can be given (a closed listener's port could be,
// and would answer).
func closedPort(t *testing.T) string {
	t.Helper()
	return testport.Reserve(t).Addr()
}

// answering is an upstream that answers every request, WebSocket upgrades
// included, with status and body, like an Azure front door refusing.
func answering(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
}
