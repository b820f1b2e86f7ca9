package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/entraproxy/entraproxy/internal/fakeazure"
	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

// serve wires browser protection and the Host checks of both listeners
// from the settings: a listener on 127.0.0.2 accepts its own address, a
// rebound name is refused on the proxy and on the admin listener, a
// cross-site browser request without Origin never reaches the upstream,
// and one at the admin listener reads nothing.
func TestServeGuardsBothListeners(t *testing.T) {
	fake, err := fakeazure.Start(fakeazure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	startRecordingIdentity(t, fake)
	p := startInProcess(t, true, nil,
		"ENTRAPROXY_UPSTREAM", fake.URL(),
		"ENTRAPROXY_LISTEN", "127.0.0.2:0",
		"ENTRAPROXY_ADMIN_LISTEN", "127.0.0.2:0",
		"AZURE_CLIENT_ID", uniqueClientID(),
	)
	client := &http.Client{Timeout: leakcheck.HangGuard}
	get := func(addr, path, host string, header http.Header) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s%s Host %s: %v", addr, path, host, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	_, adminPort, _ := net.SplitHostPort(p.admin)
	const voices = "/cognitiveservices/voices/list"

	tests := []struct {
		name   string
		addr   string
		path   string
		host   string
		header http.Header
		status int
		code   string
	}{
		{"proxy: its own address 127.0.0.2", p.listen, voices, p.listen, nil, 200, ""},
		{"proxy: localhost", p.listen, voices, "localhost", nil, 200, ""},
		{"proxy: address bar (Sec-Fetch-Site none)", p.listen, voices, p.listen, http.Header{"Sec-Fetch-Site": {"none"}}, 200, ""},
		{"proxy: rebound name", p.listen, voices, "rebind.evil.example", nil, 403, "host_not_allowed"},
		{"proxy: another loopback address", p.listen, voices, "127.0.0.3", nil, 403, "host_not_allowed"},
		{"proxy: <img> from another site", p.listen, voices, p.listen, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Dest": {"image"}}, 403, "origin_not_allowed"},
		{"proxy: <script> from another port", p.listen, voices, p.listen, http.Header{"Sec-Fetch-Site": {"same-site"}, "Sec-Fetch-Dest": {"script"}}, 403, "origin_not_allowed"},
		{"proxy: empty Origin", p.listen, voices, p.listen, http.Header{"Origin": {""}}, 403, "origin_not_allowed"},
		{"admin: its own address", p.admin, "/readyz", p.admin, nil, 200, ""},
		{"admin: localhost", p.admin, "/metrics", "localhost:" + adminPort, nil, 200, ""},
		{"admin: rebound name reads /readyz", p.admin, "/readyz", "rebind.evil.example:" + adminPort, nil, 403, "host_not_allowed"},
		{"admin: rebound name reads /metrics", p.admin, "/metrics", "rebind.evil.example:" + adminPort, nil, 403, "host_not_allowed"},
		{"admin: <img> from another site probes /readyz", p.admin, "/readyz", p.admin, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Dest": {"image"}}, 403, "origin_not_allowed"},
		{"admin: <script> from another port reads /metrics", p.admin, "/metrics", p.admin, http.Header{"Sec-Fetch-Site": {"same-site"}, "Sec-Fetch-Dest": {"script"}}, 403, "origin_not_allowed"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A marker of its own: the fake may record an accepted
			// request just after answering it, so only this request's
			// marker says whether this request got through.
			marker := "case=" + strconv.Itoa(i)
			status, body := get(tc.addr, tc.path+"?"+marker, tc.host, tc.header)
			if status != tc.status || (tc.code != "" && !strings.Contains(body, `"code":"`+tc.code+`"`)) {
				t.Errorf("status = %d (%.300s), want %d %s", status, body, tc.status, tc.code)
			}
			if tc.code == "" {
				return // 200 from the fake's voices list: it got through
			}
			for _, r := range fake.Requests() {
				if r.Query == marker {
					t.Errorf("the upstream got the refused request %s %s?%s", r.Method, r.Path, r.Query)
				}
			}
		})
	}
}
