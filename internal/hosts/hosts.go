// Package hosts owns what entraproxy knows about host names: which ones are
// loopback, what an Azure host name is (a resource's custom domain, Azure
// OpenAI's, a shared regional endpoint, in which cloud), the host patterns
// of ENTRAPROXY_REDIRECT_HOSTS (and their default) and
// ENTRAPROXY_ALLOWED_HOSTS, and which Host header values a listener accepts
// (DNS rebinding protection). Config, the proxy, the admin listener and the
// doctor all decide through it, so they never disagree.
package hosts

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// IsLoopback reports whether host, a host name or IP address without a
// port (IPv6 with or without brackets), names this machine's loopback
// interface without asking DNS: "localhost" in any letter case, or an
// address in 127.0.0.0/8 or ::1 (also written IPv4-mapped,
// ::ffff:127.0.0.1). Other names, *.localhost included, are not loopback
// here: whether they resolve to it depends on the resolver.
func IsLoopback(host string) bool {
	host = canonicalHost(host)
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

// canonicalHost puts a host (no port) in the form patterns are compared in:
// lower case, no brackets, no trailing dot, IP addresses in netip's form
// (IPv4-mapped IPv6 as IPv4). Brackets around anything but an IPv6 address
// give "", which matches nothing.
func canonicalHost(host string) string {
	host = strings.ToLower(host)
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if addr, err := netip.ParseAddr(inner); !ok || err != nil || !addr.Is6() {
			return ""
		}
		host = inner
	}
	host = strings.TrimSuffix(host, ".")
	if addr, err := netip.ParseAddr(host); err == nil && addr.Zone() == "" {
		return addr.Unmap().String()
	}
	return host
}

// splitHostPort splits a URL's Host or a Host header value into a
// canonical host and a port in its canonical form (the number in decimal,
// "" when there is none). portOK is false when the port is not a TCP port
// number (ParsePort): such a value names no listener, and matches no
// pattern.
func splitHostPort(hostport string) (host, port string, portOK bool) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return canonicalHost(hostport), "", true
	}
	if strings.HasPrefix(hostport, "[") {
		h = "[" + h + "]" // SplitHostPort drops the brackets of any host
	}
	n, ok := ParsePort(p)
	if !ok {
		return canonicalHost(h), p, false
	}
	return canonicalHost(h), strconv.Itoa(n), true
}

// ParsePort parses a port as written after a host's ":" (a Host header, a
// URL, a host pattern): one to five ASCII digits, at most 65535 (a TCP
// port, RFC 9293). Leading zeros count towards the five, so a Host of
// kilobytes of zeros before a 1 is no port at all; an empty port ("host:",
// which RFC 3986 allows) is refused too, since no browser or SDK writes
// one. ok is false for anything else.
func ParsePort(p string) (port int, ok bool) {
	if len(p) == 0 || len(p) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// Patterns is a list of host patterns, as ENTRAPROXY_REDIRECT_HOSTS and
// ENTRAPROXY_ALLOWED_HOSTS are written:
//
//   - "host" matches that host on any port;
//   - "host:port" (IPv6 "[::1]:8080") matches that host on that port only;
//   - "*.domain" matches one or more labels before domain, on any port.
//
// Letter case, brackets around IPv6 addresses and a trailing dot do not
// matter; IP addresses compare as addresses ("[0:0::1]" is "[::1]"). The
// zero value matches nothing. PatternProblem says which entries are valid.
type Patterns struct {
	list []pattern
}

type pattern struct {
	host     string // canonical; for a wildcard, the domain after "*."
	port     string // "" for any port
	wildcard bool
}

// NewPatterns compiles list; entries should have passed PatternProblem.
func NewPatterns(list []string) Patterns {
	var ps Patterns
	for _, p := range list {
		rest, wildcard := strings.CutPrefix(strings.ToLower(p), "*.")
		host, port, ok := splitHostPort(rest)
		if !ok {
			continue // refused by PatternProblem; it would match nothing
		}
		ps.list = append(ps.list, pattern{host: host, port: port, wildcard: wildcard})
	}
	return ps
}

// Match reports whether hostport (a URL's Host or a Host header value, with
// or without a port) matches one of the patterns. Ports compare as numbers
// ("08080" is 8080). An empty host matches none, and so does a port that
// is not a number from 0 to 65535 ("localhost:99999", "localhost:abc",
// "localhost:"), whatever the patterns.
func (ps Patterns) Match(hostport string) bool {
	host, port, ok := splitHostPort(hostport)
	if !ok || host == "" {
		return false
	}
	for _, p := range ps.list {
		if p.port != "" && p.port != port {
			continue
		}
		if !p.wildcard {
			if p.host == host {
				return true
			}
			continue
		}
		// What "*." stands for is one or more DNS labels: "0[:" is none.
		labels, ok := strings.CutSuffix(host, "."+p.host)
		if ok && !slices.ContainsFunc(strings.Split(labels, "."), func(l string) bool { return !isLabel(l) }) {
			return true
		}
	}
	return false
}

// PatternProblem says what is wrong with one pattern of a Patterns list,
// or returns "" when it is valid. The message suits a configuration error
// that names the variable and quotes the entry.
func PatternProblem(p string) string {
	if p == "" {
		return "empty entry; remove the extra comma"
	}
	if strings.Contains(p, "://") || strings.ContainsAny(p, "/?#@ ") {
		return "want a host, *.domain or host:port, without scheme or path"
	}
	host, wildcard := strings.CutPrefix(p, "*.")
	if strings.Contains(host, "*") {
		return "* is allowed only as a leading *. label"
	}
	if wildcard {
		if h, port, err := net.SplitHostPort(host); err == nil {
			return fmt.Sprintf("a wildcard pattern matches any port; drop :%s (write *.%s)", port, h)
		}
		labels := strings.Split(strings.TrimSuffix(host, "."), ".")
		if len(labels) < 2 || slices.Contains(labels, "") {
			return "a wildcard needs a domain of at least two labels after *. (*.example.com), not a whole top-level domain"
		}
		return ""
	}
	if h, port, err := net.SplitHostPort(host); err == nil {
		if h == "" || port == "" {
			return "want host:port"
		}
		if _, ok := ParsePort(port); !ok {
			return "bad port; want a number from 0 to 65535, as in localhost:8080"
		}
	}
	return ""
}

// HostCheck decides which Host header values a listener accepts. A web
// page on a host name the attacker controls can have that name resolve to
// 127.0.0.1 ("DNS rebinding",
// https://en.wikipedia.org/wiki/DNS_rebinding); the browser then treats the
// listener as the page's own origin, so the Host header, which still names
// the attacker's host, is what gives it away.
//
// The zero value accepts any Host.
type HostCheck struct {
	allowed  Patterns
	restrict bool     // false: any Host
	names    []string // the patterns as written, for messages
}

// defaultLoopbackHosts are the Host names a loopback listener accepts when
// no list is configured, on any port; the listener's own address is added
// to them. Browsers write these names in the Host header exactly so
// (https://url.spec.whatwg.org/#host-serializing).
func defaultLoopbackHosts() []string { return []string{"localhost", "127.0.0.1", "[::1]"} }

// ForListener returns the check for a listener on addr (host:port, as in
// ENTRAPROXY_LISTEN) with the configured patterns (ENTRAPROXY_ALLOWED_HOSTS):
//
//   - configured patterns, when any, are the only Host values accepted, on
//     any listener;
//   - else, on a loopback address (IsLoopback), localhost, 127.0.0.1,
//     [::1] and addr's own host, on any port;
//   - else (all interfaces, a LAN or pod address) any Host: clients reach
//     such a listener by names and addresses the proxy cannot know.
//
// Where the list applies, a Host whose port is not a number from 0 to
// 65535 matches none of it (Patterns.Match) and is refused.
func ForListener(addr string, configured []string) HostCheck {
	if len(configured) > 0 {
		return HostCheck{allowed: NewPatterns(configured), restrict: true, names: slices.Clone(configured)}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !IsLoopback(host) {
		return HostCheck{}
	}
	names := defaultLoopbackHosts()
	if !NewPatterns(names).Match(host) {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		names = append(names, host)
	}
	return HostCheck{allowed: NewPatterns(names), restrict: true, names: names}
}

// Allows reports whether a request with this Host header value may pass.
func (c HostCheck) Allows(host string) bool {
	return !c.restrict || c.allowed.Match(host)
}

// AllowsRequest reports whether r may pass: its Host is allowed, or it is
// an HTTP/1.0 request without one, which is then taken as addressed to the
// listener it came to. RFC 9112 section 3.2 requires Host of HTTP/1.1
// clients only (https://www.rfc-editor.org/rfc/rfc9112#section-3.2), and
// net/http answers an HTTP/1.1 request without it 400 before any handler
// runs; an HTTP/1.0 client may leave it out (curl --http1.0 -H 'Host:').
// DNS rebinding cannot make such a request: browsers always send Host.
func (c HostCheck) AllowsRequest(r *http.Request) bool {
	if r.Host == "" && !r.ProtoAtLeast(1, 1) {
		return true
	}
	return c.Allows(r.Host)
}

// Allowed lists the accepted Host patterns as written, for messages; nil
// when any Host is accepted.
func (c HostCheck) Allowed() []string {
	if !c.restrict {
		return nil
	}
	return slices.Clone(c.names)
}
