package wsrelay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// CheckUpgrade reports what is wrong with a client's upgrade request, before
// anything is dialed: koding dials the upstream first and only then lets
// gorilla find the request bad, which would spend an upstream handshake and
// pass gorilla's refusal off as the upstream's answer. It checks what
// gorilla's Upgrader checks (websocket 1.5.3, server.go), a little
// stricter: the version must be exactly 13.
func CheckUpgrade(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet:
		return errors.New("the method must be GET")
	case !httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade"):
		return errors.New("the Connection header must include Upgrade")
	case !httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket"):
		return errors.New("the Upgrade header must include websocket")
	case r.Header.Get("Sec-Websocket-Version") != "13":
		return errors.New("the Sec-WebSocket-Version header must be 13")
	case r.Header.Get("Sec-Websocket-Key") == "":
		return errors.New("the Sec-WebSocket-Key header is missing")
	}
	// RFC 6455, section 4.1: a nonce of 16 bytes, base64-encoded.
	if key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-Websocket-Key")); err != nil || len(key) != 16 {
		return errors.New("the Sec-WebSocket-Key header must be 16 bytes in base64")
	}
	return nil
}

// upstream101Headers are the fields of the upstream's 101 (h, as
// upstreamConn.responseHeader read them; nil when its head was longer than
// it keeps) that the client's 101 carries too: every end-to-end field, so
// koding's two (the subprotocol and the first Set-Cookie) are not all that
// reaches the client. Left out: hop-by-hop fields (RFC 9110 section 7.6.1)
// and those the upstream's Connection names, and the handshake fields that
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

// dropHopHeaders removes the fields of one connection from a handshake or
// its answer, so they do not pass to the other: the hop-by-hop ones (RFC
// 9110 section 7.6.1, httputil.ReverseProxy's list) and those its
// Connection names.
func dropHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		h.Del(name)
	}
}

// with101Headers is gorilla's 101 head (what the Upgrader writes to the
// client) with extra's fields in place of the Set-Cookie koding copied (the
// upstream's first only): its status line and handshake fields, then
// extra. ok is false when head is not one whole 101 head.
func with101Headers(head []byte, extra http.Header) ([]byte, bool) {
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) || !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		return nil, false
	}
	var b bytes.Buffer
	for line := range strings.SplitSeq(string(head[:len(head)-2]), "\r\n") {
		if line == "" || len(line) >= len("Set-Cookie:") && strings.EqualFold(line[:len("Set-Cookie:")], "Set-Cookie:") {
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
