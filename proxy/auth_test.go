package proxy

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entraproxy/entraproxy/tokens"
)

// sameTokenSource renews to the same token, as tokens.Source does within 10 s
// of its last renewal, or an azidentity cache would.
type sameTokenSource struct{ *fakeTokens }

func (s sameTokenSource) Renew(ctx context.Context, stale string) (azcore.AccessToken, error) {
	return s.fakeTokens.Token(ctx)
}

// A 401 that a retry cannot change (same token, same form) is not sent twice.
func TestAutoSkipsUselessRetry(t *testing.T) {
	f := newHTTPFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}), func(o *Options) {
		o.AuthFormat = FormatAuto
		o.ResourceID = ""
	})
	f.proxy.auth.tokens = sameTokenSource{f.tokens}
	resp, _ := f.get(t, "/openai/v1/models")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want the upstream's 401", resp.StatusCode)
	}
	if n := f.seen.count(); n != 1 {
		t.Errorf("upstream requests = %d, want 1: retrying with the same token and form changes nothing", n)
	}
}

// Azure OpenAI never gets Speech's aad form, even under auto with a
// resource id.
func TestRetryFormNeverAADForOpenAI(t *testing.T) {
	a := newAuthorizer(newFakeTokens("t"), FormatAuto, "/subscriptions/x")
	for _, host := range []string{"name.openai.azure.com", "NAME.openai.azure.com:443", "name.openai.azure.us"} {
		if got := a.retryForm(host, tokens.Bearer); got != tokens.Bearer {
			t.Errorf("retryForm(%s, bearer) = %v, want bearer", host, got)
		}
	}
	if got := a.retryForm("name.cognitiveservices.azure.com", tokens.Bearer); got != tokens.AAD {
		t.Errorf("retryForm(speech host, bearer) = %v, want aad", got)
	}
}
