package config

import (
	"errors"
	"strings"
	"testing"
)

// Whatever the environment says, Load never panics, and every problem it
// reports names its variable.
func FuzzLoad(f *testing.F) {
	f.Add("https://name.cognitiveservices.azure.com", "127.0.0.1:8080", "30s", "*.example.com", "auto", "")
	f.Add("http://[::1]:1/", ":0", "-1s", "a.*.b", "aad", "/subscriptions/x")
	f.Add("https://u@h?x#y", "0.0.0.0:80", "1e9h", ",,", "bearer", "#")
	f.Fuzz(func(t *testing.T, upstream, listen, timeout, redirects, format, resourceID string) {
		_, err := Load(environ(
			"ENTRAPROXY_UPSTREAM", upstream, "ENTRAPROXY_LISTEN", listen,
			"ENTRAPROXY_UPSTREAM_TIMEOUT", timeout, "ENTRAPROXY_REDIRECT_HOSTS", redirects,
			"ENTRAPROXY_AUTH_FORMAT", format, "ENTRAPROXY_RESOURCE_ID", resourceID,
		))
		if err == nil {
			return
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if !strings.HasPrefix(line, "ENTRAPROXY_") {
				t.Fatalf("problem %q does not start with its variable", line)
			}
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v holds no *config.Error", err)
		}
	})
}
