package fetchmeta

import (
	"net/http"
	"testing"
)

func TestCrossSite(t *testing.T) {
	tests := []struct {
		name  string
		lines []string // Sec-Fetch-Site lines; nil: no header
		site  string
		cross bool
	}{
		{"no header (SDK, curl, kubelet, Prometheus)", nil, "", false},
		{"same-origin", []string{"same-origin"}, "", false},
		{"none (address bar, bookmark)", []string{"none"}, "", false},
		{"cross-site", []string{"cross-site"}, "cross-site", true},
		{"same-site (another port of 127.0.0.1)", []string{"same-site"}, "same-site", true},
		{"capitals", []string{"None"}, "None", true},
		{"empty", []string{""}, "", true},
		{"unknown", []string{"elsewhere"}, "elsewhere", true},
		{"none then cross-site", []string{"none", "cross-site"}, "cross-site", true},
		{"two values on a line", []string{"none, cross-site"}, "none, cross-site", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tc.lines {
				h.Add("Sec-Fetch-Site", l)
			}
			site, cross := CrossSite(h)
			if site != tc.site || cross != tc.cross {
				t.Errorf("CrossSite(%q) = %q, %v; want %q, %v", tc.lines, site, cross, tc.site, tc.cross)
			}
		})
	}
}
