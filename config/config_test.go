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
		{"AllowedHosts", len(c.AllowedHosts), 0},
		{"UpstreamTimeout", c.UpstreamTimeout, 30 * time.Second},
		{"ResponseTimeout", c.ResponseTimeout, 10 * time.Minute},
		{"RewriteBodyURLs", c.RewriteBodyURLs, true},
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
		"ENTRAPROXY_RESPONSE_TIMEOUT", "0",
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
	if c.UpstreamTimeout != 2*time.Second || c.ResponseTimeout != 0 || c.SpeechPaths || c.AdminListen != "off" {
		t.Errorf("got timeouts %v and %v, speech paths %v, admin %q", c.UpstreamTimeout, c.ResponseTimeout, c.SpeechPaths, c.AdminListen)
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
		{"aad to Azure OpenAI", []string{"ENTRAPROXY_UPSTREAM", "https://myaoai.openai.azure.com", "ENTRAPROXY_AUTH_FORMAT", "aad", "ENTRAPROXY_RESOURCE_ID", validResourceID},
			"ENTRAPROXY_AUTH_FORMAT", `"aad": the aad form is Speech's, and Azure OpenAI (myaoai.openai.azure.com) refuses it; set ENTRAPROXY_AUTH_FORMAT=bearer`},
		{"aad to Azure OpenAI in Azure Government", []string{"ENTRAPROXY_UPSTREAM", "https://gov.openai.azure.us:443", "ENTRAPROXY_AUTH_FORMAT", "aad", "ENTRAPROXY_RESOURCE_ID", validResourceID},
			"ENTRAPROXY_AUTH_FORMAT", "Azure OpenAI (gov.openai.azure.us)"},
		{"redirect host", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "https://a.example.com"}, "ENTRAPROXY_REDIRECT_HOSTS", "without scheme"},
		{"redirect wildcard inside", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "a.*.example.com"}, "ENTRAPROXY_REDIRECT_HOSTS", "leading"},
		{"redirect wildcard over a top-level domain", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "*.com"}, "ENTRAPROXY_REDIRECT_HOSTS", `"*.com": a wildcard needs a domain of at least two labels`},
		{"redirect wildcard with port", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "*.x.com:443"}, "ENTRAPROXY_REDIRECT_HOSTS", `"*.x.com:443": a wildcard pattern matches any port; drop :443`},
		{"redirect none among hosts", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "none,*.x.com"}, "ENTRAPROXY_REDIRECT_HOSTS", "must be the only entry"},
		{"regional upstream US Government", []string{"ENTRAPROXY_UPSTREAM", "https://usgovvirginia.api.cognitive.microsoft.us"}, "ENTRAPROXY_UPSTREAM", "a regional endpoint; Entra ID needs the resource's custom subdomain, https://NAME.cognitiveservices.azure.us"},
		{"regional speech upstream China", []string{"ENTRAPROXY_UPSTREAM", "https://chinaeast2.tts.speech.azure.cn"}, "ENTRAPROXY_UPSTREAM", "https://NAME.cognitiveservices.azure.cn"},
		{"origin", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "localhost:3000"}, "ENTRAPROXY_ALLOWED_ORIGINS", "http://localhost:3000"},
		{"origin with a path", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "http://localhost:3000, https://a.example/app"}, "ENTRAPROXY_ALLOWED_ORIGINS", `"https://a.example/app": want an origin`},
		{"allowed host with scheme", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_HOSTS", "localhost,http://proxy.internal"}, "ENTRAPROXY_ALLOWED_HOSTS", `"http://proxy.internal": want a host, *.domain or host:port`},
		{"allowed host empty entry", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_HOSTS", "localhost,,proxy.internal"}, "ENTRAPROXY_ALLOWED_HOSTS", "empty entry"},
		{"allowed host star", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_HOSTS", "*"}, "ENTRAPROXY_ALLOWED_HOSTS", `"*": * is allowed only as a leading *. label`},
		{"allowed host wildcard over a top-level domain", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_HOSTS", "*.local"}, "ENTRAPROXY_ALLOWED_HOSTS", "at least two labels"},
		{"allowed host port out of range", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_HOSTS", "localhost:99999"}, "ENTRAPROXY_ALLOWED_HOSTS", `"localhost:99999": bad port; want a number from 0 to 65535`},
		{"redirect host port not a number", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_REDIRECT_HOSTS", "login.example.com:https"}, "ENTRAPROXY_REDIRECT_HOSTS", `"login.example.com:https": bad port`},
		{"upstream port out of range", []string{"ENTRAPROXY_UPSTREAM", up + ":99999"}, "ENTRAPROXY_UPSTREAM", `:99999": bad port 99999; want a number from 1 to 65535, or none for 443`},
		{"upstream port zero", []string{"ENTRAPROXY_UPSTREAM", up + ":0"}, "ENTRAPROXY_UPSTREAM", "bad port 0"},
		// Origins that no browser could send, so they would never match.
		{"origin wildcard", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "http://*.example.com"}, "ENTRAPROXY_ALLOWED_ORIGINS",
			`"http://*.example.com": a browser sends one exact origin and * matches nothing; list each origin`},
		{"origin port out of range", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "https://a.b:99999"}, "ENTRAPROXY_ALLOWED_ORIGINS", `"https://a.b:99999": bad port 99999; want a number from 1 to 65535`},
		{"origin port zero", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "http://localhost:0"}, "ENTRAPROXY_ALLOWED_ORIGINS", "bad port 0"},
		{"origin scheme", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "ws://localhost:3000"}, "ENTRAPROXY_ALLOWED_ORIGINS", `"ws://localhost:3000": the scheme must be http or https`},
		{"origin query", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "https://a.example?x=1"}, "ENTRAPROXY_ALLOWED_ORIGINS", `"https://a.example?x=1": want an origin`},
		{"origin empty host", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "http://:3000"}, "ENTRAPROXY_ALLOWED_ORIGINS", `"http://:3000": want an origin`},
		{"origin user info", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_ALLOWED_ORIGINS", "https://me@a.example"}, "ENTRAPROXY_ALLOWED_ORIGINS", `want an origin`},
		{"inbound key only spaces", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_INBOUND_KEYS", "k1, ,k2"}, "ENTRAPROXY_INBOUND_KEYS", "entry 2 is empty"},
		{"timeout syntax", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_UPSTREAM_TIMEOUT", "30"}, "ENTRAPROXY_UPSTREAM_TIMEOUT", "not a duration"},
		{"timeout zero", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_UPSTREAM_TIMEOUT", "0s"}, "ENTRAPROXY_UPSTREAM_TIMEOUT", "more than 0"},
		{"timeout zero quoted as written", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_UPSTREAM_TIMEOUT", "0"}, "ENTRAPROXY_UPSTREAM_TIMEOUT", `"0": must be more than 0`},
		{"response timeout negative", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_RESPONSE_TIMEOUT", "-1m"}, "ENTRAPROXY_RESPONSE_TIMEOUT", `"-1m": must not be negative; 0 means no limit`},
		{"response timeout syntax", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_RESPONSE_TIMEOUT", "10"}, "ENTRAPROXY_RESPONSE_TIMEOUT", "not a duration"},
		{"drain negative quoted as written", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_DRAIN_DELAY", "-1500ms"}, "ENTRAPROXY_DRAIN_DELAY", `"-1500ms": must not be negative`},
		{"shutdown zero quoted as written", []string{"ENTRAPROXY_UPSTREAM", up, "ENTRAPROXY_SHUTDOWN_TIMEOUT", "0m"}, "ENTRAPROXY_SHUTDOWN_TIMEOUT", `"0m": must be more than 0`},
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

// The aad form is refused only where it would reach Azure OpenAI; bearer
// and auto (which never retries OpenAI with aad) are fine there, and aad is
// fine for Speech.
func TestAuthFormatsForAzureOpenAI(t *testing.T) {
	for _, e := range [][]string{
		{"ENTRAPROXY_UPSTREAM", "https://myaoai.openai.azure.com", "ENTRAPROXY_AUTH_FORMAT", "bearer"},
		{"ENTRAPROXY_UPSTREAM", "https://myaoai.openai.azure.com", "ENTRAPROXY_AUTH_FORMAT", "auto", "ENTRAPROXY_RESOURCE_ID", validResourceID},
		{"ENTRAPROXY_UPSTREAM", "https://myspeech.cognitiveservices.azure.com", "ENTRAPROXY_AUTH_FORMAT", "aad", "ENTRAPROXY_RESOURCE_ID", validResourceID},
	} {
		if _, err := Load(environ(e...)); err != nil {
			t.Errorf("Load(%q): %v", e, err)
		}
	}
	// An invalid upstream is reported once, as itself, not again as aad.
	_, err := Load(environ("ENTRAPROXY_UPSTREAM", "https://myaoai.openai.azure.com/openai", "ENTRAPROXY_AUTH_FORMAT", "aad", "ENTRAPROXY_RESOURCE_ID", validResourceID))
	if err == nil || strings.Contains(err.Error(), "ENTRAPROXY_AUTH_FORMAT") {
		t.Errorf("error = %v, want ENTRAPROXY_UPSTREAM's path only", err)
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
	if len(seen) != 22 {
		t.Errorf("got %d settings, want the README's 22", len(seen))
	}
}

// List entries are trimmed ("k1, k2"), and origins take the form browsers
// send in the Origin header, which the proxy compares them with.
func TestLoadNormalizesLists(t *testing.T) {
	const up = "https://name.cognitiveservices.azure.com"
	tests := []struct {
		name, variable, value string
		get                   func(*Config) []string
		want                  []string
	}{
		{"inbound keys after a comma and space", "ENTRAPROXY_INBOUND_KEYS", "k1, k2", func(c *Config) []string { return c.InboundKeys }, []string{"k1", "k2"}},
		{"inbound keys padded", "ENTRAPROXY_INBOUND_KEYS", " k1 ,\tk2 ", func(c *Config) []string { return c.InboundKeys }, []string{"k1", "k2"}},
		{"redirect hosts padded", "ENTRAPROXY_REDIRECT_HOSTS", "*.a.example.com, b.example:8443 ", func(c *Config) []string { return c.RedirectHosts }, []string{"*.a.example.com", "b.example:8443"}},
		{"redirect hosts none", "ENTRAPROXY_REDIRECT_HOSTS", "none", func(c *Config) []string { return c.RedirectHosts }, []string{}},
		{"redirect hosts none padded, any case", "ENTRAPROXY_REDIRECT_HOSTS", " None ", func(c *Config) []string { return c.RedirectHosts }, []string{}},
		{"allowed hosts padded", "ENTRAPROXY_ALLOWED_HOSTS", " proxy.internal , *.svc.cluster.local,[::1]:8080", func(c *Config) []string { return c.AllowedHosts }, []string{"proxy.internal", "*.svc.cluster.local", "[::1]:8080"}},
		{"origin upper case with slash", "ENTRAPROXY_ALLOWED_ORIGINS", "http://LocalHost:3000/", func(c *Config) []string { return c.AllowedOrigins }, []string{"http://localhost:3000"}},
		{"origins padded", "ENTRAPROXY_ALLOWED_ORIGINS", "http://localhost:3000, https://app.example", func(c *Config) []string { return c.AllowedOrigins }, []string{"http://localhost:3000", "https://app.example"}},
		{"origin default ports dropped", "ENTRAPROXY_ALLOWED_ORIGINS", "HTTPS://A.example:443,http://b.example:80,http://[::1]:80", func(c *Config) []string { return c.AllowedOrigins }, []string{"https://a.example", "http://b.example", "http://[::1]"}},
		{"origin other ports kept", "ENTRAPROXY_ALLOWED_ORIGINS", "https://a.example:80,http://b.example:443,http://[::1]:3000", func(c *Config) []string { return c.AllowedOrigins }, []string{"https://a.example:80", "http://b.example:443", "http://[::1]:3000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(environ("ENTRAPROXY_UPSTREAM", up, tc.variable, tc.value))
			if err != nil {
				t.Fatalf("Load(%s=%q): %v", tc.variable, tc.value, err)
			}
			got := tc.get(c)
			if !slices.Equal(got, tc.want) || got == nil {
				t.Errorf("%s=%q gave %q, want %q", tc.variable, tc.value, got, tc.want)
			}
		})
	}
}

// ENTRAPROXY_UPSTREAM with user info is refused without quoting the secret,
// whether it sits in the password or the user name, and whether or not the
// URL parses.
func TestUpstreamUserInfoNeverQuoted(t *testing.T) {
	for _, tc := range []struct {
		value, want string
	}{
		{"https://user:SECRET@name.cognitiveservices.azure.com", `"https://REDACTED@name.cognitiveservices.azure.com": must not contain user info`},
		{"https://SECRET@name.cognitiveservices.azure.com/", `"https://REDACTED@name.cognitiveservices.azure.com/": must not contain user info`},
		{"https://user:SE CRET@name.cognitiveservices.azure.com", `"https://REDACTED@name.cognitiveservices.azure.com": want https://`},
		{"user:SECRET@name.cognitiveservices.azure.com", `"REDACTED@name.cognitiveservices.azure.com": want https://`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			_, err := Load(environ("ENTRAPROXY_UPSTREAM", tc.value))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "SE CRET") {
				t.Errorf("error = %q, quotes the user info", err)
			}
			if !strings.Contains(err.Error(), "ENTRAPROXY_UPSTREAM "+tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, "ENTRAPROXY_UPSTREAM "+tc.want)
			}
		})
	}
}

// A query or fragment of ENTRAPROXY_UPSTREAM (a URL copied with its key,
// api-key=..., or a SAS signature, sig=...) is refused without quoting its
// values; the names stay, so the user sees what was pasted.
func TestUpstreamQueryNeverQuoted(t *testing.T) {
	for _, tc := range []struct {
		value, want string
	}{
		{"https://name.cognitiveservices.azure.com/?api-key=SECRETQ", `"https://name.cognitiveservices.azure.com/?api-key=REDACTED": must not have a query`},
		{"https://name.cognitiveservices.azure.com?sv=2022-11-02&sig=SECRETQ%2Bx&se=2030", `"https://name.cognitiveservices.azure.com?sv=REDACTED&sig=REDACTED&se=REDACTED": must not have a query`},
		{"https://name.cognitiveservices.azure.com/#access_token=SECRETQ", `"https://name.cognitiveservices.azure.com/#REDACTED": must not have a fragment`},
		{"https://name.cognitiveservices.azure.com/tts?Subscription-Key=SECRETQ", `"https://name.cognitiveservices.azure.com/tts?Subscription-Key=REDACTED": must not have a path`},
		{"https://u:SECRETQ@name.cognitiveservices.azure.com/?api-key=SECRETQ", `"https://REDACTED@name.cognitiveservices.azure.com/?api-key=REDACTED": must not contain user info`},
		{"name.cognitiveservices.azure.com?key=SECRETQ", `"name.cognitiveservices.azure.com?key=REDACTED": want https://`},
		{"https://name.cognitiveservices.azure.com/?SECRETQ", `"https://name.cognitiveservices.azure.com/?REDACTED": must not have a query`},
		{"https://name.cognitiveservices.azure.com/?%zz=SECRETQ", `"https://name.cognitiveservices.azure.com/?%zz=REDACTED": must not have a query`},
		{"https://u:pa?ss@name.cognitiveservices.azure.com/?sig=SECRETQ", `"https://REDACTED@name.cognitiveservices.azure.com/?sig=REDACTED": want https://`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			_, err := Load(environ("ENTRAPROXY_UPSTREAM", tc.value))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if strings.Contains(err.Error(), "SECRETQ") {
				t.Errorf("error = %q, quotes the query's secret", err)
			}
			if !strings.Contains(err.Error(), "ENTRAPROXY_UPSTREAM "+tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, "ENTRAPROXY_UPSTREAM "+tc.want)
			}
		})
	}
}

func TestListenIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.1.2.3:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"[::]:8080", false},
		{"10.0.0.1:8080", false},
		{"8080", false},
	} {
		if got := (&Config{Listen: tc.listen}).ListenIsLoopback(); got != tc.want {
			t.Errorf("ListenIsLoopback(%q) = %v, want %v", tc.listen, got, tc.want)
		}
	}
}

// One loopback definition (package hosts) decides the Host check of both
// listeners: ENTRAPROXY_ALLOWED_HOSTS for the main one, the loopback
// defaults for a loopback admin listener, any Host off loopback.
func TestHostChecks(t *testing.T) {
	const up = "https://name.cognitiveservices.azure.com"
	tests := []struct {
		name        string
		env         []string
		main, admin map[string]bool // Host -> accepted
	}{
		{
			name:  "defaults: both on 127.0.0.1",
			main:  map[string]bool{"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true, "evil.example:8080": false},
			admin: map[string]bool{"127.0.0.1:9090": true, "localhost:9090": true, "evil.example:9090": false},
		},
		{
			name:  "a listener on 127.0.0.2 accepts its own Host",
			env:   []string{"ENTRAPROXY_LISTEN", "127.0.0.2:8080", "ENTRAPROXY_ADMIN_LISTEN", "127.0.0.2:9090"},
			main:  map[string]bool{"127.0.0.2:8080": true, "127.0.0.3:8080": false},
			admin: map[string]bool{"127.0.0.2:9090": true, "127.0.0.3:9090": false},
		},
		{
			name:  "gateway on all interfaces with a list; admin on loopback",
			env:   []string{"ENTRAPROXY_LISTEN", "0.0.0.0:8080", "ENTRAPROXY_INBOUND_KEYS", "k", "ENTRAPROXY_ALLOWED_HOSTS", "proxy.internal"},
			main:  map[string]bool{"proxy.internal:8080": true, "10.0.0.5:8080": false, "localhost:8080": false},
			admin: map[string]bool{"127.0.0.1:9090": true, "proxy.internal:9090": false},
		},
		{
			name:  "sidecar: admin on all interfaces for kubelet probes",
			env:   []string{"ENTRAPROXY_ADMIN_LISTEN", "0.0.0.0:9090", "ENTRAPROXY_ALLOWED_HOSTS", "localhost"},
			main:  map[string]bool{"localhost:8080": true, "127.0.0.1:8080": false},
			admin: map[string]bool{"10.1.2.3:9090": true, "anything": true},
		},
		{
			name: "gateway on all interfaces without a list: any Host",
			env:  []string{"ENTRAPROXY_LISTEN", ":8080", "ENTRAPROXY_INBOUND_KEYS", "k"},
			main: map[string]bool{"10.0.0.5:8080": true, "evil.example": true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(environ(append([]string{"ENTRAPROXY_UPSTREAM", up}, tc.env...)...))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for host, want := range tc.main {
				if got := c.HostCheck().Allows(host); got != want {
					t.Errorf("main listener %s: Allows(%q) = %v, want %v", c.Listen, host, got, want)
				}
			}
			for host, want := range tc.admin {
				if got := c.AdminHostCheck().Allows(host); got != want {
					t.Errorf("admin listener %s: Allows(%q) = %v, want %v", c.AdminListen, host, got, want)
				}
			}
		})
	}
}
