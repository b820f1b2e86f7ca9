package hosts

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	const (
		public = "https://cognitiveservices.azure.com"
		gov    = "https://cognitiveservices.azure.us"
		china  = "https://cognitiveservices.azure.cn"
	)
	tests := []struct {
		host     string
		kind     Kind
		audience string
	}{
		// Custom subdomains, in each cloud, written as clients write them.
		{"myspeech.cognitiveservices.azure.com", CustomDomain, public},
		{"MySpeech.CognitiveServices.Azure.COM", CustomDomain, public},
		{"myspeech.cognitiveservices.azure.com.", CustomDomain, public},
		{"myspeech.cognitiveservices.azure.com:443", CustomDomain, public},
		{"gov-speech.cognitiveservices.azure.us", CustomDomain, gov},
		{"cn1.cognitiveservices.azure.cn", CustomDomain, china},
		{"myaoai.openai.azure.com", OpenAI, public},
		{"MyAOAI.openai.azure.com:8443", OpenAI, public},
		{"gov-aoai.openai.azure.us", OpenAI, gov},
		{"cn-aoai.openai.azure.cn", OpenAI, china},
		// Shared regional endpoints.
		{"eastus.api.cognitive.microsoft.com", Regional, public},
		{"EastUS.API.Cognitive.Microsoft.com.", Regional, public},
		{"westeurope.tts.speech.microsoft.com", Regional, public},
		{"westeurope.stt.speech.microsoft.com", Regional, public},
		{"westeurope.s2s.speech.microsoft.com", Regional, public},
		{"usgovvirginia.api.cognitive.microsoft.us", Regional, gov},
		{"usgovarizona.tts.speech.azure.us", Regional, gov},
		{"chinaeast2.api.cognitive.azure.cn", Regional, china},
		{"chinaeast2.stt.speech.azure.cn", Regional, china},
		// Loopback, on any port.
		{"127.0.0.1", Loopback, public},
		{"127.0.0.1:8080", Loopback, public},
		{"localhost", Loopback, public},
		{"[::1]:443", Loopback, public},
		// Anything else: aliases, parents, look-alikes, other clouds' hosts
		// that are no endpoint, addresses.
		{"a.privatelink.cognitiveservices.azure.com", Other, public},
		{"a.privatelink.openai.azure.us", Other, gov},
		{"cognitiveservices.azure.com", Other, public},
		{"openai.azure.com", Other, public},
		{"a.b.api.cognitive.microsoft.com", Other, public},
		{"api.cognitive.microsoft.com", Other, public},
		{"eastus.voice.speech.microsoft.com", Other, public},
		{"name_1.cognitiveservices.azure.com", Other, public},
		{"name.cognitiveservices.azure.com.evil.example", Other, public},
		{"evilcognitiveservices.azure.com", Other, public},
		{"gateway.example.us", Other, public},
		{"something.azure.us", Other, gov},
		{"10.0.0.4", Other, public},
		{"[2001:db8::1]:443", Other, public},
		{"", Other, public},
	}
	for _, tc := range tests {
		got := Classify(tc.host)
		if got.Kind != tc.kind || got.Cloud.Audience != tc.audience {
			t.Errorf("Classify(%q) = %v in %s, want %v in %s", tc.host, got.Kind, got.Cloud.Audience, tc.kind, tc.audience)
		}
	}
}

// The custom domain a regional host's user is sent to is in the regional
// host's cloud.
func TestCustomDomainURL(t *testing.T) {
	for host, want := range map[string]string{
		"eastus.api.cognitive.microsoft.com":       "https://NAME.cognitiveservices.azure.com",
		"westeurope.tts.speech.microsoft.com":      "https://NAME.cognitiveservices.azure.com",
		"usgovvirginia.api.cognitive.microsoft.us": "https://NAME.cognitiveservices.azure.us",
		"usgovarizona.stt.speech.azure.us":         "https://NAME.cognitiveservices.azure.us",
		"chinaeast2.api.cognitive.azure.cn":        "https://NAME.cognitiveservices.azure.cn",
		"chinanorth3.tts.speech.azure.cn":          "https://NAME.cognitiveservices.azure.cn",
		"proxy.internal":                           "https://NAME.cognitiveservices.azure.com",
	} {
		if got := Classify(host).Cloud.CustomDomainURL("NAME"); got != want {
			t.Errorf("Classify(%q).Cloud.CustomDomainURL = %q, want %q", host, got, want)
		}
	}
}

func TestIsOpenAI(t *testing.T) {
	for host, want := range map[string]bool{
		"myaoai.openai.azure.com":              true,
		"MyAOAI.OpenAI.Azure.com:443":          true,
		"myaoai.openai.azure.com.":             true,
		"myaoai.openai.azure.us":               true,
		"myaoai.openai.azure.cn":               true,
		"myaoai.privatelink.openai.azure.com":  true, // an alias is still Azure OpenAI
		"openai.azure.com":                     false,
		"myspeech.cognitiveservices.azure.com": false,
		"eastus.api.cognitive.microsoft.com":   false,
		"openai.azure.com.evil.example":        false,
		"myaoai.openai.azure.com.evil.example": false,
		"evilopenai.azure.com":                 false,
		"127.0.0.1:8080":                       false,
		"":                                     false,
	} {
		if got := IsOpenAI(host); got != want {
			t.Errorf("IsOpenAI(%q) = %v, want %v", host, got, want)
		}
	}
}

// The default is the list the README promises, written out here on its own
// so that a change to the cloud tables cannot change it unnoticed.
func TestDefaultRedirectHosts(t *testing.T) {
	const want = "*.cognitiveservices.azure.com,*.speech.microsoft.com,*.openai.azure.com," +
		"*.cognitiveservices.azure.us,*.speech.azure.us,*.cognitiveservices.azure.cn,*.speech.azure.cn"
	list := DefaultRedirectHosts()
	if got := strings.Join(list, ","); got != want {
		t.Errorf("DefaultRedirectHosts = %q, want %q", got, want)
	}
	for _, p := range list {
		if problem := PatternProblem(p); problem != "" {
			t.Errorf("default entry %q: %s", p, problem)
		}
	}
	// Every custom domain and every regional Speech host the redirects of
	// a Speech resource lead to is allowed, in every cloud.
	ps := NewPatterns(list)
	for _, host := range []string{
		"name.cognitiveservices.azure.com", "eastus.tts.speech.microsoft.com", "eastus.stt.speech.microsoft.com",
		"name.cognitiveservices.azure.us", "usgovarizona.tts.speech.azure.us",
		"name.cognitiveservices.azure.cn", "chinaeast2.tts.speech.azure.cn",
		"name.openai.azure.com",
	} {
		if !ps.Match(host) {
			t.Errorf("default redirect hosts do not allow %s", host)
		}
	}
}

// FuzzClassify: whatever the host, Classify and IsOpenAI agree, and what
// Classify calls a custom domain a redirect may lead to by default.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"a.cognitiveservices.azure.com", "a.openai.azure.us:1", "eastus.tts.speech.microsoft.com.",
		"[::1]:80", "A.B.openai.azure.cn", "x..cognitiveservices.azure.com", "é.cognitiveservices.azure.com"} {
		f.Add(s)
	}
	defaults := NewPatterns(DefaultRedirectHosts())
	f.Fuzz(func(t *testing.T, host string) {
		c := Classify(host)
		if c.Kind == OpenAI && !IsOpenAI(host) {
			t.Errorf("Classify(%q) is OpenAI, IsOpenAI is false", host)
		}
		if IsOpenAI(host) && (c.Kind == CustomDomain || c.Kind == Regional || c.Kind == Loopback) {
			t.Errorf("IsOpenAI(%q) is true, Classify says %v", host, c.Kind)
		}
		if c.Kind == CustomDomain && !defaults.Match(host) {
			t.Errorf("Classify(%q) is a custom domain the default redirect hosts do not allow", host)
		}
	})
}
