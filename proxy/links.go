package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/transform"
)

// An answer that names the URL to call next must not send the client to
// Azure without the proxy: a created batch transcription's Location, a
// long-running operation's Operation-Location, the self, links and
// @nextLink URLs in batch transcription JSON, which Microsoft's batch
// samples follow. Such URLs on the upstream, or on a host the proxy was
// redirected to for this request, are pointed at the proxy as the client
// addressed it (nginx's proxy_redirect and sub_filter do the like). URLs of
// other hosts pass unchanged: the proxy forwards only to its upstream.

// clientAddr is how the client addressed the proxy: its Host header and
// whether it came over TLS.
type clientAddr struct {
	host string
	tls  bool
}

type clientAddrKey struct{}

// scheme is the scheme that reaches the proxy as the client did, for a URL
// of scheme orig (ws or wss stays a WebSocket URL).
func (c clientAddr) scheme(orig string) string {
	ws := strings.EqualFold(orig, "ws") || strings.EqualFold(orig, "wss")
	switch {
	case ws && c.tls:
		return "wss"
	case ws:
		return "ws"
	case c.tls:
		return "https"
	}
	return "http"
}

// modifyResponse is ReverseProxy's ModifyResponse: it drops the upstream's
// CORS headers (the proxy answers CORS itself) and points the URLs an
// upstream answer names at the proxy.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	dropUpstreamCORS(resp.Header)
	client, _ := resp.Request.Context().Value(clientAddrKey{}).(clientAddr)
	if client.host == "" {
		return nil // an HTTP/1.0 client that sent no Host: no address to point at
	}
	hosts := p.upstreamHosts(resp)
	if resp.StatusCode/100 == 2 {
		pointLocationsAtProxy(resp.Header, hosts, client)
	}
	if p.keepBodyURLs {
		return nil
	}
	return rewriteJSONURLs(resp, newURLRewriter(hosts, client))
}

// upstreamHosts are the upstream's host and every host the proxy was
// redirected to on the way to resp (http.Client chains them through
// Request.Response).
func (p *Proxy) upstreamHosts(resp *http.Response) []string {
	hosts := []string{p.upstream.Host}
	for req := resp.Request; req != nil; req = req.Response.Request {
		if !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, req.URL.Host) }) {
			hosts = append(hosts, req.URL.Host)
		}
		if req.Response == nil {
			break
		}
	}
	return hosts
}

// locationHeaders name resources the client is expected to call next: a
// created batch transcription (201 + Location), an Azure long-running
// operation (Operation-Location).
var locationHeaders = [...]string{"Location", "Content-Location", "Operation-Location"}

// pointLocationsAtProxy rewrites those headers of a 2xx answer when they
// point at one of hosts. Redirects (3xx) never get here; the proxy follows
// them.
func pointLocationsAtProxy(h http.Header, hosts []string, client clientAddr) {
	for _, name := range locationHeaders {
		v := h[name]
		if len(v) != 1 {
			continue // the common case: absent
		}
		u, err := url.Parse(v[0])
		if err != nil || !slices.ContainsFunc(hosts, func(host string) bool { return strings.EqualFold(u.Host, host) }) {
			continue
		}
		u.Scheme, u.Host = client.scheme(u.Scheme), client.host
		h[name] = []string{u.String()}
	}
}

// maxRewrittenBody is the longest JSON answer of known length rewritten in
// memory, so it keeps an exact Content-Length. Longer answers, and those of
// unknown length, are rewritten as they stream and go to the client chunked.
const maxRewrittenBody = 1 << 20

// rewriteJSONURLs points the upstream URLs inside a JSON answer at the proxy.
// The proxy asks the upstream for gzip itself (rewrite drops the client's
// Accept-Encoding) and http.Transport decodes it, so JSON arrives readable;
// an answer encoded anyway passes as it is.
func rewriteJSONURLs(resp *http.Response, rw *urlRewriter) error {
	if !isJSON(resp.Header.Get("Content-Type")) || resp.Body == nil || resp.Body == http.NoBody ||
		resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil
	}
	if n := resp.ContentLength; n >= 0 && n <= maxRewrittenBody {
		body := make([]byte, n)
		_, err := io.ReadFull(resp.Body, body)
		resp.Body.Close()
		if err != nil {
			return err // the upstream's answer ended early: 502
		}
		out, _, _ := transform.Bytes(rw, body)
		resp.Body = io.NopCloser(bytes.NewReader(out))
		resp.ContentLength = int64(len(out))
		resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
		return nil
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{transform.NewReader(resp.Body, rw), resp.Body}
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

// isJSON reports whether a Content-Type is JSON: application/json,
// text/json, or a +json type such as application/problem+json (RFC 6839).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"))
}

// urlRewriter is a transform.Transformer that points absolute URLs of the
// upstream hosts at the proxy, in JSON text as it streams. A URL is the
// upstream's when it starts with a scheme (http, https, ws, wss, any case),
// "://" (or JSON's escaped ":\/\/"), one of the hosts (any case), and the
// host is followed by '/', '?', '#', the end of the string, or an escape;
// so "https://HOST.evil.example" or "https://HOST@evil.example" are not.
// It holds back at most the length of the longest such prefix.
type urlRewriter struct {
	prefixes []urlPrefix
}

type urlPrefix struct {
	match   []byte // lower case
	replace []byte
}

func newURLRewriter(hosts []string, client clientAddr) *urlRewriter {
	quoted, _ := json.Marshal(client.host)
	clientHost := string(quoted[1 : len(quoted)-1])
	rw := &urlRewriter{}
	for _, host := range hosts {
		for _, scheme := range []string{"https", "http", "wss", "ws"} {
			for _, sep := range []string{"://", `:\/\/`} {
				rw.prefixes = append(rw.prefixes, urlPrefix{
					match:   []byte(strings.ToLower(scheme + sep + host)),
					replace: []byte(client.scheme(scheme) + sep + clientHost),
				})
			}
		}
	}
	return rw
}

func (rw *urlRewriter) Reset() {}

func (rw *urlRewriter) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		// Copy up to the next byte that may start a scheme.
		i := bytes.IndexAny(src[nSrc:], "hHwW")
		if i < 0 {
			i = len(src) - nSrc
		}
		if i > 0 {
			n := copy(dst[nDst:], src[nSrc:nSrc+i])
			nDst, nSrc = nDst+n, nSrc+n
			if n < i {
				return nDst, nSrc, transform.ErrShortDst
			}
			continue
		}
		p, more := rw.match(src[nSrc:], atEOF)
		switch {
		case more:
			return nDst, nSrc, transform.ErrShortSrc
		case p == nil:
			if nDst == len(dst) {
				return nDst, nSrc, transform.ErrShortDst
			}
			dst[nDst] = src[nSrc]
			nDst, nSrc = nDst+1, nSrc+1
		default:
			if len(dst)-nDst < len(p.replace) {
				return nDst, nSrc, transform.ErrShortDst
			}
			nDst += copy(dst[nDst:], p.replace)
			nSrc += len(p.match)
		}
	}
	return nDst, nSrc, nil
}

// match finds the prefix b starts with, host boundary included. more
// reports that b may start one and more input would tell.
func (rw *urlRewriter) match(b []byte, atEOF bool) (p *urlPrefix, more bool) {
	for i := range rw.prefixes {
		p := &rw.prefixes[i]
		n := min(len(b), len(p.match))
		if !equalFoldASCII(b[:n], p.match[:n]) {
			continue
		}
		switch {
		case len(b) > len(p.match):
			if isHostEnd(b[len(p.match)]) {
				return p, false
			}
		case atEOF:
			if len(b) == len(p.match) {
				return p, false
			}
		default:
			more = true
		}
	}
	return nil, more
}

// isHostEnd reports whether c ends a URL's host in JSON text: the path,
// query or fragment begins, the string ends, or an escape (\/, \u0026).
func isHostEnd(c byte) bool {
	return c == '/' || c == '?' || c == '#' || c == '"' || c == '\\'
}

// equalFoldASCII reports whether b equals lower, a lower-case ASCII string,
// ignoring ASCII case.
func equalFoldASCII(b, lower []byte) bool {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
