package proxy

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entraproxy/entraproxy/internal/hosts"
	"github.com/entraproxy/entraproxy/metrics"
	"github.com/entraproxy/entraproxy/tokens"
)

// TokenSource hands out the current Entra ID token. *tokens.Source is the
// real one.
type TokenSource interface {
	// Token returns a valid token, or an error when none can be had in time.
	Token(ctx context.Context) (azcore.AccessToken, error)
	// Renew asks for a token other than stale, after the upstream refused it.
	Renew(ctx context.Context, stale string) (azcore.AccessToken, error)
}

// AuthFormat is ENTRAPROXY_AUTH_FORMAT.
type AuthFormat string

const (
	FormatBearer AuthFormat = "bearer"
	FormatAAD    AuthFormat = "aad"
	// FormatAuto sends bearer first; on a 401 it retries once with a fresh
	// token and, where a resource id is set, the aad form, and remembers per
	// upstream host the form that worked.
	FormatAuto AuthFormat = "auto"
)

// authorizer decides how the proxy authorizes itself to an upstream host:
// the form and token of a first request, and what follows a 401. HTTP
// (authTransport) and WebSocket (wsProxy.serve) ask it the same questions,
// so a form learned on one is used by the other.
type authorizer struct {
	tokens     TokenSource
	format     AuthFormat
	resourceID string
	metrics    *metrics.Metrics

	mu      sync.Mutex
	learned map[string]tokens.Form // by upstream host; auto only

	// built keeps, per form, the last header value built, so that the
	// value (1.5-2.5 KB) is built when the token changes, about once an
	// hour, not on every request (BENCHMARKS.md, Profiling).
	built [2]atomic.Pointer[builtValue]
}

type builtValue struct{ token, value string }

// credential is what authorizes one upstream request: a form and the token
// written in it.
type credential struct {
	form  tokens.Form
	token string
}

func newAuthorizer(ts TokenSource, format AuthFormat, resourceID string, m *metrics.Metrics) *authorizer {
	return &authorizer{tokens: ts, format: format, resourceID: resourceID, metrics: m, learned: make(map[string]tokens.Form)}
}

// first is the credential of a first request to host: the configured form,
// or under auto the form learned for host (bearer until one is), with the
// current token. With no token it is the 503 token_unavailable, before
// anything is sent.
func (a *authorizer) first(ctx context.Context, host string) (credential, error) {
	form := tokens.Bearer // auto, until a form is learned
	switch a.format {
	case FormatAAD:
		form = tokens.AAD
	case FormatAuto:
		a.mu.Lock()
		form = a.learned[host]
		a.mu.Unlock()
	}
	tok, err := a.tokens.Token(ctx)
	if err != nil {
		return credential{}, tokenUnavailable(err)
	}
	return credential{form: form, token: tok.Token}, nil
}

// header is c as an Authorization value.
func (a *authorizer) header(c credential) string {
	if b := a.built[c.form].Load(); b != nil && b.token == c.token {
		return b.value
	}
	v := tokens.Authorization(c.form, a.resourceID, c.token)
	a.built[c.form].Store(&builtValue{token: c.token, value: v})
	return v
}

// after401 decides what follows the upstream's 401 to a request to host
// that carried sent. Only auto retries, once: with a renewed token, in the
// other form where a resource id allows aad (Azure OpenAI never gets the
// aad form: it is Speech's alone; docs/SPEECH-SDK-WIRE.md, Entra ID forms
// and redirects), else in the same form. ok is false when no retry is
// worth sending: the renewal failed (the upstream's own 401 then says
// more), or it changed nothing, neither token nor form (Renew hands back
// the same token within 10 s of the last renewal, and resending would only
// double the upstream's load while a role is missing). A retry is counted
// in the metrics here; the caller sends it and reports the answer with
// answered, which remembers the form for host.
func (a *authorizer) after401(ctx context.Context, host string, sent credential) (retry *authRetry, ok bool) {
	if a.format != FormatAuto {
		return nil, false
	}
	fresh, err := a.tokens.Renew(ctx, sent.token)
	if err != nil {
		return nil, false
	}
	form := tokens.Bearer
	if sent.form == tokens.Bearer && a.resourceID != "" && !hosts.IsOpenAI(host) {
		form = tokens.AAD
	}
	if fresh.Token == sent.token && form == sent.form {
		return nil, false
	}
	a.metrics.AuthRetry(form.String())
	return &authRetry{credential: credential{form: form, token: fresh.Token}, a: a, host: host}, true
}

// authRetry is the one retry after a 401, as after401 chose it.
type authRetry struct {
	credential
	a    *authorizer
	host string
}

// answered reports the upstream's status for the retry: anything but
// another 401 means the upstream took its form, which later requests to
// the host then start with (a WebSocket session reports its 101 before it
// runs, so sessions opened meanwhile, while it lasts minutes, start with
// it too).
func (r *authRetry) answered(status int) {
	if status == http.StatusUnauthorized {
		return
	}
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	r.a.learned[r.host] = r.form
}
