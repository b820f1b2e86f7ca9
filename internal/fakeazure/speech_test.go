package fakeazure

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestAudioBytes(t *testing.T) {
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"   ", 0},
		{"a", 1600},
		{"Hello world", 11 * 1600},
		{"  Hello \n\t world  ", 11 * 1600},
		{"héllo wörld", 11 * 1600},
	}
	for _, tc := range tests {
		if got := AudioBytes(tc.text); got != tc.want {
			t.Errorf("AudioBytes(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

func TestSSMLText(t *testing.T) {
	tests := []struct {
		ssml, want string
	}{
		{SSML("Hello world"), "Hello world"},
		{SSML("Fish & <chips>"), "Fish & <chips>"},
		{"<speak>\n  <voice name='x'>\n    Hello\n  </voice>\n  <voice name='y'>world</voice>\n</speak>", "Hello world"},
		{"<speak><voice>Hel</voice><voice>lo</voice></speak>", "Hello"},
		{"<speak>a<break time='1s'/>b</speak>", "ab"},
	}
	for _, tc := range tests {
		got, err := SSMLText(tc.ssml)
		if err != nil || got != tc.want {
			t.Errorf("SSMLText(%q) = %q, %v, want %q, nil", tc.ssml, got, err, tc.want)
		}
	}
	if _, err := SSMLText("<speak>unclosed"); err == nil {
		t.Error("SSMLText(unclosed) error = nil, want an error")
	}
}

// ttsURL is the custom-domain TTS WebSocket URL the JavaScript SDK dials
// through fromHost, minus the key.
func ttsURL(a *Azure) string {
	return "ws://" + a.CustomHost() + "/tts/cognitiveservices/websocket/v1?X-ConnectionId=0123456789ABCDEF0123456789ABCDEF"
}

func TestTTSWebSocket(t *testing.T) {
	tests := []struct {
		name         string
		format       string
		subprotocols []string
		header       int // WAV header bytes expected before the PCM
	}{
		{name: "raw, as the JavaScript SDK asks", format: FormatRaw16k},
		{name: "riff with USP subprotocol, as the native SDK", format: FormatRiff16k, subprotocols: []string{"USP"}, header: WAVHeaderBytes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			conn, resp, err := dial(t, ttsURL(a), http.Header{"Authorization": {bearer(a.Issue())}}, tc.subprotocols...)
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			wantProto := ""
			if len(tc.subprotocols) > 0 {
				wantProto = "USP"
			}
			if got := conn.Subprotocol(); got != wantProto {
				t.Errorf("subprotocol = %q, want %q", got, wantProto)
			}
			rec := lastRequest(t, a)
			if rec.Status != http.StatusSwitchingProtocols || !rec.WebSocket || rec.Subprotocol != wantProto {
				t.Errorf("recorded status, websocket, subprotocol = %d, %v, %q, want 101, true, %q", rec.Status, rec.WebSocket, rec.Subprotocol, wantProto)
			}
			// 20 syntheses in a row on one connection, as one synthesizer does.
			for i := range 20 {
				text := strings.Repeat("Hello world. ", i+1)
				audio, err := Synthesize(conn, text, tc.format)
				if err != nil {
					t.Fatalf("synthesis %d: %v", i, err)
				}
				if got, want := len(audio), tc.header+AudioBytes(text); got != want {
					t.Fatalf("synthesis %d: audio bytes = %d, want %d", i, got, want)
				}
				if tc.header > 0 {
					checkWAVHeader(t, audio[:WAVHeaderBytes], AudioBytes(text))
				}
			}
			if n := len(a.Requests()); n != 1 {
				t.Errorf("requests recorded = %d, want 1 (one handshake)", n)
			}
		})
	}
}

// TestTTSWebSocketFraming reads one turn message by message and checks what
// the JavaScript SDK depends on: order, Path and X-RequestId on every
// message, the blank line in text frames, the stream id, frame sizes.
func TestTTSWebSocketFraming(t *testing.T) {
	a := start(t, Settings{})
	conn, _, err := dial(t, ttsURL(a), http.Header{"Authorization": {aad(DefaultResourceID, a.Issue())}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	const requestID = "0123456789ABCDEF0123456789ABCDEF"
	ctx := `{"synthesis":{"audio":{"outputFormat":"raw-16khz-16bit-mono-pcm"}}}`
	for _, m := range [][]byte{
		uspText(`{}`, "Path", "speech.config", "X-RequestId", requestID),
		uspText(ctx, "Path", "synthesis.context", "X-RequestId", requestID),
		uspText(SSML("Hi there"), "Path", "ssml", "X-RequestId", requestID),
	} {
		if err := conn.WriteMessage(websocket.TextMessage, m); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	var paths []string
	var streamID string
	audio := 0
	for len(paths) == 0 || paths[len(paths)-1] != "turn.end" {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read after %v: %v", paths, err)
		}
		if mt == websocket.TextMessage && !strings.Contains(string(data), "\r\n\r\n") {
			t.Fatalf("text message %q has no blank line", data)
		}
		msg, err := parseUSP(mt, data)
		if err != nil {
			t.Fatalf("parse %q: %v", data, err)
		}
		if got := msg.requestID(); got != requestID {
			t.Fatalf("%s X-RequestId = %q, want %q", msg.path(), got, requestID)
		}
		switch msg.path() {
		case "response":
			var r struct {
				Audio struct{ Type, StreamID string }
			}
			if err := json.Unmarshal(msg.body, &r); err != nil || r.Audio.Type != "inline" || r.Audio.StreamID == "" {
				t.Fatalf("response body = %s, want inline audio with a streamId", msg.body)
			}
			streamID = r.Audio.StreamID
		case "audio":
			if got := msg.headers["x-streamid"]; got != streamID {
				t.Fatalf("audio X-StreamId = %q, want %q", got, streamID)
			}
			if len(msg.body) > AudioFrameBytes {
				t.Errorf("audio frame of %d bytes, want at most %d", len(msg.body), AudioFrameBytes)
			}
			audio += len(msg.body)
			if last := paths[len(paths)-1]; last == "audio" {
				continue
			}
		case "turn.start", "turn.end":
			if !json.Valid(msg.body) {
				t.Errorf("%s body %q is not JSON", msg.path(), msg.body)
			}
		}
		paths = append(paths, msg.path())
	}
	if got, want := strings.Join(paths, ","), "turn.start,response,audio,turn.end"; got != want {
		t.Errorf("message order = %s, want %s", got, want)
	}
	if want := AudioBytes("Hi there"); audio != want {
		t.Errorf("audio bytes = %d, want %d", audio, want)
	}
}

func TestTTSWebSocketUnsupportedFormat(t *testing.T) {
	a := start(t, Settings{})
	conn, _, err := dial(t, ttsURL(a), http.Header{"Authorization": {bearer(a.Issue())}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, err = Synthesize(conn, "hello", "ogg-24khz-16bit-mono-opus")
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseUnsupportedData {
		t.Fatalf("Synthesize(opus) error = %v, want close %d", err, websocket.CloseUnsupportedData)
	}
}

func checkWAVHeader(t *testing.T, h []byte, dataBytes int) {
	t.Helper()
	le := binary.LittleEndian
	checks := []struct {
		field string
		got   any
		want  any
	}{
		{"RIFF", string(h[0:4]), "RIFF"},
		{"RIFF size", le.Uint32(h[4:]), uint32(36 + dataBytes)},
		{"WAVE", string(h[8:16]), "WAVEfmt "},
		{"format", le.Uint16(h[20:]), uint16(1)},
		{"channels", le.Uint16(h[22:]), uint16(1)},
		{"sample rate", le.Uint32(h[24:]), uint32(16000)},
		{"byte rate", le.Uint32(h[28:]), uint32(32000)},
		{"bits", le.Uint16(h[34:]), uint16(16)},
		{"data", string(h[36:40]), "data"},
		{"data size", le.Uint32(h[40:]), uint32(dataBytes)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("WAV header %s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

func TestSTTWebSocket(t *testing.T) {
	paths := []string{
		"/stt/speech/recognition/interactive/cognitiveservices/v1?language=en-US&format=simple",
		"/stt/speech/recognition/conversation/cognitiveservices/v1?language=en-US",
		"/stt/speech/recognition/dictation/cognitiveservices/v1?language=en-US",
		"/stt/speech/universal/v2",
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			a := start(t, Settings{Phrase: "What's the weather like?"})
			conn, _, err := dial(t, "ws://"+a.CustomHost()+path, http.Header{"Authorization": {aad(DefaultResourceID, a.Issue())}})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			got, err := Recognize(conn, tone(32000))
			if err != nil || got != "What's the weather like?" {
				t.Fatalf("Recognize = %q, %v, want %q", got, err, "What's the weather like?")
			}
			// A second turn on the same connection hears the phrase set meanwhile.
			s := a.Settings()
			s.Phrase = "Second phrase."
			if err := a.Set(s); err != nil {
				t.Fatal(err)
			}
			if got, err := Recognize(conn, tone(3200)); err != nil || got != "Second phrase." {
				t.Fatalf("second Recognize = %q, %v, want %q", got, err, "Second phrase.")
			}
		})
	}
}

// TestSTTPhraseShape checks the numbers of speech.phrase are JSON numbers
// and follow the audio length.
func TestSTTPhraseShape(t *testing.T) {
	a := start(t, Settings{})
	conn, _, err := dial(t, "ws://"+a.CustomHost()+"/stt/speech/universal/v2", http.Header{"Authorization": {bearer(a.Issue())}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	const id = "ABCDEF"
	for _, m := range [][]byte{
		uspBinary(wavHeader(0), "Path", "audio", "X-RequestId", id),
		uspBinary(tone(32000), "Path", "audio", "X-RequestId", id),
		uspBinary(nil, "Path", "audio", "X-RequestId", id),
	} {
		if err := conn.WriteMessage(websocket.BinaryMessage, m); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for {
		msg, err := readUSP(conn, id)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, msg.path())
		if msg.path() == "speech.phrase" {
			var p struct {
				RecognitionStatus string
				DisplayText       string
				Offset, Duration  json.Number
			}
			if err := json.Unmarshal(msg.body, &p); err != nil {
				t.Fatalf("speech.phrase %s: %v", msg.body, err)
			}
			if p.Duration != "10000000" || p.Offset != "0" || p.DisplayText != DefaultPhrase {
				t.Errorf("speech.phrase = %s, want Offset 0, Duration 10000000 (1 s), DisplayText %q", msg.body, DefaultPhrase)
			}
		}
		if msg.path() == "turn.end" {
			break
		}
	}
	want := "turn.start,speech.startdetected,speech.hypothesis,speech.enddetected,speech.phrase,turn.end"
	if got := strings.Join(paths, ","); got != want {
		t.Errorf("messages = %s, want %s", got, want)
	}
}

// TestRegionalPathsOnCustomDomain checks that paths a proxy must map are not
// served as they are, even with a valid token.
func TestRegionalPathsOnCustomDomain(t *testing.T) {
	a := start(t, Settings{})
	for _, p := range []struct{ method, path string }{
		{"GET", "/cognitiveservices/websocket/v1"},
		{"GET", "/speech/recognition/interactive/cognitiveservices/v1"},
		{"GET", "/speech/universal/v2"},
		{"POST", "/cognitiveservices/v1"},
		{"GET", "/cognitiveservices/voices/list"},
		{"GET", "/tts/cognitiveservices/voices/list/"},
	} {
		resp, body := send(t, p.method, a.URL()+p.path, map[string][]string{"Authorization": {bearer(a.Issue())}}, "")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s status = %d, want 404", p.method, p.path, resp.StatusCode)
			continue
		}
		if code, _ := azureError(t, body); code != "404" {
			t.Errorf("%s %s error code = %q, want 404", p.method, p.path, code)
		}
	}
}

func TestTTSREST(t *testing.T) {
	text := "The quick brown fox & friends."
	tests := []struct {
		name        string
		contentType string
		format      string
		want        int
		header      bool
	}{
		{name: "riff", contentType: "application/ssml+xml", format: FormatRiff16k, want: 200, header: true},
		{name: "raw", contentType: "application/ssml+xml; charset=utf-8", format: FormatRaw16k, want: 200},
		{name: "no output format", contentType: "application/ssml+xml", want: 400},
		{name: "opus", contentType: "application/ssml+xml", format: "ogg-24khz-16bit-mono-opus", want: 400},
		{name: "not ssml", contentType: "text/plain", format: FormatRiff16k, want: 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {tc.contentType}, "User-Agent": {"fakeazure-test"}}
			if tc.format != "" {
				h["X-Microsoft-OutputFormat"] = []string{tc.format}
			}
			resp, body := send(t, http.MethodPost, a.URL()+"/tts/cognitiveservices/v1", h, SSML(text))
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %.200q)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				azureError(t, body)
				return
			}
			wantLen := AudioBytes(text)
			if tc.header {
				if ct := resp.Header.Get("Content-Type"); ct != "audio/wav" {
					t.Errorf("Content-Type = %q, want audio/wav", ct)
				}
				checkWAVHeader(t, []byte(body[:WAVHeaderBytes]), wantLen)
				wantLen += WAVHeaderBytes
			}
			if len(body) != wantLen {
				t.Errorf("body bytes = %d, want %d", len(body), wantLen)
			}
		})
	}
}

func TestVoicesList(t *testing.T) {
	a := start(t, Settings{})
	resp, body := send(t, http.MethodGet, a.URL()+"/tts/cognitiveservices/voices/list", map[string][]string{"Authorization": {bearer(a.Issue())}}, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	var voices []map[string]string
	if err := json.Unmarshal([]byte(body), &voices); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if len(voices) < 3 {
		t.Fatalf("voices = %d, want at least 3", len(voices))
	}
	want := "Microsoft Server Speech Text to Speech Voice (en-US, AvaMultilingualNeural)"
	if voices[0]["Name"] != want || voices[0]["ShortName"] != "en-US-AvaMultilingualNeural" || voices[0]["Locale"] != "en-US" {
		t.Errorf("first voice = %v, want Name %q", voices[0], want)
	}
	for _, v := range voices {
		for _, k := range []string{"Name", "DisplayName", "LocalName", "ShortName", "Gender", "Locale", "LocaleName", "SampleRateHertz", "VoiceType", "Status"} {
			if v[k] == "" {
				t.Errorf("voice %s: %s empty", v["ShortName"], k)
			}
		}
	}
}
