package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const validResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/speech1"

func environ(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(environ("ENTRAPROXY_UPSTREAM", "https://name.cognitiveservices.azure.com"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Listen", c.Listen, "127.0.0.1:8080"},
		{"AdminListen", c.AdminListen, "127.0.0.1:9090"},
		{"Credential", c.Credential, "default"},
		{"Scope", c.Scope, "https://cognitiveservices.azure.com/.default"},
		{"AuthFormat", c.AuthFormat, "auto"},
		{"ResourceID", c.ResourceID, ""},
		{"SpeechPaths", c.SpeechPaths, true},
		{"RedirectHosts", strings.Join(c.RedirectHosts, ","), "*.cognitiveservices.azure.com,*.speech.microsoft.com,*.openai.azure.com,*.cognitiveservices.azure.us,*.speech.azure.us,*.cognitiveservices.azure.cn,*.speech.azure.cn"},
		{"InboundKeys", len(c.InboundKeys), 0},
		{"AllowUnauthenticated", c.AllowUnauthenticated, false},
		{"AllowedOrigins", len(c.AllowedOrigins), 0},
		{"UpstreamTimeout", c.UpstreamTimeout, 30 * time.Second},
		{"DrainDelay", c.DrainDelay, time.Duration(0)},
		{"ShutdownTimeout", c.ShutdownTimeout, 30 * time.Second},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "auto"},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := c.UpstreamURL().String(); got != "https://name.cognitiveservices.azure.com" {
		t.Errorf("UpstreamURL = %q, want https://name.cognitiveservices.azure.com", got)
	}
}

func TestLoadValues(t *testing.T) {
	c, err := Load(environ(
		"ENTRAPROXY_UPSTREAM", "http://127.0.0.1:9999/",
		"ENTRAPROXY_AUTH_FORMAT", "aad",
		"ENTRAPROXY_RESOURCE_ID", validResourceID,
		"ENTRAPROXY_REDIRECT_HOSTS", "127.0.0.1:1234,*.example.com",
		"ENTRAPROXY_LISTEN", "0.0.0.0:8080",
		"ENTRAPROXY_INBOUND_KEYS", "k1,k2",
		"ENTRAPROXY_UPSTREAM_TIMEOUT", "2s",
		"ENTRAPROXY_ADMIN_LISTEN", "off",
		"ENTRAPROXY_SPEECH_PATHS", "false",
	))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(c.RedirectHosts, []string{"127.0.0.1:1234", "*.example.com"}) {
		t.Errorf("RedirectHosts = %q", c.RedirectHosts)
	}
	if !slices.Equal(c.InboundKeys, []string{"k1", "k2"}) {
		t.Errorf("InboundKeys has %d entries, want 2", len(c.InboundKeys))
	}
	if c.UpstreamTimeout != 2*time.Second || c.SpeechPaths || c.AdminListen != "off" {
		t.Errorf("got timeout %v speech paths %v admin %q", c.UpstreamTimeout, c.SpeechPaths, c.AdminListen)
	}
}

// Each bad value is reported with its variable's name and the value quoted.
func TestLoadReportsBadValue(t *testing.T) {
	const up = "https://name.cognitiveservices.azure.com"
	tests := []struct {
		name     string
		env      []string
		variable string
		contains string
	}{
		{"missing upstream", nil, "ENTRAPROXY_UPSTREAM", "required"},
		{"regional upstream", []string{"ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com"}, "ENTRAPROXY_UPSTREAM", `"https://eastus.api.cognitive.microsoft.com": a regional endpoint; Entra ID needs the resource's custom subdomain, https://NAME.cognitiveservices.azure.com`},
		{"regional speech upstream", []string{"ENTRAPROXY_UPSTREAM", "https://westeurope.tts.speech.microsoft.com"}, "ENTRAPROXY_UPSTREAM", "regional"},
		{"upstream without scheme", []string{"ENTRAPROXY_UPSTREAM", "name.cognitiveservices.azure.com"}, "ENTRAPROXY_UPSTREAM", "scheme"},
		{"upstream with path", []string{"ENTRAPROXY_UPSTREAM", up + "/tts"}, "ENTRAPROXY_UPSTREAM", "path"},
		{"upstream with query", []string{"ENTRAPROXY_UPSTREAM", up + "?a=b"}, "ENTRAPROXY_UPSTREAM", "query"},
		{"upstream with user", []string{"ENTRAPROXY_UPSTREAM", "https://u:p@name.cognitiveservices.azure.com"}, "ENTRAPROXY_UPSTREAM", "user info"},
		{"plain http to remote", []string{"ENTRAPROXY_UPSTREAM", "http://name.cognitiveservices.azure.com"}, "ENTRAPROXY_UPSTREAM", "loopback"},
		{"listen", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "8080"}, "ENTRAPROXY_LISTEN", "host:port"},
		{"non-loopback without keys", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "0.0.0.0:8080"}, "ENTRAPROXY_LISTEN", "ENTRAPROXY_ALLOW_UNAUTHENTICATED=true"},
		{"admin same as listen", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ADMIN_LISTEN", "127.0.0.1:8080"}, "ENTRAPROXY_ADMIN_LISTEN", "same address"},
		{"credential", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_CREDENTIAL", "az"}, "ENTRAPROXY_CREDENTIAL", "azure-cli"},
		{"auth format", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_AUTH_FORMAT", "basic"}, "ENTRAPROXY_AUTH_FORMAT", "bearer, aad or auto"},
		{"aad without resource id", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_AUTH_FORMAT", "aad"}, "ENTRAPROXY_AUTH_FORMAT", "ENTRAPROXY_RESOURCE_ID"},
		{"resource id", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_RESOURCE_ID", "/subscriptions/x/speech"}, "ENTRAPROXY_RESOURCE_ID", "/subscriptions/"},
		{"redirect host", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "https://a.example.com"}, "ENTRAPROXY_REDIRECT_HOSTS", "without scheme"},
		{"redirect wildcard inside", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "a.*.example.com"}, "ENTRAPROXY_REDIRECT_HOSTS", "leading"},
		{"origin", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "localhost:3000"}, "ENTRAPROXY_ALLOWED_ORIGINS", "http://localhost:3000"},
		{"timeout syntax", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_UPSTREAM_TIMEOUT", "30"}, "ENTRAPROXY_UPSTREAM_TIMEOUT", "not a duration"},
		{"timeout zero", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_UPSTREAM_TIMEOUT", "0s"}, "ENTRAPROXY_UPSTREAM_TIMEOUT", "more than 0"},
		{"drain negative", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_DRAIN_DELAY", "-1s"}, "ENTRAPROXY_DRAIN_DELAY", "negative"},
		{"shutdown timeout", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_SHUTDOWN_TIMEOUT", "soon"}, "ENTRAPROXY_SHUTDOWN_TIMEOUT", "not a duration"},
		{"bool", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_SPEECH_PATHS", "yes please"}, "ENTRAPROXY_SPEECH_PATHS", "true or false"},
		{"log level", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LOG_LEVEL", "trace"}, "ENTRAPROXY_LOG_LEVEL", "debug, info, warn or error"},
		{"log format", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LOG_FORMAT", "xml"}, "ENTRAPROXY_LOG_FORMAT", "auto, text or json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(environ(tc.env...))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.variable) || !strings.Contains(msg, tc.contains) {
				t.Errorf("error = %q, want it to name %s and say %q", msg, tc.variable, tc.contains)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tc.variable {
				t.Errorf("errors.As(*Error) Var = %v, want %s", ce, tc.variable)
			}
		})
	}
}

func TestLoadReportsEveryProblemTogether(t *testing.T) {
	_, err := Load(environ(
		"ENTRAPROXY_UPSTREAM", "https://eastus.api.cognitive.microsoft.com",
		"ENTRAPROXY_UPSTREAM_TIMEOUT", "abc",
		"ENTRAPROXY_LOG_LEVEL", "loud",
		"ENTRAPROXY_CREDENTIAL", "magic",
	))
	if err == nil {
		t.Fatal("Load succeeded, want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, v := range []string{"ENTRAPROXY_UPSTREAM ", "ENTRAPROXY_UPSTREAM_TIMEOUT ", "ENTRAPROXY_LOG_LEVEL ", "ENTRAPROXY_CREDENTIAL "} {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, v) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s reported %d times, want once, in:\n%s", v, n, err)
		}
	}
	if len(lines) != 4 {
		t.Errorf("got %d problems, want 4:\n%s", len(lines), err)
	}
}

func TestInboundKeysNeverQuoted(t *testing.T) {
	_, err := Load(environ("ENTRAPROXY_UPSTREAM", "https://name.cognitiveservices.azure.com", "ENTRAPROXY_INBOUND_KEYS", "supersecret,,other"))
	if err == nil || !strings.Contains(err.Error(), "ENTRAPROXY_INBOUND_KEYS") {
		t.Fatalf("error = %v, want the empty entry reported", err)
	}
	if strings.Contains(err.Error(), "supersecret") {
		t.Errorf("error %q quotes an inbound key", err)
	}
}

func TestNonLoopbackListenAllowed(t *testing.T) {
	const up = "https://name.cognitiveservices.azure.com"
	for _, e := range [][]string{
		{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "0.0.0.0:8080", "ENTRAPROXY_INBOUND_KEYS", "k"},
		{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "0.0.0.0:8080", "ENTRAPROXY_ALLOW_UNAUTHENTICATED", "true"},
		{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "[::1]:8080"},
		{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_LISTEN", "localhost:8080"},
	} {
		if _, err := Load(environ(e...)); err != nil {
			t.Errorf("Load(%q): %v", e, err)
		}
	}
}

// Settings is the source of -h and the README table: every field must have a
// variable, a help text, and a default unless it is optional and empty.
func TestSettingsDescribeEveryVariable(t *testing.T) {
	seen := make(map[string]bool)
	for _, s := range Settings() {
		if !strings.HasPrefix(s.Var, "ENTRAPROXY_") {
			t.Errorf("setting %q has no ENTRAPROXY_ name", s.Var)
		}
		if s.Help == "" {
			t.Errorf("%s has no help text", s.Var)
		}
		if seen[s.Var] {
			t.Errorf("%s listed twice", s.Var)
		}
		seen[s.Var] = true
	}
	if len(seen) != 17 {
		t.Errorf("got %d settings, want the contract's 17", len(seen))
	}
}
