package proxy

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entraproxy/entraproxy/internal/hosts"
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

// authorizer writes the Authorization header for one upstream host. HTTP and
// WebSocket share it, so a form learned on one is used by the other.
type authorizer struct {
	tokens     TokenSource
	format     AuthFormat
	resourceID string

	mu      sync.Mutex
	learned map[string]tokens.Form // by upstream host; auto only

	// built keeps, per form, the last header value built, so that the
	// value (1.5-2.5 KB) is built when the token changes, about once an
	// hour, not on every request (BENCHMARKS.md, Profiling).
	built [2]atomic.Pointer[builtValue]
}

type builtValue struct{ token, value string }

func newAuthorizer(ts TokenSource, format AuthFormat, resourceID string) *authorizer {
	return &authorizer{tokens: ts, format: format, resourceID: resourceID, learned: make(map[string]tokens.Form)}
}

// form is the form to try first for host.
func (a *authorizer) form(host string) tokens.Form {
	switch a.format {
	case FormatAAD:
		return tokens.AAD
	case FormatBearer:
		return tokens.Bearer
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.learned[host] // zero value: Bearer
}

// retries reports whether a 401 earns one more try (auto only).
func (a *authorizer) retries() bool { return a.format == FormatAuto }

// retryForm is the form for the one retry after form got a 401 from host:
// the other form when a resource id allows aad, else the same form with a
// fresh token. Azure OpenAI never gets the aad form: it is Speech's alone
// (docs/SPEECH-SDK-WIRE.md, Entra ID forms and redirects).
func (a *authorizer) retryForm(host string, form tokens.Form) tokens.Form {
	if a.resourceID == "" || isOpenAIHost(host) {
		return tokens.Bearer
	}
	if form == tokens.AAD {
		return tokens.Bearer
	}
	return tokens.AAD
}

// learn remembers that form worked for host.
func (a *authorizer) learn(host string, form tokens.Form) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.learned[host] = form
}

// worthRetrying reports whether a retry after a 401 could change anything:
// a new token or another form. Renew may hand back the same token (it asks
// the credential at most once per 10 s), and sending the same request again
// would only double the upstream's load while a role is missing.
func (a *authorizer) worthRetrying(host string, form tokens.Form, stale, fresh string) bool {
	return fresh != stale || a.retryForm(host, form) != form
}

func isOpenAIHost(host string) bool {
	return hosts.IsOpenAI(host)
}

func (a *authorizer) value(form tokens.Form, token string) string {
	if b := a.built[form].Load(); b != nil && b.token == token {
		return b.value
	}
	v := tokens.Authorization(form, a.resourceID, token)
	a.built[form].Store(&builtValue{token: token, value: v})
	return v
}
