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
	"unicode"
	"unicode/utf8"

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

// urlRewriter is a transform.Transformer that points links to the upstream
// hosts at the proxy, in JSON text as it streams. Only links are rewritten,
// never text that mentions a URL (a Translator request translating "our
// endpoint is https://HOST/" must come back as it was): a link is a JSON
// string value (not an object key) that is, whole, an absolute URL of one of
// the hosts: it starts with a scheme (http, https, ws, wss, any case), "://"
// (or JSON's escaped ":\/\/"), one of the hosts (any case), and the host is
// followed by '/', '?', '#' (written plain or escaped) or the end of the
// string, so "https://HOST.evil.example" or "https://HOST@evil.example" are
// not; and it holds no whitespace, plain or escaped. Only the scheme and
// host are replaced.
//
// It keeps state between calls (one per answer): a string that may be a link
// is held until its end, at most maxLinkHeld bytes, and output that does
// not fit in dst waits for the next call, so a replacement of any length
// (a long Host) gets through.
type urlRewriter struct {
	hosts      []string // lower case, not to be changed
	client     clientAddr
	clientHost string // as it is written inside a JSON string

	state    linkState
	escaped  bool   // in a string, the last byte was a backslash that escapes the next
	prefixed bool   // stHold: held starts with an upstream URL's scheme and host
	held     []byte // stHold, stAfter: the string from after its opening quote
	out      []byte // output that did not fit in dst, written first next time
}

// linkState is where urlRewriter is in the JSON text.
type linkState uint8

const (
	stOutside linkState = iota // between strings
	stHold                     // in a string that may be a link: held
	stPass                     // in a string that is no link: copied
	stAfter                    // after a link's closing quote: a ':' next makes it a key
)

// maxLinkHeld is the longest string, in bytes, held to see whether it is a
// link; a longer one is not rewritten. No Azure front end accepts a URL near
// it: HTTP.sys, in front of IIS, limits a request line to 16 KiB by default
// (MaxFieldLength,
// https://learn.microsoft.com/troubleshoot/developer/webapps/iis/iisadmin-service-inetinfo/httpsys-registry-windows).
const maxLinkHeld = 16 << 10

// urlSchemes are tried longest first: "http" is a prefix of "https".
var urlSchemes = [...]string{"https", "http", "wss", "ws"}

var urlSeparators = [...]string{"://", `:\/\/`}

// newURLRewriter rewrites links to hosts (lower case) to reach the proxy as
// client did.
func newURLRewriter(hosts []string, client clientAddr) *urlRewriter {
	rw := &urlRewriter{hosts: hosts, client: client, clientHost: client.host}
	if strings.ContainsAny(client.host, `"\`) || strings.ContainsFunc(client.host, func(r rune) bool { return r < ' ' }) {
		quoted, _ := json.Marshal(client.host)
		rw.clientHost = string(quoted[1 : len(quoted)-1])
	}
	return rw
}

func (rw *urlRewriter) Reset() {
	rw.state, rw.escaped, rw.prefixed = stOutside, false, false
	rw.held, rw.out = rw.held[:0], rw.out[:0]
}

func (rw *urlRewriter) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	nDst = copy(dst, rw.out)
	rw.out = rw.out[:copy(rw.out, rw.out[nDst:])]
	for nSrc < len(src) {
		if len(rw.out) > 0 {
			return nDst, nSrc, transform.ErrShortDst // dst is full
		}
		switch rw.state {
		case stOutside:
			nDst, nSrc = rw.outside(dst, src, nDst, nSrc)
		case stPass:
			nDst, nSrc = rw.pass(dst, src, nDst, nSrc)
		case stHold:
			nDst, nSrc = rw.hold(dst, src, nDst, nSrc)
		case stAfter:
			nDst, nSrc = rw.after(dst, src, nDst, nSrc)
		}
	}
	if atEOF {
		switch rw.state {
		case stHold: // the answer ended inside a string
			nDst = rw.emitHeld(dst, nDst, false)
		case stAfter: // a string alone, or one cut short of what follows
			nDst = rw.emitHeld(dst, nDst, true)
		}
		rw.state = stOutside
		if len(rw.out) > 0 {
			return nDst, nSrc, transform.ErrShortDst
		}
	}
	return nDst, nSrc, nil
}

// outside copies src from nSrc up to and including the next string's
// opening quote, where it starts holding the string. Like pass, hold and
// after, it returns the new nDst and nSrc.
func (rw *urlRewriter) outside(dst, src []byte, nDst, nSrc int) (int, int) {
	i := bytes.IndexByte(src[nSrc:], '"')
	if i < 0 {
		return rw.emit(dst, nDst, src[nSrc:]), len(src)
	}
	nDst = rw.emit(dst, nDst, src[nSrc:nSrc+i+1])
	rw.state, rw.escaped, rw.prefixed, rw.held = stHold, false, false, rw.held[:0]
	return nDst, nSrc + i + 1
}

// pass copies a string that is no link, up to and including its closing
// quote.
func (rw *urlRewriter) pass(dst, src []byte, nDst, nSrc int) (int, int) {
	if rw.escaped {
		rw.escaped = false
		return rw.emit(dst, nDst, src[nSrc:nSrc+1]), nSrc + 1
	}
	i := bytes.IndexAny(src[nSrc:], `"\`)
	if i < 0 {
		return rw.emit(dst, nDst, src[nSrc:]), len(src)
	}
	if src[nSrc+i] == '"' {
		rw.state = stOutside
	} else {
		rw.escaped = true
	}
	return rw.emit(dst, nDst, src[nSrc:nSrc+i+1]), nSrc + i + 1
}

// hold takes one byte of a string that may be a link: at its closing quote
// the string is a link candidate (stAfter) or copied as it was; once it can
// no longer be one (no upstream URL at its start, a space, too long) it is
// copied and the rest passes.
func (rw *urlRewriter) hold(dst, src []byte, nDst, nSrc int) (int, int) {
	c := src[nSrc]
	nSrc++
	rw.held = append(rw.held, c)
	switch {
	case rw.escaped:
		rw.escaped = false
	case c == '\\':
		rw.escaped = true
	case c == '"':
		if rw.isLink(rw.held) {
			rw.state = stAfter
			return nDst, nSrc
		}
		rw.state = stOutside
		return rw.emitHeld(dst, nDst, false), nSrc
	}
	if !rw.prefixed {
		m, more := rw.match(rw.held, false)
		rw.prefixed = m.n > 0
		if !rw.prefixed && !more {
			rw.state = stPass
			return rw.emitHeld(dst, nDst, false), nSrc
		}
	}
	if c == ' ' || len(rw.held) > maxLinkHeld {
		rw.state = stPass
		return rw.emitHeld(dst, nDst, false), nSrc
	}
	return nDst, nSrc
}

// after looks past a link candidate's closing quote: a ':' next makes the
// string an object key, which is copied as it was; anything else makes it
// a value, rewritten.
func (rw *urlRewriter) after(dst, src []byte, nDst, nSrc int) (int, int) {
	if c := src[nSrc]; isJSONSpace(c) && len(rw.held) < maxLinkHeld {
		rw.held = append(rw.held, c)
		return nDst, nSrc + 1
	}
	rw.state = stOutside
	return rw.emitHeld(dst, nDst, src[nSrc] != ':'), nSrc
}

// emit writes b to dst from nDst, and what does not fit to rw.out; it
// returns the new nDst.
func (rw *urlRewriter) emit(dst []byte, nDst int, b []byte) int {
	if len(rw.out) == 0 {
		n := copy(dst[nDst:], b)
		nDst += n
		b = b[n:]
	}
	rw.out = append(rw.out, b...)
	return nDst
}

// emitHeld writes the held string, its URL pointed at the proxy when link
// is true, and empties it.
func (rw *urlRewriter) emitHeld(dst []byte, nDst int, link bool) int {
	rest := rw.held
	if m, _ := rw.match(rw.held, true); link && m.n > 0 {
		nDst = rw.emit(dst, nDst, []byte(rw.client.scheme(m.scheme)))
		nDst = rw.emit(dst, nDst, []byte(m.sep))
		nDst = rw.emit(dst, nDst, []byte(rw.clientHost))
		rest = rest[m.n:]
	}
	nDst = rw.emit(dst, nDst, rest)
	rw.held = rw.held[:0]
	return nDst
}

// isLink reports whether a whole string, from after its opening quote to
// its closing quote, is a link to the upstream.
func (rw *urlRewriter) isLink(s []byte) bool {
	m, _ := rw.match(s, true)
	return m.n > 0 && !hasJSONStringSpace(s[:len(s)-1])
}

// hasJSONStringSpace reports whether the content of a JSON string holds
// whitespace or a control character, plain or escaped (\n, \t, \u00a0 ...).
func hasJSONStringSpace(s []byte) bool {
	for i := 0; i < len(s); {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'b', 'f', 'n', 'r', 't':
				return true
			case 'u':
				if i+6 <= len(s) {
					if v, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 16); err == nil && isSpaceOrControl(rune(v)) {
						return true
					}
				}
			}
			i += 2
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if isSpaceOrControl(r) {
			return true
		}
		i += n
	}
	return false
}

func isSpaceOrControl(r rune) bool { return r < ' ' || unicode.IsSpace(r) }

// isJSONSpace reports whether c is whitespace between JSON tokens (RFC 8259
// section 2).
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// anyIn reports whether b, a whole text, may hold a link rw rewrites: a
// string that starts with an upstream URL. When it does not, b passes as it
// is, its Content-Length kept.
func (rw *urlRewriter) anyIn(b []byte) bool {
	for i := 1; i < len(b); i++ {
		j := bytes.IndexAny(b[i:], "hHwW")
		if j < 0 {
			return false
		}
		i += j
		if m, _ := rw.match(b[i:], true); m.n > 0 && b[i-1] == '"' {
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
				if len(b) == n && atEOF {
					return urlMatch{scheme, sep, n}, false
				}
				end, needMore := hostEnds(b[n:], atEOF)
				if end {
					return urlMatch{scheme, sep, n}, false
				}
				more = more || needMore
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

// hostEnds reports whether b, what follows a host in JSON text, ends the
// host: the path, query or fragment begins ('/', '?', '#', or those written
// as \/ or \u002f, \u003f, \u0023), or the string ends. Any other escape
// does not (\u0040 is '@': the URL's host is another). more reports that b
// may end the host and more input would tell.
func hostEnds(b []byte, atEOF bool) (end, more bool) {
	if len(b) == 0 {
		return false, !atEOF
	}
	switch b[0] {
	case '/', '?', '#', '"':
		return true, false
	case '\\':
	default:
		return false, false
	}
	for _, esc := range [...]string{`\/`, `\u002f`, `\u003f`, `\u0023`} {
		ok, needMore := hasPrefixFoldASCII(b, esc, atEOF)
		if ok {
			return true, false
		}
		more = more || needMore
	}
	return false, more
}
