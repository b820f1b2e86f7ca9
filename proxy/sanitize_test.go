package proxy

import (
	"net/http"
	"testing"
)

func TestStripCredentialQuery(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"nothing to strip keeps bytes", "language=en-US&format=simple&X-ConnectionId=ab%2Bcd", "language=en-US&format=simple&X-ConnectionId=ab%2Bcd"},
		{"nothing to strip keeps odd bytes", "a=%zz&&b&=x", "a=%zz&&b&=x"},
		{"Ocp-Apim-Subscription-Key", "Ocp-Apim-Subscription-Key=k&X-ConnectionId=1", "X-ConnectionId=1"},
		{"lower case", "language=en-US&ocp-apim-subscription-key=k", "language=en-US"},
		{"mixed case api-key", "aPi-KeY=k&api-version=2024-10-21", "api-version=2024-10-21"},
		{"AUTHORIZATION=Bearer%20x", "AUTHORIZATION=Bearer%20x&format=simple", "format=simple"},
		{"order kept around removals", "b=2&api-key=k&a=1&Authorization=x&c=3", "b=2&a=1&c=3"},
		{"repeated", "api-key=1&api-key=2&x=1", "x=1"},
		{"only credentials", "api-key=1&Authorization=Bearer%20t", ""},
		{"percent-encoded name", "%41uthorization=x&a=1", "a=1"},
		{"percent-encoded dash", "api%2Dkey=k&a=1", "a=1"},
		{"percent-encoded whole name", "%61%70%69%2d%6b%65%79=k&a=1", "a=1"},
		{"plus as space around name", "+api-key+=k&a=1", "a=1"},
		{"param without =", "api-key&a=1", "a=1"},
		{"other param without =", "flag&api-key=k", "flag"},
		{"; piece holds a credential: only it goes", "a=1;api-key=k&b=2", "a=1&b=2"},
		{"; piece first", "Authorization=x;a=1&b=2", "a=1&b=2"},
		{"; pieces around a credential", "a=1;api-key=k;c=3&b=2", "a=1;c=3&b=2"},
		{"; part left empty goes", "a=1&api-key=k;&b=2", "a=1&b=2"},
		{"; without credential kept", "a=1;b=2&c=3", "a=1;b=2&c=3"},
		{"value named like a credential kept", "q=api-key&note=Authorization", "q=api-key&note=Authorization"},
		{"longer name kept", "api-key-id=1&x-api-key2=2", "api-key-id=1&x-api-key2=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stripCredentialQuery(tc.in); got != tc.want {
				t.Errorf("stripCredentialQuery(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestStripCredentialHeaders(t *testing.T) {
	h := http.Header{
		"Authorization":             {"Bearer x"},
		"aPi-KeY":                   {"k"},
		"ocp-apim-subscription-key": {"k"},
		"Forwarded":                 {"for=1.2.3.4"},
		"X-Forwarded-For":           {"1.2.3.4"},
		"x-forwarded-host":          {"evil.example"},
		"X-Connectionid":            {"abc"},
		"User-Agent":                {"sdk"},
		"X-Forwardedness":           {"kept: no dash after Forwarded"},
	}
	stripCredentialHeaders(h)
	want := map[string]bool{"X-Connectionid": true, "User-Agent": true, "X-Forwardedness": true}
	for k := range h {
		if !want[k] {
			t.Errorf("header %s kept, want it removed", k)
		}
	}
	for k := range want {
		if _, ok := h[k]; !ok {
			t.Errorf("header %s removed, want it kept", k)
		}
	}
}
