package hosts

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"localhost.", true},
		{"127.0.0.1", true},
		{"127.0.0.2", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"[::1]", true},
		{"0:0:0:0:0:0:0:1", true},
		{"::ffff:127.0.0.1", true},
		{"", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.0.0.5", false},
		{"128.0.0.1", false},
		{"evil.localhost", false}, // resolver-dependent: not ours to promise
		{"localhost.evil.example", false},
		{"127.0.0.1.nip.io", false},
		{"127.1", false},
		{"0x7f.0.0.1", false},
		{"127.0.0.01", false},
	}
	for _, tc := range tests {
		if got := IsLoopback(tc.host); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestPatternsMatch(t *testing.T) {
	tests := []struct {
		patterns []string
		host     string
		want     bool
	}{
		{[]string{"*.cognitiveservices.azure.com"}, "a.cognitiveservices.azure.com", true},
		{[]string{"*.cognitiveservices.azure.com"}, "a.b.cognitiveservices.azure.com:443", true},
		{[]string{"*.cognitiveservices.azure.com"}, "A.CognitiveServices.Azure.COM", true},
		{[]string{"*.cognitiveservices.azure.com"}, "a.cognitiveservices.azure.com.", true},
		{[]string{"*.cognitiveservices.azure.com"}, "cognitiveservices.azure.com", false},
		{[]string{"*.cognitiveservices.azure.com"}, "evilcognitiveservices.azure.com", false},
		{[]string{"*.cognitiveservices.azure.com"}, ".cognitiveservices.azure.com", false},
		{[]string{"*.cognitiveservices.azure.com"}, "a..cognitiveservices.azure.com", false},
		{[]string{"*.cognitiveservices.azure.com"}, "a.cognitiveservices.azure.com.evil.example", false},
		{[]string{"*.cognitiveservices.azure.com"}, "", false},
		{[]string{"*.Speech.Microsoft.com"}, "eastus.tts.speech.microsoft.com", true},
		{[]string{"login.example.com"}, "login.example.com", true},
		{[]string{"login.example.com"}, "login.example.com:8443", true},
		{[]string{"login.example.com"}, "LOGIN.Example.COM:443", true},
		{[]string{"login.example.com"}, "a.login.example.com", false},
		{[]string{"login.example.com"}, "login.example.com.evil.example", false},
		{[]string{"127.0.0.1:8443"}, "127.0.0.1:8443", true},
		{[]string{"127.0.0.1:8443"}, "127.0.0.1:8444", false},
		{[]string{"127.0.0.1:8443"}, "127.0.0.1", false},
		{[]string{"Host.Example:443"}, "host.example:443", true},
		{nil, "a.cognitiveservices.azure.com", false},
		{[]string{"*.openai.azure.com", "*.cognitiveservices.azure.com"}, "x.openai.azure.com", true},
		// IPv6 with and without brackets, written differently.
		{[]string{"[::1]"}, "[::1]:8080", true},
		{[]string{"[::1]"}, "[::1]", true},
		{[]string{"::1"}, "[0:0::1]:1", true},
		{[]string{"[::1]:8080"}, "[::1]:8081", false},
		{[]string{"[::1]:8080"}, "[::1]:8080", true},
		// Host header values a client could send.
		{[]string{"localhost"}, "localhost:8080:9090", false},
		{[]string{"localhost"}, "localhost@evil.example", false},
		{[]string{"localhost"}, ":8080", false},
		{[]string{"127.0.0.1"}, "127.0.0.1.", true},
		{[]string{"127.0.0.1"}, "127.1", false},
		{[]string{"127.0.0.1"}, "::ffff:127.0.0.1", true},
		{[]string{"127.0.0.1"}, "[127.0.0.1]:80", false},
		{[]string{"*.cognitiveservices.azure.com"}, "[a.cognitiveservices.azure.com]:443", false},
		// The port is a number from 0 to 65535, compared as a number.
		{[]string{"localhost"}, "localhost:0", true},
		{[]string{"localhost"}, "localhost:65535", true},
		{[]string{"localhost:8080"}, "localhost:08080", true},
		{[]string{"localhost:08080"}, "localhost:8080", true},
		{[]string{"localhost"}, "localhost:65536", false},
		{[]string{"localhost"}, "localhost:99999", false},
		{[]string{"localhost"}, "localhost:000001", false},
		{[]string{"localhost"}, "localhost:" + strings.Repeat("0", 5000) + "1", false},
		{[]string{"localhost"}, "localhost:abc", false},
		{[]string{"localhost"}, "localhost:+80", false},
		{[]string{"localhost"}, "localhost:-1", false},
		{[]string{"localhost"}, "localhost: 80", false},
		{[]string{"localhost"}, "localhost:", false},
		{[]string{"[::1]"}, "[::1]:70000", false},
		{[]string{"*.cognitiveservices.azure.com"}, "a.cognitiveservices.azure.com:4430000", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%.40s", tc.patterns, tc.host), func(t *testing.T) {
			if got := NewPatterns(tc.patterns).Match(tc.host); got != tc.want {
				t.Errorf("Match(%.80q) with %q = %v, want %v", tc.host, tc.patterns, got, tc.want)
			}
		})
	}
}

func TestPatternProblem(t *testing.T) {
	valid := []string{"localhost", "127.0.0.1:8080", "[::1]", "[::1]:8080", "::1", "proxy.internal", "*.example.com", "*.a.b.example.com"}
	for _, p := range valid {
		if got := PatternProblem(p); got != "" {
			t.Errorf("PatternProblem(%q) = %q, want valid", p, got)
		}
	}
	invalid := []string{"", "http://localhost", "localhost/", "a b", "user@host", "*", "*.com", "*.example.com:443", "a.*.example.com", "*..example.com", ":8080", "host:",
		"host:65536", "host:http", "[::1]:70000", "host:-1", "host:000001"}
	for _, p := range invalid {
		if got := PatternProblem(p); got == "" {
			t.Errorf("PatternProblem(%q) = valid, want a problem", p)
		}
	}
}

func TestForListener(t *testing.T) {
	tests := []struct {
		name       string
		addr       string
		configured []string
		allow      []string
		refuse     []string
		any        bool
	}{
		{
			name:  "loopback listener: the loopback names on any port",
			addr:  "127.0.0.1:8080",
			allow: []string{"localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:9999", "[::1]", "[::1]:8080"},
			refuse: []string{"", "evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io", "127.0.0.2:8080", "10.0.0.5:8080", "evil.localhost:8080",
				"localhost:65536", "127.0.0.1:abc", "[::1]:", "localhost:" + strings.Repeat("0", 5000) + "1"},
		},
		{
			name:   "a listener on 127.0.0.2 accepts its own address",
			addr:   "127.0.0.2:8080",
			allow:  []string{"127.0.0.2:8080", "127.0.0.2", "localhost:8080", "127.0.0.1:8080"},
			refuse: []string{"127.0.0.3:8080", "evil.example:8080"},
		},
		{
			name:   "a listener on [::1]",
			addr:   "[::1]:8080",
			allow:  []string{"[::1]:8080", "localhost:8080"},
			refuse: []string{"evil.example"},
		},
		{
			name:   "a listener on localhost",
			addr:   "localhost:0",
			allow:  []string{"localhost:43000", "127.0.0.1:43000"},
			refuse: []string{"evil.example"},
		},
		{
			name:  "all interfaces: any Host",
			addr:  "0.0.0.0:8080",
			allow: []string{"evil.example", "10.0.0.5:8080", "", "anything at all"},
			any:   true,
		},
		{
			name:  "empty host (all interfaces): any Host",
			addr:  ":8080",
			allow: []string{"evil.example"},
			any:   true,
		},
		{
			name:       "configured list on a pod address: only it",
			addr:       "10.0.0.5:8080",
			configured: []string{"proxy.internal", "*.svc.cluster.local"},
			allow:      []string{"proxy.internal", "proxy.internal:8080", "entraproxy.ns.svc.cluster.local:8080"},
			refuse:     []string{"10.0.0.5:8080", "evil.example", "svc.cluster.local"},
		},
		{
			name:       "configured list on loopback replaces the defaults",
			addr:       "127.0.0.1:8080",
			configured: []string{"localhost:8080"},
			allow:      []string{"localhost:8080"},
			refuse:     []string{"localhost:8081", "127.0.0.1:8080", "[::1]:8080"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ForListener(tc.addr, tc.configured)
			for _, h := range tc.allow {
				if !c.Allows(h) {
					t.Errorf("Allows(%.80q) = false, want true (allowed %q)", h, c.Allowed())
				}
			}
			for _, h := range tc.refuse {
				if c.Allows(h) {
					t.Errorf("Allows(%.80q) = true, want false (allowed %q)", h, c.Allowed())
				}
			}
			if got := c.Allowed() == nil; got != tc.any {
				t.Errorf("Allowed() = %q, want nil: %v", c.Allowed(), tc.any)
			}
		})
	}
}

// The zero HostCheck accepts any Host (a Proxy built without one).
func TestHostCheckZeroValue(t *testing.T) {
	var c HostCheck
	if !c.Allows("evil.example") || c.Allowed() != nil {
		t.Errorf("zero HostCheck: Allows = %v, Allowed = %q; want true, nil", c.Allows("evil.example"), c.Allowed())
	}
}

// The loopback listener's names are listed once each, in the form a user
// would type them, for the refusal message.
func TestForListenerNames(t *testing.T) {
	for addr, want := range map[string][]string{
		"127.0.0.1:8080":       {"localhost", "127.0.0.1", "[::1]"},
		"[::1]:8080":           {"localhost", "127.0.0.1", "[::1]"},
		"127.0.0.2:8080":       {"localhost", "127.0.0.1", "[::1]", "127.0.0.2"},
		"[::ffff:127.0.0.3]:1": {"localhost", "127.0.0.1", "[::1]", "[::ffff:127.0.0.3]"},
	} {
		if got := ForListener(addr, nil).Allowed(); !slices.Equal(got, want) {
			t.Errorf("ForListener(%q).Allowed() = %q, want %q", addr, got, want)
		}
	}
}

// A host the patterns match really is under one of them.
func FuzzPatternsMatch(f *testing.F) {
	for _, seed := range []string{
		"a.cognitiveservices.azure.com", "cognitiveservices.azure.com", ".cognitiveservices.azure.com",
		"evilcognitiveservices.azure.com", "a..cognitiveservices.azure.com", "A.SPEECH.MICROSOFT.COM:443",
		"127.0.0.1:8443", "127.0.0.1:9", "[::1]:443", "x.cognitiveservices.azure.com.", "x.cognitiveservices.azure.com.evil",
	} {
		f.Add(seed)
	}
	m := NewPatterns([]string{"*.cognitiveservices.azure.com", "*.speech.microsoft.com", "127.0.0.1:8443"})
	f.Fuzz(func(t *testing.T, hostport string) {
		if !m.Match(hostport) {
			return
		}
		h := strings.ToLower(hostport)
		if h == "127.0.0.1:8443" || h == "127.0.0.1.:8443" || h == "[::ffff:127.0.0.1]:8443" {
			return
		}
		host := h
		if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
			host = h[:i]
		}
		host = strings.TrimSuffix(host, ".")
		for _, suffix := range []string{".cognitiveservices.azure.com", ".speech.microsoft.com"} {
			if labels, ok := strings.CutSuffix(host, suffix); ok && labels != "" && !strings.HasPrefix(labels, ".") && !strings.Contains(labels, "..") {
				return
			}
		}
		t.Fatalf("Match(%q), which is under no pattern", hostport)
	})
}
