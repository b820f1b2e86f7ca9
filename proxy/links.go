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
	return rewriteJSONURLs(resp, newURLRewriter(hosts, client), p.buffers)
}

// upstreamHosts are the upstream's host and every host the proxy was
// redirected to on the way to resp (http.Client chains them through
// Request.Response), in lower case.
func (p *Proxy) upstreamHosts(resp *http.Response) []string {
	if resp.Request.Response == nil && strings.EqualFold(resp.Request.URL.Host, p.upstream.Host) {
		return p.upstreamOnly // no redirect: the common case
	}
	hosts := slices.Clone(p.upstreamOnly)
	for req := resp.Request; req != nil; req = req.Response.Request {
		if h := strings.ToLower(req.URL.Host); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
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
		if err != nil || !slices.Contains(hosts, strings.ToLower(u.Host)) {
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
// an answer encoded anyway passes as it is. An answer read whole is read
// into one of bufs' buffers when it fits (most JSON answers, chat
// completions among them, do), which goes back when ReverseProxy closes the
// body.
func rewriteJSONURLs(resp *http.Response, rw *urlRewriter, bufs *copyBuffers) error {
	if !isJSON(resp.Header.Get("Content-Type")) || resp.Body == nil || resp.Body == http.NoBody ||
		resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil
	}
	if n := resp.ContentLength; n >= 0 && n <= maxRewrittenBody {
		buf, body, err := readAnswer(resp.Body, int(n), bufs)
		resp.Body.Close()
		if err != nil {
			bufs.Put(buf)
			return err // the upstream's answer ended early: 502
		}
		if !rw.anyIn(body) {
			resp.Body = &bufferedBody{Reader: bytes.NewReader(body), buf: buf, bufs: bufs}
			return nil
		}
		out, _, _ := transform.Bytes(rw, body)
		bufs.Put(buf)
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

// readAnswer reads an answer of n bytes whole: into one of bufs' buffers
// (buf) when it fits, else into memory that grows as the bytes arrive, so
// that an answer declaring 1 MiB takes 1 MiB only once it has sent it.
func readAnswer(r io.Reader, n int, bufs *copyBuffers) (buf, body []byte, err error) {
	if n <= copyBufferSize {
		buf = bufs.Get()
		body = buf[:n]
		_, err = io.ReadFull(r, body)
		return buf, body, err
	}
	var b bytes.Buffer
	b.Grow(copyBufferSize)
	if _, err = b.ReadFrom(io.LimitReader(r, int64(n))); err == nil && b.Len() < n {
		err = io.ErrUnexpectedEOF
	}
	return nil, b.Bytes(), err
}

// bufferedBody is an answer read whole into a lent buffer, given back on
// Close.
type bufferedBody struct {
	*bytes.Reader
	buf  []byte
	bufs *copyBuffers
}

func (b *bufferedBody) Close() error {
	if b.buf != nil {
		b.bufs.Put(b.buf)
		b.buf = nil
	}
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
// It holds no state between calls (Reset does nothing), so one value may
// serve concurrent streams; it holds back at most one URL prefix's bytes.
type urlRewriter struct {
	hosts      []string // lower case, not to be changed
	client     clientAddr
	clientHost string // as it is written inside a JSON string
}

// urlSchemes are tried longest first: "http" is a prefix of "https".
var urlSchemes = [...]string{"https", "http", "wss", "ws"}

var urlSeparators = [...]string{"://", `:\/\/`}

// newURLRewriter rewrites URLs of hosts (lower case) to reach the proxy as
// client did.
func newURLRewriter(hosts []string, client clientAddr) *urlRewriter {
	rw := &urlRewriter{hosts: hosts, client: client, clientHost: client.host}
	if strings.ContainsAny(client.host, `"\`) || strings.ContainsFunc(client.host, func(r rune) bool { return r < ' ' }) {
		quoted, _ := json.Marshal(client.host)
		rw.clientHost = string(quoted[1 : len(quoted)-1])
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
		m, more := rw.match(src[nSrc:], atEOF)
		switch {
		case more:
			return nDst, nSrc, transform.ErrShortSrc
		case m.n == 0:
			if nDst == len(dst) {
				return nDst, nSrc, transform.ErrShortDst
			}
			dst[nDst] = src[nSrc]
			nDst, nSrc = nDst+1, nSrc+1
		default:
			scheme := rw.client.scheme(m.scheme)
			if len(dst)-nDst < len(scheme)+len(m.sep)+len(rw.clientHost) {
				return nDst, nSrc, transform.ErrShortDst
			}
			nDst += copy(dst[nDst:], scheme)
			nDst += copy(dst[nDst:], m.sep)
			nDst += copy(dst[nDst:], rw.clientHost)
			nSrc += m.n
		}
	}
	return nDst, nSrc, nil
}

// anyIn reports whether b, a whole text, holds a URL rw rewrites.
func (rw *urlRewriter) anyIn(b []byte) bool {
	for i := 0; i < len(b); i++ {
		j := bytes.IndexAny(b[i:], "hHwW")
		if j < 0 {
			return false
		}
		i += j
		if m, _ := rw.match(b[i:], true); m.n > 0 {
			return true
		}
	}
	return false
}

// urlMatch is an upstream URL's prefix: scheme, separator and host, n bytes
// in all; n is 0 for none.
type urlMatch struct {
	scheme, sep string
	n           int
}

// match finds the upstream URL prefix b starts with, host end included.
// more reports that b may start one and more input would tell.
func (rw *urlRewriter) match(b []byte, atEOF bool) (m urlMatch, more bool) {
	for _, scheme := range urlSchemes {
		ok, needMore := hasPrefixFoldASCII(b, scheme, atEOF)
		more = more || needMore
		if !ok {
			continue
		}
		for _, sep := range urlSeparators {
			rest := b[len(scheme):]
			ok, needMore := hasPrefixFoldASCII(rest, sep, atEOF)
			more = more || needMore
			if !ok {
				continue
			}
			rest = rest[len(sep):]
			for _, host := range rw.hosts {
				ok, needMore := hasPrefixFoldASCII(rest, host, atEOF)
				more = more || needMore
				if !ok {
					continue
				}
				n := len(scheme) + len(sep) + len(host)
				switch {
				case len(b) > n:
					if isHostEnd(b[n]) {
						return urlMatch{scheme, sep, n}, false
					}
				case atEOF:
					return urlMatch{scheme, sep, n}, false
				default:
					more = true // the next byte tells
				}
			}
		}
	}
	return urlMatch{}, more
}

// hasPrefixFoldASCII reports whether b starts with lower, ignoring ASCII
// case; more, whether b is a proper prefix of it and more input may tell.
func hasPrefixFoldASCII(b []byte, lower string, atEOF bool) (ok, more bool) {
	n := min(len(b), len(lower))
	for i := range n {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false, false
		}
	}
	if n < len(lower) {
		return false, !atEOF
	}
	return true, false
}

// isHostEnd reports whether c ends a URL's host in JSON text: the path,
// query or fragment begins, the string ends, or an escape (\/, \u0026).
func isHostEnd(c byte) bool {
	return c == '/' || c == '?' || c == '#' || c == '"' || c == '\\'
}
