package proxy

import (
	"errors"
	"net/http"
	"testing"

	"github.com/entraproxy/entraproxy/tokens"
)

// A 401 that a retry cannot change (same token, same form) is not sent twice.
func TestAutoSkipsUselessRetry(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}), func(o *Options) {
		o.AuthFormat = FormatAuto
		o.ResourceID = ""
	})
	f.tokens.renewSame = true // as tokens.Source does within 10 s of its last renewal
	resp, _ := f.get(t, "/openai/v1/models")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want the upstream's 401", resp.StatusCode)
	}
	if n := f.seen.count(); n != 1 {
		t.Errorf("upstream requests = %d, want 1: retrying with the same token and form changes nothing", n)
	}
}

// after401 is the one decision after an upstream 401, for HTTP and
// WebSocket alike: whether a retry is worth sending, and in which form.
func TestAfter401(t *testing.T) {
	const speech, openai = "name.cognitiveservices.azure.com", "name.openai.azure.com"
	tests := []struct {
		name       string
		format     AuthFormat
		resourceID string
		renewSame  bool  // Renew hands back the token it was given
		renewErr   error // Renew fails
		host       string
		sent       tokens.Form
		want       tokens.Form
		wantRetry  bool
	}{
		{"bearer never retries", FormatBearer, "/subscriptions/x", false, nil, speech, tokens.Bearer, 0, false},
		{"aad never retries", FormatAAD, "/subscriptions/x", false, nil, speech, tokens.AAD, 0, false},
		{"auto: Speech with a resource id tries aad", FormatAuto, "/subscriptions/x", false, nil, speech, tokens.Bearer, tokens.AAD, true},
		{"auto: after aad, bearer", FormatAuto, "/subscriptions/x", false, nil, speech, tokens.AAD, tokens.Bearer, true},
		{"auto: the same token in the other form is worth it", FormatAuto, "/subscriptions/x", true, nil, speech, tokens.Bearer, tokens.AAD, true},
		{"auto: no resource id, a fresh bearer", FormatAuto, "", false, nil, speech, tokens.Bearer, tokens.Bearer, true},
		{"auto: no resource id and the same token changes nothing", FormatAuto, "", true, nil, speech, tokens.Bearer, 0, false},
		{"auto: OpenAI never gets aad", FormatAuto, "/subscriptions/x", false, nil, openai, tokens.Bearer, tokens.Bearer, true},
		{"auto: OpenAI with a port", FormatAuto, "/subscriptions/x", false, nil, "NAME.openai.azure.com:443", tokens.Bearer, tokens.Bearer, true},
		{"auto: OpenAI in Azure Government", FormatAuto, "/subscriptions/x", false, nil, "name.openai.azure.us", tokens.Bearer, tokens.Bearer, true},
		{"auto: OpenAI and the same token changes nothing", FormatAuto, "/subscriptions/x", true, nil, openai, tokens.Bearer, 0, false},
		{"auto: a failed renewal leaves the 401", FormatAuto, "/subscriptions/x", false, errors.New("no token"), speech, tokens.Bearer, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFakeTokens("t")
			ft.renewSame = tc.renewSame
			ft.renewErr = tc.renewErr
			a := newAuthorizer(ft, tc.format, tc.resourceID, nil)
			retry, ok := a.after401(t.Context(), tc.host, credential{form: tc.sent, token: "t"})
			if ok != tc.wantRetry {
				t.Fatalf("after401 retries = %v, want %v", ok, tc.wantRetry)
			}
			if !ok {
				return
			}
			if retry.form != tc.want {
				t.Errorf("retry form = %v, want %v", retry.form, tc.want)
			}
			if want := ft.current(); retry.token != want {
				t.Errorf("retry token = %q, want the renewed %q", retry.token, want)
			}
		})
	}
}

// The retry's form is remembered for its host once the upstream answers it
// with anything but another 401, and only for that host.
func TestRetryAnswerTeachesTheForm(t *testing.T) {
	const host, other = "name.cognitiveservices.azure.com", "other.cognitiveservices.azure.com"
	a := newAuthorizer(newFakeTokens("t"), FormatAuto, "/subscriptions/x", nil)
	firstForm := func(host string) tokens.Form {
		c, err := a.first(t.Context(), host)
		if err != nil {
			t.Fatal(err)
		}
		return c.form
	}
	retry, ok := a.after401(t.Context(), host, credential{form: tokens.Bearer, token: "t"})
	if !ok || retry.form != tokens.AAD {
		t.Fatalf("after401 = %v, %v; want an aad retry", retry, ok)
	}
	retry.answered(http.StatusUnauthorized)
	if got := firstForm(host); got != tokens.Bearer {
		t.Errorf("after a refused retry, first form = %v, want bearer", got)
	}
	retry.answered(http.StatusNotFound)
	if got := firstForm(host); got != tokens.AAD {
		t.Errorf("after an accepted retry, first form = %v, want aad", got)
	}
	if got := firstForm(other); got != tokens.Bearer {
		t.Errorf("first form for another host = %v, want bearer", got)
	}
}
