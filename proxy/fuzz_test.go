package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Whatever the query, no credential parameter survives, and every other
// part keeps its bytes and order.
func FuzzStripCredentialQuery(f *testing.F) {
	for _, seed := range []string{
		"", "a=1", "Ocp-Apim-Subscription-Key=k&X-ConnectionId=1", "AUTHORIZATION=Bearer%20x", "api%2Dkey=k",
		"a=1;api-key=k", "%41uthorization=x", "api-key", "&&", "=x", "a=%zz&api-key=k", "Api-Key =k", "language=en-US&format=simple",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := stripCredentialQuery(raw)
		var kept []string
		for part := range strings.SplitSeq(raw, "&") {
			if !isCredentialParam(part) {
				kept = append(kept, part)
			}
		}
		if want := strings.Join(kept, "&"); got != want && !(got == raw && len(kept) == strings.Count(raw, "&")+1) {
			t.Fatalf("stripCredentialQuery(%q) = %q, want %q", raw, got, want)
		}
		for part := range strings.SplitSeq(got, "&") {
			for piece := range strings.SplitSeq(part, ";") {
				name, _, _ := strings.Cut(piece, "=")
				if decoded, err := url.QueryUnescape(name); err == nil {
					name = decoded
				}
				if isCredentialName(strings.TrimSpace(name)) {
					t.Fatalf("stripCredentialQuery(%q) = %q keeps credential %q", raw, got, name)
				}
			}
		}
	})
}

// The Speech mapping only ever adds /stt or /tts in front of the whole path;
// it never changes the host, and an encoded slash never counts as a
// separator for it.
func FuzzSpeechPath(f *testing.F) {
	for _, seed := range []string{
		"/cognitiveservices/v1", "/cognitiveservices%2Fv1", "/speech/recognition/interactive/cognitiveservices/v1",
		"/tts/cognitiveservices/v1", "/speech/universal/v2", "/cognitiveservices/websocket/v1/../v1", "//evil.example/x",
		"/speech/recognition/%2e%2e/%2e%2e/openai", "/cognitiveservices/voices/list",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		u, err := url.Parse("http://upstream.example" + path)
		if err != nil || u.Host != "upstream.example" {
			return
		}
		before := u.EscapedPath()
		mapSpeechPath(u)
		after := u.EscapedPath()
		if u.Host != "upstream.example" || u.Scheme != "http" {
			t.Fatalf("mapping %q changed the target to %s", path, u)
		}
		if after == before {
			return
		}
		if after != "/stt"+before && after != "/tts"+before {
			t.Fatalf("mapping %q gave %q, want a /stt or /tts prefix only", before, after)
		}
		// An encoded slash never decides the mapping (it may follow
		// /speech/recognition/, never stand for a separator): with every
		// %2F made into another byte, the same prefix still applies.
		if masked := strings.NewReplacer("%2F", "%00", "%2f", "%00").Replace(before); speechPrefix(masked) != after[:4] {
			t.Fatalf("mapped %q only because of its encoded slash", before)
		}
	})
}

// The inbound key found is always one the request really carried.
func FuzzInboundKey(f *testing.F) {
	f.Add("Ocp-Apim-Subscription-Key", "k1", "a=1")
	f.Add("Authorization", "Bearer k2", "")
	f.Add("X-Other", "v", "Authorization=Bearer%20k3&api-key=k4")
	f.Add("Api-Key", "", "ocp-apim-subscription-key=k5")
	f.Fuzz(func(t *testing.T, name, value, rawQuery string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: rawQuery}}
		if name != "" {
			r.Header[http.CanonicalHeaderKey(name)] = []string{value}
		}
		key, ok := inboundKey(r)
		if !ok {
			return
		}
		if key == "" {
			t.Fatal("found an empty key")
		}
		q, _ := url.ParseQuery(rawQuery)
		if strings.Contains(value, key) {
			return
		}
		for _, vs := range q {
			for _, v := range vs {
				if strings.Contains(v, key) {
					return
				}
			}
		}
		t.Fatalf("inboundKey = %q, which the request (%s: %q, ?%s) does not carry", key, name, value, rawQuery)
	})
}
