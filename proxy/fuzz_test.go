package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// credentialParams are the query parameter names that carry a credential,
// written out here rather than taken from the code under test, so that
// dropping one from the proxy's list fails the fuzz test: the three the
// README names, and API Management's Subscription-Key
// (https://learn.microsoft.com/azure/api-management/api-management-subscriptions).
var credentialParams = []string{"authorization", "ocp-apim-subscription-key", "api-key", "subscription-key"}

// namesCredential reports whether one name=value piece of a query names a
// credential, as a lenient server would read it: '+' is a space, a valid %XX
// escape is its byte and an invalid one is left as it is, surrounding spaces
// do not count, and letter case does not either.
func namesCredential(piece string) bool {
	name, _, _ := strings.Cut(piece, "=")
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]):
			v, _ := strconv.ParseUint(name[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	decoded := strings.TrimSpace(b.String())
	return slices.ContainsFunc(credentialParams, func(c string) bool { return strings.EqualFold(decoded, c) })
}

func isHex(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }

// Whatever the query, no piece of the result names a credential, whether a
// server splits pairs on '&' alone or on ';' too; and nothing else is lost:
// every '&' part that names none is kept, with its bytes, in order, and of
// one that does, its other ';' pieces, joined by ';' (a part left empty
// goes).
func FuzzStripCredentialQuery(f *testing.F) {
	for _, seed := range []string{
		"", "a=1", "Ocp-Apim-Subscription-Key=k&X-ConnectionId=1", "AUTHORIZATION=Bearer%20x", "api%2Dkey=k",
		"a=1;api-key=k", "%41uthorization=x", "api-key", "&&", "=x", "a=%zz&api-key=k", "Api-Key =k", "language=en-US&format=simple",
		"subscription-key=k", "+api-key+=k", "%61%70%69%2d%6b%65%79=k", "api-key%zz=k",
		"a=1;api-key=K&c=3", "api-key=K;a=1", "a;;api-key=K;", "api-key=K;", ";",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := stripCredentialQuery(raw)
		var kept []string
		for part := range strings.SplitSeq(raw, "&") {
			pieces := strings.Split(part, ";")
			rest := slices.DeleteFunc(slices.Clone(pieces), namesCredential)
			switch {
			case len(rest) == len(pieces):
				kept = append(kept, part)
			case strings.Join(rest, ";") != "":
				kept = append(kept, strings.Join(rest, ";"))
			}
		}
		if want := strings.Join(kept, "&"); got != want {
			t.Fatalf("stripCredentialQuery(%q) = %q, want %q", raw, got, want)
		}
		for part := range strings.SplitSeq(got, "&") {
			for piece := range strings.SplitSeq(part, ";") {
				if namesCredential(piece) {
					t.Fatalf("stripCredentialQuery(%q) = %q keeps credential %q", raw, got, piece)
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
