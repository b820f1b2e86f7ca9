package doctor

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/config"
)

func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestDecodeClaims(t *testing.T) {
	c, err := decodeClaims(jwt(`{"aud":["https://cognitiveservices.azure.com/"],"exp":1700000000.5,"iat":1699996400,` +
		`"idtyp":"user","upn":"ada@example.com","scp":"user_impersonation","tid":"t","oid":"o","azp":"app"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Aud.has("https://cognitiveservices.azure.com") {
		t.Errorf("aud %v does not match the resource with its slash trimmed", c.Aud)
	}
	if want := time.Unix(1700000000, 5e8); !c.Exp.Equal(want) {
		t.Errorf("exp = %v, want %v", c.Exp.Time, want)
	}
	if got, want := c.principal(), "user, object id o, app id app, upn ada@example.com"; got != want {
		t.Errorf("principal = %q, want %q", got, want)
	}
	for _, bad := range []string{"opaque-token", "a.b", "a.!!!.c", jwt(`not json`)} {
		if _, err := decodeClaims(bad); err == nil {
			t.Errorf("decodeClaims(%q): no error", bad)
		}
	}
}

// TestClockSkew: a token issued ten minutes "in the future" says the local
// clock is behind.
func TestClockSkew(t *testing.T) {
	now := time.Unix(time.Now().Unix(), 0)
	d := &doctor{now: func() time.Time { return now.Add(-10 * time.Minute) }}
	d.cfg = mustConfig(t, "ENTRAPROXY_UPSTREAM", "https://x.cognitiveservices.azure.com")
	d.token.Token = jwt(`{"aud":"https://cognitiveservices.azure.com","iat":` + itoa(now.Unix()) + `,"nbf":` + itoa(now.Unix()) + `,"exp":` + itoa(now.Add(time.Hour).Unix()) + `}`)
	var c Check
	d.checkToken(t.Context(), &c)
	if c.Verdict != Warn || !strings.Contains(c.Summary, "issued 10m0s in the future") {
		t.Errorf("token check = %s %q, want a warning that the clock is 10m behind", c.Verdict, c.Summary)
	}
}

// Doctor's suggestions follow the upstream's cloud (internal/hosts owns
// the classification and tests it).
func TestSuggestionsFollowTheCloud(t *testing.T) {
	const rid = "/subscriptions/x/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/MySpeech"
	for _, tc := range []struct{ host, resourceID, domain, audience string }{
		{"eastus.api.cognitive.microsoft.com", rid, "https://myspeech.cognitiveservices.azure.com", "https://cognitiveservices.azure.com"},
		{"usgovvirginia.api.cognitive.microsoft.us", "", "https://NAME.cognitiveservices.azure.us", "https://cognitiveservices.azure.us"},
		{"chinaeast2.tts.speech.azure.cn", rid, "https://myspeech.cognitiveservices.azure.cn", "https://cognitiveservices.azure.cn"},
		{"myspeech.cognitiveservices.azure.us", "", "https://NAME.cognitiveservices.azure.us", "https://cognitiveservices.azure.us"},
		{"proxy.internal", "", "https://NAME.cognitiveservices.azure.com", "https://cognitiveservices.azure.com"},
	} {
		if got := customDomainFor(tc.host, tc.resourceID); got != tc.domain {
			t.Errorf("customDomainFor(%q, %q) = %q, want %q", tc.host, tc.resourceID, got, tc.domain)
		}
		if got := expectedAudience(tc.host); got != tc.audience {
			t.Errorf("expectedAudience(%q) = %q, want %q", tc.host, got, tc.audience)
		}
	}
	for host, want := range map[string]Service{
		"x.openai.azure.com":            ServiceOpenAI,
		"x.openai.azure.cn":             ServiceOpenAI,
		"x.cognitiveservices.azure.com": ServiceSpeech,
		"127.0.0.1":                     ServiceSpeech,
	} {
		if got := serviceFor(host); got != want {
			t.Errorf("serviceFor(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestScrubRemovesTokenShapes(t *testing.T) {
	tok := jwt(`{"aud":"x"}`)
	d := &doctor{secrets: []string{"a-long-inbound-key"}}
	rep := &Report{Checks: []Check{{Summary: "said " + tok, Evidence: []string{"key a-long-inbound-key"},
		Probes: []Probe{{Detail: "Bearer " + tok}}}}}
	d.scrub(rep)
	c := rep.Checks[0]
	if strings.Contains(c.Summary, "eyJ") || strings.Contains(c.Evidence[0], "a-long-inbound-key") || strings.Contains(c.Probes[0].Detail, "eyJ") {
		t.Errorf("scrubbed report still holds a secret: %+v", c)
	}
}

func mustConfig(t *testing.T, kv ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load(environ(kv...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A refused dial is recognised in the shape each operating system's net
// package returns it: Linux and macOS wrap ECONNREFUSED from connect, Windows
// wraps WSAECONNREFUSED (10061) from connectex. The Windows shape is built by
// hand because no Windows machine runs these tests.
func TestConnectionRefused(t *testing.T) {
	dial := func(syscallName string, errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError(syscallName, errno)}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"unix", dial("connect", syscall.ECONNREFUSED), true},
		{"windows", dial("connectex", syscall.Errno(10061)), true},
		{"windows_wrapped", fmt.Errorf("probe: %w", dial("connectex", syscall.Errno(10061))), true},
		{"unix_timeout", dial("connect", syscall.ETIMEDOUT), false},
		{"windows_timeout", dial("connectex", syscall.Errno(10060)), false}, // WSAETIMEDOUT
		{"not_a_dial", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := connectionRefused(tc.err); got != tc.want {
				t.Errorf("connectionRefused(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// Go reads SSL_CERT_FILE only on Unix systems other than macOS, so the fix for
// an untrusted CA names the certificate store there instead.
func TestTrustFixPerOS(t *testing.T) {
	for _, tc := range []struct{ goos, want, not string }{
		{"linux", "SSL_CERT_FILE (or SSL_CERT_DIR)", "store"},
		{"freebsd", "SSL_CERT_FILE (or SSL_CERT_DIR)", "store"},
		{"windows", `Cert:\CurrentUser\Root`, "with SSL_CERT_FILE"},
		{"darwin", "add-trusted-cert", "with SSL_CERT_FILE"},
	} {
		got := trustFix(tc.goos)
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("trustFix(%q) = %q, want it to contain %q and not %q", tc.goos, got, tc.want, tc.not)
		}
	}
}
