package proxy

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// redirectPolicy is the redirect rule (README, "Redirects never reach the
// client"), for HTTP and WebSocket alike: an upstream 3xx is never handed to
// the client (it would then go to Azure without the token); the proxy
// follows it, at most maxRedirects hops, only to allowed hosts, and never
// from TLS to plain text.
type redirectPolicy struct {
	allowed hosts.Patterns // ENTRAPROXY_REDIRECT_HOSTS
}

// check decides an upstream redirect: the answer status with its location
// to a request for from, after hops redirects already followed. It returns
// where to go next, location resolved against from without its fragment
// and without credential query parameters, or the error to answer instead.
// HTTP (redirectFollower, through http.Client) and WebSocket
// (wsProxy.serve) follow exactly the redirects it allows.
func (rp redirectPolicy) check(from *url.URL, status int, location string, hops int) (*url.URL, *apiError) {
	if !followable(status) || location == "" {
		return nil, unfollowed(status, location)
	}
	loc, err := url.Parse(location)
	if err != nil {
		return nil, &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable, message: "the upstream sent an unreadable redirect", cause: err}
	}
	to := from.ResolveReference(loc)
	switch {
	case hops >= maxRedirects:
		return nil, &apiError{status: http.StatusBadGateway, code: CodeUpstreamUnreachable,
			message: "the upstream redirected more than " + strconv.Itoa(maxRedirects) + " times"}
	case !rp.allowed.Match(to.Host):
		return nil, redirectNotAllowed(to.Host)
	case isTLSScheme(from.Scheme) && !isTLSScheme(to.Scheme):
		return nil, &apiError{status: http.StatusBadGateway, code: CodeRedirectNotAllowed,
			message: "the upstream redirected from TLS to plain text; entraproxy sends its token over TLS only"}
	}
	to.RawQuery = stripCredentialQuery(to.RawQuery)
	to.Fragment, to.RawFragment = "", ""
	return to, nil
}

func isTLSScheme(scheme string) bool { return scheme == "https" || scheme == "wss" }

// followable reports whether a status is a redirect the proxy follows (with
// a Location): 301, 302, 303, 307, 308.
func followable(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// mustNotPass reports whether an upstream answer is a 3xx the client must
// not see: every 3xx but 304 Not Modified, which is a cache answer.
func mustNotPass(code int) bool {
	return code/100 == 3 && code != http.StatusNotModified
}

// unfollowed is the answer for a 3xx that was not followed for a reason
// other than the policy (no Location, a kind the proxy does not follow).
func unfollowed(code int, location string) *apiError {
	if location == "" {
		return &apiError{status: http.StatusBadGateway, code: CodeRedirectNotAllowed,
			message: "the upstream answered " + strconv.Itoa(code) + " without a Location; entraproxy never passes a redirect on to the client"}
	}
	return &apiError{status: http.StatusBadGateway, code: CodeRedirectNotAllowed,
		message: "the upstream answered " + strconv.Itoa(code) + ", a redirect entraproxy does not follow"}
}
