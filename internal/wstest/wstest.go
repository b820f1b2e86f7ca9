// Package wstest writes WebSocket frames byte by byte for tests that must
// send what no well-behaved client library would: frames cut anywhere,
// oversized lengths, headers without payloads (RFC 6455, section 5.2).
package wstest

import "encoding/binary"

// Key masks client frames in tests.
var Key = []byte{0x37, 0xfa, 0x21, 0x3d}

// Frame encodes one frame. A non-nil key (4 bytes) masks the payload, as a
// client must.
func Frame(fin bool, opcode byte, payload, key []byte) []byte {
	f := firstByte(fin, opcode)
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit(key)|byte(n))
	case n <= 0xffff:
		f = append(f, maskBit(key)|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit(key)|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	if key == nil {
		return append(f, payload...)
	}
	f = append(f, key[:4]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// HeaderOnly is a frame header with a 64-bit length and no payload.
func HeaderOnly(fin bool, opcode byte, length uint64, key []byte) []byte {
	h := binary.BigEndian.AppendUint64(append(firstByte(fin, opcode), maskBit(key)|127), length)
	return append(h, key...)
}

// ClosePayload is a close frame's payload: the status code, then the
// reason.
func ClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func firstByte(fin bool, opcode byte) []byte {
	if fin {
		return []byte{opcode | 0x80}
	}
	return []byte{opcode}
}

func maskBit(key []byte) byte {
	if key != nil {
		return 0x80
	}
	return 0
}
