package proxy

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Whatever the header names and their letter case, no credential or
// client forwarding header survives, and every other header keeps all its
// values. (The WebSocket path strips with the same function; wsrelay drops
// the hop-by-hop fields: TestHandshakeHeaderFields there.)
func FuzzStripCredentialHeaders(f *testing.F) {
	for _, seed := range []string{
		"Authorization,User-Agent", "aUtHoRiZaTiOn,api-KEY", "ocp-apim-subscription-key,X-ConnectionId",
		"Forwarded,x-forwarded-for,X-Forwarded-Host,X-Forwardedness", "Api-Key ,Authorization\t, authorization",
		"Connection,Upgrade,Sec-WebSocket-Key,Host,Cookie", "X-Forwarded-,Authorizatio,Authorizationx",
		"Sec-WebSocket-Protocol,sec-websocket-protocol", "Sec-Websocket-Protocol",
		"K\u212Aey,Api-\u212Aey", // KELVIN SIGN folds to k under Unicode, not under EqualFold's ASCII-only rules? it does fold
	} {
		f.Add(seed, "v")
	}
	f.Add("Sec-WebSocket-Protocol", "realtime, OpenAI-Insecure-API-Key.sk-1")
	f.Add("Sec-Websocket-Protocol", "openai-insecure-api-key.")
	f.Fuzz(func(t *testing.T, names, value string) {
		in := http.Header{}
		for name := range strings.SplitSeq(names, ",") {
			in[name] = append(in[name], value, value+"2")
			// The same name canonical, as net/http's server stores it.
			c := http.CanonicalHeaderKey(name)
			in[c] = append(in[c], value)
		}
		out := in.Clone()
		stripCredentialHeaders(out)
		for k, vs := range in {
			removed := isCredentialName(k) || strings.EqualFold(k, "Forwarded") || hasPrefixFold(k, "X-Forwarded-")
			got, kept := out[k]
			if removed && kept {
				t.Fatalf("header %q kept, want it removed", k)
			}
			if strings.EqualFold(k, "Sec-Websocket-Protocol") {
				// Credential subprotocols go; the others stay, in order.
				var want []string
				for _, v := range vs {
					for p := range strings.SplitSeq(v, ",") {
						if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(strings.ToLower(p), "openai-insecure-api-key.") {
							want = append(want, p)
						}
					}
				}
				var have []string
				for _, v := range got {
					for p := range strings.SplitSeq(v, ",") {
						if p = strings.TrimSpace(p); p != "" {
							have = append(have, p)
						}
					}
				}
				if !slices.Equal(have, want) {
					t.Fatalf("subprotocols %q after stripping, want %q", got, want)
				}
				continue
			}
			if !removed && (!kept || !slices.Equal(got, vs)) {
				t.Fatalf("header %q = %q after stripping, want %q", k, got, vs)
			}
		}
		if len(out) > len(in) {
			t.Fatalf("stripping added headers: %v", out)
		}
		for k := range out {
			for _, c := range []string{"authorization", "api-key", "ocp-apim-subscription-key", "forwarded"} {
				if strings.ToLower(k) == c {
					t.Fatalf("header %q kept", k)
				}
			}
			if strings.HasPrefix(strings.ToLower(k), "x-forwarded-") {
				t.Fatalf("header %q kept", k)
			}
		}

	})
}
