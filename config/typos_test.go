package config

import (
	"slices"
	"strings"
	"testing"
)

func TestFindTypos(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"ENTRAPROXY_UPSTREAM=https://name.cognitiveservices.azure.com", // a setting
		"ENTRAPROXY_LISTN=127.0.0.1:8081",                              // one letter missing
		"ENTRAPROXY_LOGLEVEL=debug",                                    // the underscore missing
		"entraproxy_credential=azure-cli",                              // letter case
		"ENTRAPROXY_CREDENTIALS=azure-cli",                             // a letter too many
		"ENTRA_PROXY_SCOPE=x",                                          // a mistyped prefix
		"ENTRAPROXY_FROBNICATE=1",                                      // nothing close
		"ENTRAPROXY_FOO=1",                                             // 4 edits from ENTRAPROXY_SCOPE: too far to guess
		"ENTRAPROXY_TLS_CERT=x",                                        // 5 edits from ENTRAPROXY_TLS_CERT_FILE
		"ENTRAPROXY_INBOUNDKEY=x",                                      // 2 edits: still a guess
		"ENTRAPROXY_DEBUG",                                             // a bare name
		"AZURE_CLIENT_ID=abc",                                          // not ours, not close
		"HOSTNAME=x",
	}
	got := FindTypos(environ)
	want := []Typo{
		{"ENTRAPROXY_LISTN", "ENTRAPROXY_LISTEN"},
		{"ENTRAPROXY_LOGLEVEL", "ENTRAPROXY_LOG_LEVEL"},
		{"entraproxy_credential", "ENTRAPROXY_CREDENTIAL"},
		{"ENTRAPROXY_CREDENTIALS", "ENTRAPROXY_CREDENTIAL"},
		{"ENTRA_PROXY_SCOPE", "ENTRAPROXY_SCOPE"},
		{"ENTRAPROXY_FROBNICATE", ""},
		{"ENTRAPROXY_FOO", ""},
		{"ENTRAPROXY_TLS_CERT", ""},
		{"ENTRAPROXY_INBOUNDKEY", "ENTRAPROXY_INBOUND_KEYS"},
		{"ENTRAPROXY_DEBUG", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("FindTypos =\n%v\nwant\n%v", got, want)
	}
	if s := got[0].String(); s != "ENTRAPROXY_LISTN is not an entraproxy setting; did you mean ENTRAPROXY_LISTEN?" {
		t.Errorf("String() = %q", s)
	}
}

// The missing-upstream error names the look-alike that is set, and a value
// with spaces around it says so.
func TestLoadExplains(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     []string // NAME=value, as os.Environ gives them
		want    []string // in the error
		wantNot string
	}{
		{
			name: "upstream mistyped",
			env:  []string{"ENTRAPROXY_UPSTREM=https://name.cognitiveservices.azure.com"},
			want: []string{`ENTRAPROXY_UPSTREAM "": required`, "ENTRAPROXY_UPSTREM is set: did you mean ENTRAPROXY_UPSTREAM?"},
		},
		{
			name: "resource id mistyped, named by the auth format's problem",
			env:  []string{"ENTRAPROXY_UPSTREAM=https://name.cognitiveservices.azure.com", "ENTRAPROXY_AUTH_FORMAT=aad", "ENTRAPROXY_RESOURCEID=" + validResourceID},
			want: []string{`ENTRAPROXY_AUTH_FORMAT "aad": the aad form needs ENTRAPROXY_RESOURCE_ID`, "ENTRAPROXY_RESOURCEID is set: did you mean ENTRAPROXY_RESOURCE_ID?"},
		},
		{
			name:    "a look-alike of a setting that is set too is no excuse",
			env:     []string{"ENTRAPROXY_UPSTREAM=https://eastus.api.cognitive.microsoft.com", "ENTRAPROXY_UPSTREM=x"},
			want:    []string{"a regional endpoint", "\nENTRAPROXY_UPSTREM is not an entraproxy setting; ENTRAPROXY_UPSTREAM is set as well, and only it is read: remove ENTRAPROXY_UPSTREM"},
			wantNot: "did you mean",
		},
		{
			name: "spaces around a value, a carriage return at its end",
			env: []string{"ENTRAPROXY_UPSTREAM=https://name.cognitiveservices.azure.com", "ENTRAPROXY_LISTEN= 127.0.0.1:8080",
				"ENTRAPROXY_UPSTREAM_TIMEOUT=30s\r", "ENTRAPROXY_SHUTDOWN_TIMEOUT=30s \r"},
			want: []string{
				`ENTRAPROXY_LISTEN " 127.0.0.1:8080": remove the spaces around the value; `,
				`ENTRAPROXY_UPSTREAM_TIMEOUT "30s\r": remove the carriage return at the end (a file saved with Windows line endings?); not a duration`,
				`ENTRAPROXY_SHUTDOWN_TIMEOUT "30s \r": remove the carriage return at the end (a file saved with Windows line endings?) and the spaces around the value; not a duration`,
			},
			wantNot: `"30s\r": remove the spaces`,
		},
		{
			// A typo is often why the settings are invalid: every look-alike
			// is listed in the error, not only those a problem names.
			name: "invalid settings list every typo",
			env:  []string{"ENTRAPROXY_LISTN=127.0.0.1:8081", "ENTRAPROXY_UPSTREM=https://name.cognitiveservices.azure.com", "ENTRAPROXY_FOO=1"},
			want: []string{
				"ENTRAPROXY_UPSTREM is set: did you mean ENTRAPROXY_UPSTREAM?",
				"\nENTRAPROXY_LISTN is not an entraproxy setting; did you mean ENTRAPROXY_LISTEN?",
				"\nENTRAPROXY_FOO is not an entraproxy setting (entraproxy -h lists them)",
			},
			wantNot: "\nENTRAPROXY_UPSTREM is not an entraproxy setting",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := map[string]string{}
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				values[k] = v
			}
			_, _, err := LoadWithTypos(func(k string) string { return values[k] }, tc.env)
			if err == nil {
				t.Fatal("LoadWithTypos: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error =\n%v\nwant it to contain %q", err, w)
				}
			}
			if tc.wantNot != "" && strings.Contains(err.Error(), tc.wantNot) {
				t.Errorf("error =\n%v\nwant no %q", err, tc.wantNot)
			}
		})
	}
}

// Valid settings with a typo beside them load, and the typo comes back for a
// warning.
func TestLoadWithTyposValid(t *testing.T) {
	env := []string{"ENTRAPROXY_UPSTREAM=https://name.cognitiveservices.azure.com", "ENTRAPROXY_LISTN=127.0.0.1:8081"}
	c, typos, err := LoadWithTypos(environ("ENTRAPROXY_UPSTREAM", "https://name.cognitiveservices.azure.com"), env)
	if err != nil {
		t.Fatalf("LoadWithTypos: %v", err)
	}
	if c.Listen != "127.0.0.1:8080" || !slices.Equal(typos, []Typo{{"ENTRAPROXY_LISTN", "ENTRAPROXY_LISTEN"}}) {
		t.Errorf("listen %s, typos %v: want the default and the typo", c.Listen, typos)
	}
}
