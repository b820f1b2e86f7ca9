package proxy

import (
	"bytes"
	"net/http"
	"strings"
)

// upstream101Headers are the headers of the upstream's 101 (h, as
// meteredConn.responseHeader read them; nil when its head was longer than
// it keeps) that the client's 101 carries too: every end-to-end header, so
// koding's two (the subprotocol and the first Set-Cookie) are not all that
// reaches the client. Left out: hop-by-hop headers (RFC 9110 section 7.6.1)
// and those the upstream's Connection names, and the handshake headers that
// answer the upstream handshake rather than the client's (RFC 6455 section
// 4.2.2): the proxy's server computes its own Sec-WebSocket-Accept, and the
// subprotocol gorilla writes is the upstream's choice already.
func upstream101Headers(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	h = h.Clone()
	dropHopHeaders(h)
	for _, name := range []string{"Content-Length", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Sec-Websocket-Version"} {
		h.Del(name)
	}
	return h
}

// dropHopHeaders removes from an upstream's handshake answer the headers of
// its own connection: the hop-by-hop ones and those its Connection names.
func dropHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(name)
	}
}

// with101Headers is gorilla's 101 head (what the proxy's Upgrader writes to
// the client) with extra's headers in place of the Set-Cookie koding copied
// (the upstream's first only): its status line and handshake headers, then
// extra. ok is false when head is not one whole 101 head.
func with101Headers(head []byte, extra http.Header) ([]byte, bool) {
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) || !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		return nil, false
	}
	var b bytes.Buffer
	for line := range strings.SplitSeq(string(head[:len(head)-2]), "\r\n") {
		if line == "" || hasPrefixFold(line, "Set-Cookie:") {
			continue
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	// http.Header.Write sorts by name, keeps each name's values in order,
	// and turns CR and LF inside values into spaces.
	extra.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes(), true
}
