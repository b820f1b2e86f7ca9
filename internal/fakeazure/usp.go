package fakeazure

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// USP framing, as docs/SPEECH-SDK-WIRE.md describes it:
//   - text frame: "Name: value\r\n" headers, a blank line, then the body; the
//     blank line is needed even with an empty body;
//   - binary frame: 2-byte big-endian header length, ASCII headers, payload.
// Every server message carries Path and the client's X-RequestId: the
// JavaScript SDK ignores messages for other ids and stops reading on a
// malformed one, which shows up as a hang.

// uspMessage is one parsed USP message.
type uspMessage struct {
	binary  bool
	headers map[string]string // names lower-cased
	body    []byte
}

func (m uspMessage) path() string      { return strings.ToLower(m.headers["path"]) }
func (m uspMessage) requestID() string { return m.headers["x-requestid"] }

// parseUSP parses one WebSocket message as USP.
func parseUSP(messageType int, data []byte) (uspMessage, error) {
	var head, body []byte
	switch messageType {
	case websocket.TextMessage:
		h, b, ok := bytes.Cut(data, []byte("\r\n\r\n"))
		if !ok {
			return uspMessage{}, errors.New("usp text message without a blank line after its headers")
		}
		head, body = h, b
	case websocket.BinaryMessage:
		if len(data) < 2 {
			return uspMessage{}, errors.New("usp binary message shorter than its header length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if 2+n > len(data) {
			return uspMessage{}, fmt.Errorf("usp binary message header length %d exceeds the message (%d bytes)", n, len(data))
		}
		head, body = data[2:2+n], data[2+n:]
	default:
		return uspMessage{}, fmt.Errorf("usp: unexpected websocket message type %d", messageType)
	}
	m := uspMessage{binary: messageType == websocket.BinaryMessage, headers: map[string]string{}, body: body}
	for _, line := range strings.Split(string(head), "\r\n") {
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return uspMessage{}, fmt.Errorf("usp header line %q has no colon", line)
		}
		m.headers[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	if m.path() == "" {
		return uspMessage{}, errors.New("usp message without a Path header")
	}
	return m, nil
}

// uspHeaders renders headers, name/value pairs in order, one CRLF after each.
func uspHeaders(headers ...string) []byte {
	var b bytes.Buffer
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i])
		b.WriteString(": ")
		b.WriteString(headers[i+1])
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// uspText frames a text message: headers, the blank line, body.
func uspText(body string, headers ...string) []byte {
	b := uspHeaders(headers...)
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// uspBinary frames a binary message.
func uspBinary(payload []byte, headers ...string) []byte {
	h := uspHeaders(headers...)
	b := make([]byte, 2, 2+len(h)+len(payload))
	binary.BigEndian.PutUint16(b, uint16(len(h)))
	b = append(b, h...)
	return append(b, payload...)
}

// uspTimestamp is the X-Timestamp format the SDKs send.
func uspTimestamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// session is the server side of one USP WebSocket.
type session struct {
	conn *websocket.Conn
}

func (s session) write(messageType int, data []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	return s.conn.WriteMessage(messageType, data)
}

// sendJSON sends a text message with a JSON body for request id.
func (s session) sendJSON(path, requestID, body string) error {
	return s.write(websocket.TextMessage, uspText(body,
		"X-RequestId", requestID,
		"Path", path,
		"Content-Type", "application/json; charset=utf-8",
		"X-Timestamp", uspTimestamp()))
}

// closeWith ends the session with code and reason. A code other than 1000
// cancels a synthesis in the JavaScript SDK, so failures surface as errors.
// The reason is cut to the 123 bytes a close frame can carry.
func (s session) closeWith(code int, reason string) {
	if len(reason) > 123 {
		reason = strings.ToValidUTF8(reason[:123], "")
	}
	msg := websocket.FormatCloseMessage(code, reason)
	_ = s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

// upgrade finishes the handshake of an accepted request and registers the
// connection so that Close can end it. It records the request (101 with the
// accepted subprotocol, or the failure).
func (a *Azure) upgrade(w http.ResponseWriter, r *http.Request, req *Request, finish func(int, string), header http.Header) (*websocket.Conn, func(), bool) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeAzureError(w, http.StatusBadRequest, "400", "This endpoint needs a WebSocket upgrade.")
		finish(http.StatusBadRequest, "")
		return nil, nil, false
	}
	// Record the 101 when gorilla hijacks the connection, just before it
	// writes the answer: a client that has its 101 then always finds the
	// request in the log.
	hw := &recordOnHijack{ResponseWriter: w, record: func() {
		// What a.upgrader chooses: the client's first one it speaks.
		for _, p := range websocket.Subprotocols(r) {
			if slices.Contains(a.upgrader.Subprotocols, p) {
				req.Subprotocol = p
				break
			}
		}
		finish(http.StatusSwitchingProtocols, "")
	}}
	// Azure answers every request with an apim-request-id.
	h := http.Header{"Apim-Request-Id": {newUUID()}}
	for k, vs := range header {
		h[k] = append(h[k], vs...)
	}
	conn, err := a.upgrader.Upgrade(hw, r, h)
	if err != nil {
		if !hw.hijacked {
			// gorilla has answered the handshake with 400 already.
			finish(http.StatusBadRequest, "")
		}
		return nil, nil, false
	}
	untrack, ok := a.trackConn(conn)
	if !ok {
		conn.Close()
		return nil, nil, false
	}
	conn.SetReadLimit(16 << 20)
	return conn, func() { untrack(); conn.Close() }, true
}

// recordOnHijack calls record when gorilla hijacks the connection to write
// its 101.
type recordOnHijack struct {
	http.ResponseWriter
	record   func()
	hijacked bool
}

func (w *recordOnHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	w.record()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func isWebSocketUpgrade(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

func subprotocols(r *http.Request) []string { return websocket.Subprotocols(r) }

// randomHex returns n random bytes in hex, for stream ids and service tags.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// newUUID is a random (version 4) UUID, the form of Azure's request ids.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
