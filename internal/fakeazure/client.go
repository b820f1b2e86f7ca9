package fakeazure

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gorilla/websocket"
)

// Small USP clients, so that tests of what sits in front of the fake (the
// proxy) can drive a Speech session without a Speech SDK. They send what the
// SDKs send (docs/SPEECH-SDK-WIRE.md, "USP framing") and check the answers as strictly as
// the JavaScript SDK would. They set no deadlines: set conn's read deadline.

// Synthesize runs one text-to-speech turn on conn (speech.config,
// synthesis.context, ssml) and returns the audio received until turn.end.
// outputFormat "" means FormatRaw16k.
func Synthesize(conn *websocket.Conn, text, outputFormat string) ([]byte, error) {
	if outputFormat == "" {
		outputFormat = FormatRaw16k
	}
	requestID := strings.ToUpper(randomHex(16))
	synthesisContext, _ := json.Marshal(map[string]any{"synthesis": map[string]any{
		"audio": map[string]any{
			"metadataOptions": map[string]bool{"wordBoundaryEnabled": false, "sentenceBoundaryEnabled": false},
			"outputFormat":    outputFormat,
		},
		"language": map[string]bool{"autoDetection": false},
	}})
	for _, m := range []struct{ path, contentType, body string }{
		{"speech.config", "application/json", `{"context":{"system":{"name":"SpeechSDK","version":"fakeazure","build":"Go","lang":"Go"}}}`},
		{"synthesis.context", "application/json", string(synthesisContext)},
		{"ssml", "application/ssml+xml", SSML(text)},
	} {
		msg := uspText(m.body, "Path", m.path, "X-RequestId", requestID, "X-Timestamp", uspTimestamp(), "Content-Type", m.contentType)
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return nil, fmt.Errorf("send %s: %w", m.path, err)
		}
	}
	var audio []byte
	streamID := ""
	for {
		msg, err := readUSP(conn, requestID)
		if err != nil {
			return audio, err
		}
		switch msg.path() {
		case "response":
			var resp struct {
				Audio struct {
					StreamID string `json:"streamId"`
				} `json:"audio"`
			}
			if err := json.Unmarshal(msg.body, &resp); err != nil || resp.Audio.StreamID == "" {
				return audio, fmt.Errorf("response message without audio.streamId: %q", msg.body)
			}
			streamID = resp.Audio.StreamID
		case "audio":
			if !msg.binary || streamID == "" || msg.headers["x-streamid"] != streamID {
				return audio, fmt.Errorf("audio message with stream id %q before or outside response stream %q", msg.headers["x-streamid"], streamID)
			}
			audio = append(audio, msg.body...)
		case "turn.end":
			return audio, nil
		}
	}
}

// Recognize runs one recognize-once turn on conn: speech.config,
// speech.context, a RIFF header, pcm (16 kHz 16-bit mono) in 100 ms audio
// messages, an empty audio message; it returns speech.phrase's DisplayText
// once turn.end arrives.
func Recognize(conn *websocket.Conn, pcm []byte) (string, error) {
	requestID := strings.ToUpper(randomHex(16))
	for _, m := range []struct{ path, body string }{
		{"speech.config", `{"context":{"system":{"name":"SpeechSDK","version":"fakeazure","build":"Go","lang":"Go"}}}`},
		{"speech.context", `{}`},
	} {
		msg := uspText(m.body, "Path", m.path, "X-RequestId", requestID, "X-Timestamp", uspTimestamp(), "Content-Type", "application/json")
		if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return "", fmt.Errorf("send %s: %w", m.path, err)
		}
	}
	chunks := [][]byte{wavHeader(len(pcm))}
	for len(pcm) > 0 {
		n := min(len(pcm), AudioFrameBytes)
		chunks = append(chunks, pcm[:n])
		pcm = pcm[n:]
	}
	chunks = append(chunks, nil) // the end of the audio
	for _, c := range chunks {
		msg := uspBinary(c, "Path", "audio", "X-RequestId", requestID, "X-Timestamp", uspTimestamp(), "Content-Type", "audio/x-wav")
		if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			return "", fmt.Errorf("send audio: %w", err)
		}
	}
	phrase, seen := "", false
	for {
		msg, err := readUSP(conn, requestID)
		if err != nil {
			return phrase, err
		}
		switch msg.path() {
		case "speech.phrase":
			var p struct {
				RecognitionStatus string
				DisplayText       string
			}
			if err := json.Unmarshal(msg.body, &p); err != nil {
				return "", fmt.Errorf("speech.phrase: %w", err)
			}
			if p.RecognitionStatus != "Success" {
				return "", fmt.Errorf("speech.phrase RecognitionStatus = %q, want Success", p.RecognitionStatus)
			}
			phrase, seen = p.DisplayText, true
		case "turn.end":
			if !seen {
				return "", errors.New("turn.end before speech.phrase")
			}
			return phrase, nil
		}
	}
}

// readUSP reads the next message, which must be well-formed USP and carry
// requestID.
func readUSP(conn *websocket.Conn, requestID string) (uspMessage, error) {
	mt, data, err := conn.ReadMessage()
	if err != nil {
		return uspMessage{}, fmt.Errorf("read usp message: %w", err)
	}
	msg, err := parseUSP(mt, data)
	if err != nil {
		return uspMessage{}, err
	}
	if got := msg.requestID(); got != requestID {
		return msg, fmt.Errorf("%s message X-RequestId = %q, want %q", msg.path(), got, requestID)
	}
	return msg, nil
}
