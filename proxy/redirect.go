package proxy

import (
	"net"
	"slices"
	"strings"
)

// hostMatcher decides which hosts an upstream redirect may lead to
// (ENTRAPROXY_REDIRECT_HOSTS).
type hostMatcher struct {
	patterns []string // lower case
}

func newHostMatcher(patterns []string) hostMatcher {
	m := hostMatcher{}
	for _, p := range patterns {
		m.patterns = append(m.patterns, strings.ToLower(p))
	}
	return m
}

// allows reports whether hostport (a URL's Host, with or without a port) is
// allowed. "*.example.com" matches one or more labels before example.com and
// any port; "host" matches that host on any port; "host:port" only that port.
func (m hostMatcher) allows(hostport string) bool {
	hostport = strings.ToLower(hostport)
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return false
	}
	for _, p := range m.patterns {
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			labels, ok := strings.CutSuffix(host, "."+suffix)
			if ok && labels != "" && !slices.Contains(strings.Split(labels, "."), "") {
				return true
			}
			continue
		}
		if p == host || p == hostport {
			return true
		}
	}
	return false
}
