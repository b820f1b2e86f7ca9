package fakeazure

import (
	"net/http"
	"strings"
	"testing"
)

const otherResourceID = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-other/providers/Microsoft.CognitiveServices/accounts/other"

// TestAuth sends one request per rule to the voices list (a plain GET) and
// checks the status, the counted reason and Azure's error envelope.
func TestAuth(t *testing.T) {
	type headers = map[string][]string
	tests := []struct {
		name   string
		auth   AuthMode
		path   string // default /tts/cognitiveservices/voices/list
		query  string
		header func(a *Azure) headers
		want   int
		reason string
	}{
		{name: "valid bearer", auth: AuthBoth, header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 200},
		{name: "valid aad", auth: AuthBoth, header: func(a *Azure) headers { return headers{"Authorization": {aad(DefaultResourceID, a.Issue())}} }, want: 200},
		{name: "bearer in bearer mode", auth: AuthBearer, header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 200},
		{name: "aad in aad mode", auth: AuthAAD, header: func(a *Azure) headers { return headers{"Authorization": {aad(DefaultResourceID, a.Issue())}} }, want: 200},
		{name: "other query parameters pass", auth: AuthBoth, query: "X-ConnectionId=0123&language=en-US", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 200},

		{name: "no authorization", auth: AuthBoth, header: func(*Azure) headers { return nil }, want: 401, reason: ReasonNoAuthorization},
		{name: "bearer in aad mode", auth: AuthAAD, header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonWrongForm},
		{name: "aad in bearer mode", auth: AuthBearer, header: func(a *Azure) headers { return headers{"Authorization": {aad(DefaultResourceID, a.Issue())}} }, want: 401, reason: ReasonWrongForm},
		{name: "aad with another resource id", auth: AuthAAD, header: func(a *Azure) headers { return headers{"Authorization": {aad(otherResourceID, a.Issue())}} }, want: 401, reason: ReasonWrongResourceID},
		{name: "foreign token", auth: AuthBoth, header: func(*Azure) headers { return headers{"Authorization": {bearer(ForeignToken())}} }, want: 401, reason: ReasonUnknownToken},
		{name: "expired token", auth: AuthBoth, header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.IssueExpired())}} }, want: 401, reason: ReasonExpiredToken},
		{name: "token for another audience", auth: AuthBoth, header: func(a *Azure) headers {
			tok, _ := a.issue("https://management.azure.com", 0)
			return headers{"Authorization": {bearer(tok)}}
		}, want: 401, reason: ReasonWrongAudience},
		{name: "basic scheme", auth: AuthBoth, header: func(*Azure) headers { return headers{"Authorization": {"Basic dXNlcjpwYXNz"}} }, want: 401, reason: ReasonMalformed},
		{name: "lower-case scheme", auth: AuthBoth, header: func(a *Azure) headers { return headers{"Authorization": {"bearer " + a.Issue()}} }, want: 401, reason: ReasonMalformed},
		{name: "not a jwt", auth: AuthBoth, header: func(*Azure) headers { return headers{"Authorization": {"Bearer dummy"}} }, want: 401, reason: ReasonMalformed},
		{name: "aad without token", auth: AuthBoth, header: func(*Azure) headers { return headers{"Authorization": {"Bearer aad#" + DefaultResourceID + "#"}} }, want: 401, reason: ReasonMalformed},
		{name: "second authorization", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue()), bearer(a.Issue())}}
		}, want: 401, reason: ReasonSecondAuthorization},
		{name: "second authorization in other case", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "authorization": {"Bearer dummy"}}
		}, want: 401, reason: ReasonSecondAuthorization},
		{name: "subscription key header", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "Ocp-Apim-Subscription-Key": {"dummy"}}
		}, want: 401, reason: ReasonKeyHeader},
		{name: "subscription key header in odd case", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "OCP-APIM-subscription-KEY": {""}}
		}, want: 401, reason: ReasonKeyHeader},
		{name: "api-key header", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "api-key": {"dummy"}}
		}, want: 401, reason: ReasonKeyHeader},
		{name: "subscription key in query", auth: AuthBoth, query: "Ocp-Apim-Subscription-Key=dummy&X-ConnectionId=1", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonCredentialInQuery},
		{name: "authorization in query, lower case", auth: AuthBoth, query: "authorization=Bearer%20dummy", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonCredentialInQuery},
		{name: "api-key in query, upper case, empty", auth: AuthBoth, query: "language=en-US&API-KEY", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonCredentialInQuery},
		{name: "key name percent-encoded in query", auth: AuthBoth, query: "Ocp%2dApim%2dSubscription%2dKey=x", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonCredentialInQuery},
		{name: "key after a semicolon in query", auth: AuthBoth, query: "a=1;api-key=x", header: func(a *Azure) headers { return headers{"Authorization": {bearer(a.Issue())}} }, want: 401, reason: ReasonCredentialInQuery},
		{name: "client host header", auth: AuthBoth, header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "Host": {"localhost:8080"}}
		}, want: 421, reason: ReasonWrongHost},
		{name: "openai wants bearer, not aad", auth: AuthBoth, path: "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", header: func(a *Azure) headers {
			return headers{"Authorization": {aad(DefaultResourceID, a.Issue())}, "Content-Type": {"application/json"}}
		}, want: 401, reason: ReasonWrongForm},
		{name: "openai in aad mode still takes bearer", auth: AuthAAD, path: "/openai/deployments/gpt/chat/completions?api-version=2024-10-21", header: func(a *Azure) headers {
			return headers{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
		}, want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{Auth: tc.auth})
			path := tc.path
			method, body := http.MethodGet, ""
			if path == "" {
				path = "/tts/cognitiveservices/voices/list"
			} else {
				method, body = http.MethodPost, `{"messages":[{"role":"user","content":"hi"}]}`
			}
			url := a.URL() + path
			if tc.query != "" {
				url += "?" + tc.query
			}
			h := tc.header(a)
			resp, respBody := send(t, method, url, h, body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, respBody)
			}
			if got := resp.Header.Get("X-Fake-Reject-Reason"); got != tc.reason {
				t.Errorf("X-Fake-Reject-Reason = %q, want %q", got, tc.reason)
			}
			rej := a.Rejections()
			if tc.reason == "" {
				if len(rej) != 0 {
					t.Errorf("Rejections() = %v, want none", rej)
				}
				return
			}
			if len(rej) != 1 || rej[tc.reason] != 1 {
				t.Errorf("Rejections() = %v, want {%s: 1}", rej, tc.reason)
			}
			code, msg := azureError(t, respBody)
			if code != "401" && code != "421" {
				t.Errorf("error code = %q, want the status", code)
			}
			for _, vs := range h {
				for _, v := range vs {
					if tok := v[strings.LastIndexAny(v, " #")+1:]; len(tok) > 20 && strings.Contains(respBody+msg, tok) {
						t.Errorf("error body %q holds a credential", respBody)
					}
				}
			}
			if got := lastRequest(t, a); got.Status != tc.want || got.Reject != tc.reason {
				t.Errorf("recorded status, reject = %d, %q, want %d, %q", got.Status, got.Reject, tc.want, tc.reason)
			}
		})
	}
}

// TestAuthWebSocketHandshake checks that a refused upgrade is a 401 handshake
// response, never a session.
func TestAuthWebSocketHandshake(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		query  string
		reason string
	}{
		{name: "foreign token", header: http.Header{"Authorization": {bearer(ForeignToken())}}, reason: ReasonUnknownToken},
		{name: "no token, key in query", query: "?Ocp-Apim-Subscription-Key=dummy", reason: ReasonCredentialInQuery},
		{name: "dummy key header", header: http.Header{"Ocp-Apim-Subscription-Key": {"dummy"}}, reason: ReasonKeyHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			_, resp, err := dial(t, "ws://"+a.CustomHost()+"/tts/cognitiveservices/websocket/v1"+tc.query, tc.header)
			if err == nil {
				t.Fatal("dial succeeded, want a refused handshake")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("handshake response = %v, want 401 (err %v)", resp, err)
			}
			if got := a.Rejections()[tc.reason]; got != 1 {
				t.Errorf("Rejections()[%s] = %d, want 1", tc.reason, got)
			}
		})
	}
}

// TestRequestRedaction checks that the request log shows the form of the
// credentials but never their values.
func TestRequestRedaction(t *testing.T) {
	a := start(t, Settings{})
	tok := a.Issue()
	send(t, http.MethodGet, a.URL()+"/tts/cognitiveservices/voices/list?Authorization=Bearer%20"+tok, map[string][]string{
		"Authorization":             {aad(DefaultResourceID, tok)},
		"Ocp-Apim-Subscription-Key": {"secret-key"},
		"X-Connectionid":            {"abc"},
	}, "")
	got := lastRequest(t, a)
	if want := "Bearer aad#" + DefaultResourceID + "#eyJ…(redacted)"; got.Header.Get("Authorization") != want {
		t.Errorf("recorded Authorization = %q, want %q", got.Header.Get("Authorization"), want)
	}
	if v := got.Header.Get("Ocp-Apim-Subscription-Key"); v != "(redacted)" {
		t.Errorf("recorded key = %q, want (redacted)", v)
	}
	if got.Query != "Authorization=REDACTED" {
		t.Errorf("recorded query = %q, want Authorization=REDACTED", got.Query)
	}
	if v := got.Header.Get("X-Connectionid"); v != "abc" {
		t.Errorf("recorded X-ConnectionId = %q, want abc", v)
	}
	if got.TokenSeq != 0 || got.Reject != ReasonKeyHeader {
		t.Errorf("recorded token seq, reject = %d, %q, want 0, %q (the key is checked first)", got.TokenSeq, got.Reject, ReasonKeyHeader)
	}

	send(t, http.MethodGet, a.URL()+"/tts/cognitiveservices/voices/list", map[string][]string{"Authorization": {bearer(tok)}}, "")
	got = lastRequest(t, a)
	if got.Form != "bearer" || got.TokenSeq != 1 || got.Status != 200 {
		t.Errorf("recorded form, token seq, status = %q, %d, %d, want bearer, 1, 200", got.Form, got.TokenSeq, got.Status)
	}
}
