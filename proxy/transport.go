package proxy

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"

	"github.com/entraproxy/entraproxy/metrics"
)

// maxReplayBody is the largest request body kept for a retry or a 307/308
// redirect (README, ENTRAPROXY_AUTH_FORMAT). SSML and chat JSON fit;
// audio uploads stream and are sent once.
const maxReplayBody = 1 << 20

// maxRedirects is how many upstream redirects one request may follow.
const maxRedirects = 3

// authTransport sets the proxy's Authorization on each upstream request. It
// is where a missing token can still become an error (503), never an
// unauthenticated call to Azure.
type authTransport struct {
	auth    *authorizer
	base    http.RoundTripper
	metrics *metrics.Metrics
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	form := t.auth.form(host)
	facts := upstreamFactsOf(req.Context())
	facts.attempt(host, req.URL.EscapedPath())
	tok, err := t.auth.tokens.Token(req.Context())
	if err != nil {
		return nil, tokenUnavailable(err)
	}
	facts.sending(form)
	resp, err := t.base.RoundTrip(withAuthorization(req, t.auth.value(form, tok.Token)))
	facts.answered(resp)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !t.auth.retries() {
		return resp, err
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, nil // a streamed body was sent once and cannot be replayed
	}

	fresh, err := t.auth.tokens.Renew(req.Context(), tok.Token)
	if err != nil || !t.auth.worthRetrying(host, form, tok.Token, fresh.Token) {
		return resp, nil // the upstream's own 401 says more than our renewal failure
	}
	retry := withAuthorization(req, "")
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	discard(resp.Body)
	form = t.auth.retryForm(host, form)
	retry.Header["Authorization"] = []string{t.auth.value(form, fresh.Token)}
	t.metrics.AuthRetry(form.String())
	facts.retrying()
	facts.sending(form)
	resp, err = t.base.RoundTrip(retry)
	facts.answered(resp)
	if err == nil && resp.StatusCode != http.StatusUnauthorized {
		t.auth.learn(host, form)
	}
	return resp, err
}

// withAuthorization returns a shallow copy of req whose header map is its own
// and holds exactly one Authorization: RoundTrippers must not modify the
// request they are given.
func withAuthorization(req *http.Request, value string) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Header = maps.Clone(req.Header)
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header["Authorization"] = []string{value}
	return r
}

// discard drains a little of a body so its connection can be reused, then
// closes it.
func discard(body io.ReadCloser) {
	io.CopyN(io.Discard, body, 64<<10)
	body.Close()
}

// redirectFollower follows upstream redirects (to allowed hosts only) so a
// 3xx never reaches the client, which would then go to Azure without the
// token (docs/SPEECH-SDK-WIRE.md, Entra ID forms and redirects).
type redirectFollower struct {
	next   http.RoundTripper
	client *http.Client // its Transport is set per redirected request
}

func newRedirectFollower(next http.RoundTripper, policy redirectPolicy, m *metrics.Metrics) *redirectFollower {
	return &redirectFollower{next: next, client: &http.Client{
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if e := policy.check(via[len(via)-1].URL, req.URL, len(via)-1); e != nil {
				return e
			}
			m.RedirectFollowed()
			return nil
		},
	}}
}

func (f *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	out := new(http.Request)
	*out = *req
	out.RequestURI = "" // http.Client refuses server requests
	makeReplayable(out)
	// Most answers are not redirects: those take one round trip, without
	// http.Client's work per request (a copy of the headers, its request
	// list and closures; BENCHMARKS.md). A redirect is handed to http.Client
	// as the answer to its own first round trip, so it follows it exactly
	// as if it had sent the request itself.
	resp, err := f.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	if !mustNotPass(resp.StatusCode) {
		return resp, nil
	}
	if loc := resp.Header.Get("Location"); !followable(resp.StatusCode) || loc == "" {
		discard(resp.Body)
		return nil, unfollowed(resp.StatusCode, loc)
	}
	client := *f.client
	client.Transport = &answeredOnce{first: resp, next: f.next}
	resp, err = client.Do(out)
	if err != nil {
		// http.Client wraps errors in *url.Error, whose text repeats the
		// URL; the cause is what classify needs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	if mustNotPass(resp.StatusCode) {
		discard(resp.Body)
		if loc := resp.Header.Get("Location"); !followable(resp.StatusCode) || loc == "" {
			return nil, unfollowed(resp.StatusCode, loc) // a later hop
		}
		// http.Client hands a 307/308 back when it cannot replay the body.
		return nil, &apiError{status: http.StatusBadGateway, code: "upstream_unreachable",
			message: "the upstream redirected a request whose body was streamed and cannot be sent again; send bodies of at most 1 MiB with a Content-Length"}
	}
	return resp, nil
}

// answeredOnce answers its first round trip with a response already
// received and passes the others on to next.
type answeredOnce struct {
	first *http.Response
	next  http.RoundTripper
}

func (t *answeredOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp := t.first; resp != nil {
		t.first = nil
		return resp, nil
	}
	return t.next.RoundTrip(req)
}
