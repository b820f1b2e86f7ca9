package fakeazure

import (
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The synthesized audio, which tests predict with AudioBytes.
const (
	// SampleRate is the only rate the fake synthesizes: 16 kHz, 16-bit, mono PCM.
	SampleRate = 16000
	// MillisecondsPerCharacter is how much audio each character of text yields.
	MillisecondsPerCharacter = 50
	// BytesPerCharacter is the PCM bytes per character: 50 ms at 32 bytes/ms.
	BytesPerCharacter = SampleRate * 2 * MillisecondsPerCharacter / 1000
	// AudioFrameBytes is the most PCM one WebSocket audio message carries
	// (100 ms); the last one carries the rest.
	AudioFrameBytes = 3200
	// WAVHeaderBytes is the size of the RIFF header of the riff-* formats.
	WAVHeaderBytes = 44
)

// Output formats the fake synthesizes. The JavaScript SDK 1.52 on Node
// defaults to riff-16khz-16bit-mono-pcm but requests raw-16khz-16bit-mono-pcm
// on the wire and adds the WAV header itself (AudioOutputFormatImpl's
// requestAudioFormatString), so over the WebSocket it asks for the raw one;
// in a browser it defaults to audio-24khz-48kbitrate-mono-mp3, which the fake
// refuses. riff-* over the WebSocket puts the 44-byte header before the PCM.
const (
	FormatRaw16k  = "raw-16khz-16bit-mono-pcm"
	FormatRiff16k = "riff-16khz-16bit-mono-pcm"
)

// AudioBytes is how many bytes of PCM the fake synthesizes for text: 1600
// bytes (50 ms at 16 kHz, 16-bit, mono) per Unicode code point, counted after
// the text's whitespace runs are collapsed to one space and its ends trimmed.
// The riff format adds WAVHeaderBytes. For SSML the text is SSMLText(ssml).
//
//	AudioBytes("Hello world") == 11 * 1600 == 17600
func AudioBytes(text string) int { return BytesPerCharacter * utf8Len(text) }

// utf8Len counts text's code points after collapsing its whitespace runs to
// one space and trimming its ends.
func utf8Len(text string) int { return utf8.RuneCountInString(strings.Join(strings.Fields(text), " ")) }

// SSMLText is the text content of an SSML document: all its character data,
// entities decoded, concatenated in order (tags add no space), whitespace
// collapsed as AudioBytes does.
func SSMLText(ssml string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(ssml))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("parse ssml: %w", err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			b.Write(cd)
		}
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

// SSML wraps text the way the Speech SDKs' speakTextAsync does, escaping it.
func SSML(text string) string {
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(text))
	return `<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xmlns:mstts='http://www.w3.org/2001/mstts' xml:lang='en-US'><voice name='en-US-AvaMultilingualNeural'>` +
		esc.String() + `</voice></speak>`
}

// tone returns n bytes (n even) of a 440 Hz sine at 16 kHz, 16-bit little
// endian: real audio, so a player or a recognizer downstream gets sound.
func tone(n int) []byte { return toneAt(SampleRate, n/2) }

// wavHeader is the 44-byte RIFF header for dataBytes of 16 kHz 16-bit mono PCM.
func wavHeader(dataBytes int) []byte { return wavHeaderAt(SampleRate, dataBytes) }

// synthesize returns the audio for text in format (formats.go). ok is false
// for a format the fake does not make.
func synthesize(format, text string) (audio []byte, ok bool) {
	f, ok := parseFormat(format)
	if !ok {
		return nil, false
	}
	return f.audio(text), true
}

// serveTTSWebSocket speaks USP text-to-speech: for every ssml message, in
// order turn.start, response, the audio in binary frames with the response's
// stream id, turn.end; any number of turns on one connection.
func (a *Azure) serveTTSWebSocket(w http.ResponseWriter, r *http.Request, req *Request, finish func(int, string)) {
	conn, done, ok := a.upgrade(w, r, req, finish, nil)
	if !ok {
		return
	}
	defer done()
	s := session{conn: conn}
	format := FormatRaw16k // until a synthesis.context says otherwise
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return // the client went away or Close ended the session
		}
		msg, err := parseUSP(mt, data)
		if err != nil {
			s.closeWith(websocket.CloseProtocolError, err.Error())
			return
		}
		switch msg.path() {
		case "synthesis.context":
			var ctx struct {
				Synthesis struct {
					Audio struct {
						OutputFormat string `json:"outputFormat"`
					} `json:"audio"`
				} `json:"synthesis"`
			}
			if err := json.Unmarshal(msg.body, &ctx); err != nil {
				s.closeWith(websocket.CloseInvalidFramePayloadData, "synthesis.context: "+err.Error())
				return
			}
			if f := ctx.Synthesis.Audio.OutputFormat; f != "" {
				format = f
			}
		case "ssml":
			if msg.requestID() == "" {
				s.closeWith(websocket.CloseProtocolError, "ssml without X-RequestId")
				return
			}
			text, err := SSMLText(string(msg.body))
			if err != nil {
				s.closeWith(websocket.CloseInvalidFramePayloadData, err.Error())
				return
			}
			audio, ok := synthesize(format, text)
			if !ok {
				s.closeWith(websocket.CloseUnsupportedData, unsupportedFormat(format))
				return
			}
			if err := s.speak(msg.requestID(), audio); err != nil {
				return
			}
		}
		// speech.config, telemetry and the rest need no answer.
	}
}

// speak sends one synthesis turn.
func (s session) speak(requestID string, audio []byte) error {
	streamID := strings.ToUpper(randomHex(16))
	if err := s.sendJSON("turn.start", requestID, `{"context":{"serviceTag":"`+randomHex(16)+`"}}`); err != nil {
		return err
	}
	if err := s.sendJSON("response", requestID, `{"audio":{"type":"inline","streamId":"`+streamID+`"}}`); err != nil {
		return err
	}
	for len(audio) > 0 {
		n := min(len(audio), AudioFrameBytes)
		frame := uspBinary(audio[:n], "Path", "audio", "X-RequestId", requestID, "X-StreamId", streamID)
		if err := s.write(websocket.BinaryMessage, frame); err != nil {
			return err
		}
		audio = audio[n:]
	}
	return s.sendJSON("turn.end", requestID, `{}`)
}

// serveSTTWebSocket speaks USP recognition: it reads a turn's audio and, at
// the empty audio message that ends it, answers turn.start, then for each
// phrase in the audio speech.startDetected, a hypothesis, speech.endDetected
// and the phrase (the current Phrase), then turn.end. Without turn.end
// recognizeOnceAsync never returns. A phrase is a run of sound; a pause of
// PhrasePause or more starts a new one (continuous recognition of a file
// with three words and two pauses gives three phrases). A turn with no sound
// at all gives no phrase but a speech.phrase status, as the service does:
// InitialSilenceTimeout in interactive mode (the SDK reports NoMatch),
// EndOfDictation otherwise (the native SDK re-sends the audio after the last
// phrase in a new turn; that tail is silence). The speech.context message
// says what else to send: translations (its translation.targetLanguages, as
// TranslationRecognizer sends) as translation.hypothesis and
// translation.phrase messages, and a SpeakerId on every phrase when it asks
// for speakerDiarization (ConversationTranscriber).
func (a *Azure) serveSTTWebSocket(w http.ResponseWriter, r *http.Request, req *Request, finish func(int, string)) {
	conn, done, ok := a.upgrade(w, r, req, finish, nil)
	if !ok {
		return
	}
	defer done()
	s := session{conn: conn}
	// The JavaScript SDK names the target languages in the query (to=de,fr),
	// the native one in each turn's speech.context.
	queryTargets := translationTargets(r.URL.Query())
	var (
		seg    segmenter
		frames int
		turn   sttContext
	)
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		msg, err := parseUSP(mt, data)
		if err != nil {
			s.closeWith(websocket.CloseProtocolError, err.Error())
			return
		}
		if msg.path() == "speech.context" {
			turn = sttContext{} // each turn's context replaces the last one
			if err := json.Unmarshal(msg.body, &turn); err != nil {
				s.closeWith(websocket.CloseInvalidFramePayloadData, "speech.context: "+err.Error())
				return
			}
			continue
		}
		if msg.path() != "audio" || !msg.binary {
			continue // speech.config, telemetry and the rest need no answer
		}
		if len(msg.body) > 0 {
			pcm := msg.body
			// The first audio message of a turn is a RIFF header.
			if frames == 0 && len(pcm) >= WAVHeaderBytes && string(pcm[:4]) == "RIFF" {
				pcm = pcm[wavHeaderLen(pcm):]
			}
			seg.write(pcm)
			frames++
			continue
		}
		if frames == 0 {
			continue // an end of audio with no audio: nothing to recognize
		}
		if msg.requestID() == "" {
			s.closeWith(websocket.CloseProtocolError, "audio without X-RequestId")
			return
		}
		turn.queryTargets = queryTargets
		turn.interactive = strings.Contains(r.URL.Path, "/interactive/") || strings.EqualFold(turn.PhraseDetection.Mode, "interactive")
		if err := s.recognized(msg.requestID(), a.Settings().Phrase, seg, turn); err != nil {
			return
		}
		seg, frames = segmenter{}, 0
	}
}

// sttContext is what the fake reads of a speech.context message.
type sttContext struct {
	PhraseDetection struct {
		Mode               string           `json:"mode"`
		SpeakerDiarization *json.RawMessage `json:"speakerDiarization"`
	} `json:"phraseDetection"`
	Translation *struct {
		TargetLanguages []string `json:"targetLanguages"`
	} `json:"translation"`
	interactive  bool     // recognize once, from the path or the mode
	queryTargets []string // translation targets from the upgrade's query
}

// wavHeaderLen is the length of the RIFF header before the "data" chunk's
// samples: 44 bytes for a plain PCM header, 46 for the WAVEFORMATEX one the
// native Speech SDK writes.
func wavHeaderLen(b []byte) int {
	for i := 12; i+8 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[i+4:]))
		if string(b[i:i+4]) == "data" {
			return i + 8
		}
		i += 8 + size + size%2
	}
	return WAVHeaderBytes
}

// SpeakerID is the speaker every phrase of a ConversationTranscriber session is
// attributed to.
const SpeakerID = "Guest-1"

// recognized sends one turn's answers: every phrase, then turn.end. Offsets
// and durations are 100-ns ticks and JSON numbers, not strings.
func (s session) recognized(requestID, phrase string, seg segmenter, turn sttContext) error {
	phrases := seg.spans
	phraseJSON, _ := json.Marshal(phrase)
	lexical, _ := json.Marshal(strings.ToLower(strings.Trim(phrase, ".!?")))
	speaker := ""
	if turn.PhraseDetection.SpeakerDiarization != nil {
		speaker = `,"SpeakerId":"` + SpeakerID + `"`
	}
	languages := turn.queryTargets
	if turn.Translation != nil {
		languages = turn.Translation.TargetLanguages
	}
	translations := func(text string) string {
		var ts []map[string]string
		for _, l := range languages {
			ts = append(ts, map[string]string{"Language": l, "Text": Translation(text, l)})
		}
		b, _ := json.Marshal(ts)
		return string(b)
	}
	type message struct{ path, body string }
	msgs := []message{{"turn.start", `{"context":{"serviceTag":"` + randomHex(16) + `"}}`}}
	if len(phrases) == 0 {
		status := "EndOfDictation"
		if turn.interactive {
			status = "InitialSilenceTimeout"
		}
		msgs = append(msgs, message{"speech.phrase", fmt.Sprintf(`{"RecognitionStatus":%q,"Offset":0,"Duration":%d}`, status, seg.end().ticks())})
	}
	for _, p := range phrases {
		offset, duration := p.start.ticks(), p.end.ticks()-p.start.ticks()
		msgs = append(msgs, message{"speech.startDetected", fmt.Sprintf(`{"Offset":%d}`, offset)})
		if languages != nil {
			msgs = append(msgs,
				message{"translation.hypothesis", fmt.Sprintf(`{"Text":%s,"Offset":%d,"Duration":%d,"Translation":{"Translations":%s}}`,
					lexical, offset, duration, translations(strings.Trim(string(lexical), `"`)))},
				message{"speech.endDetected", fmt.Sprintf(`{"Offset":%d}`, offset+duration)},
				message{"translation.phrase", fmt.Sprintf(`{"RecognitionStatus":"Success","Text":%s,"DisplayText":%s,"Offset":%d,"Duration":%d,`+
					`"Translation":{"TranslationStatus":"Success","Translations":%s}}`,
					phraseJSON, phraseJSON, offset, duration, translations(phrase))})
			continue
		}
		msgs = append(msgs,
			message{"speech.hypothesis", fmt.Sprintf(`{"Text":%s,"Offset":%d,"Duration":%d%s}`, lexical, offset, duration, speaker)},
			message{"speech.endDetected", fmt.Sprintf(`{"Offset":%d}`, offset+duration)},
			message{"speech.phrase", fmt.Sprintf(`{"RecognitionStatus":"Success","DisplayText":%s,"Offset":%d,"Duration":%d%s,`+
				`"NBest":[{"Confidence":0.95,"Lexical":%s,"ITN":%s,"MaskedITN":%s,"Display":%s}]}`,
				phraseJSON, offset, duration, speaker, lexical, lexical, lexical, phraseJSON)})
	}
	msgs = append(msgs, message{"turn.end", `{}`})
	for _, m := range msgs {
		if err := s.sendJSON(m.path, requestID, m.body); err != nil {
			return err
		}
	}
	return nil
}

// Phrase detection: 10 ms windows of 16 kHz 16-bit mono PCM; a window whose
// loudest sample reaches SoundLevel is sound.
const (
	// SoundLevel is the least absolute sample value that counts as sound.
	SoundLevel = 1000
	// PhrasePause is the least silence between two phrases.
	PhrasePause   = 300 * time.Millisecond
	windowSamples = SampleRate / 100
)

// samples is a position in the audio, in samples from its start.
type samples int

// ticks is the position in 100-ns units, as Speech offsets count.
func (n samples) ticks() int64 { return int64(n) * 10_000_000 / SampleRate }

// span is one phrase: its first and one past its last sample.
type span struct{ start, end samples }

// segmenter finds phrases in PCM written to it in pieces of any length.
type segmenter struct {
	carry []byte  // an odd byte or a partial window left from the last write
	pos   samples // samples consumed
	spans []span
	quiet samples // silence since the last sound
}

func (g *segmenter) write(pcm []byte) {
	g.carry = append(g.carry, pcm...)
	pause := samples(int64(PhrasePause) * SampleRate / int64(time.Second))
	for len(g.carry) >= windowSamples*2 {
		w := g.carry[:windowSamples*2]
		g.carry = g.carry[windowSamples*2:]
		loud := false
		for i := 0; i+1 < len(w); i += 2 {
			v := int16(binary.LittleEndian.Uint16(w[i:]))
			if v >= SoundLevel || v <= -SoundLevel {
				loud = true
				break
			}
		}
		switch {
		case loud && (len(g.spans) == 0 || g.quiet >= pause):
			g.spans = append(g.spans, span{start: g.pos, end: g.pos + windowSamples})
		case loud:
			g.spans[len(g.spans)-1].end = g.pos + windowSamples
		}
		if loud {
			g.quiet = 0
		} else {
			g.quiet += windowSamples
		}
		g.pos += windowSamples
	}
}

// end is the position after the last sample written.
func (g *segmenter) end() samples { return g.pos + samples(len(g.carry)/2) }

// maxSSMLBytes bounds a REST TTS body.
const maxSSMLBytes = 1 << 20

// serveTTSREST is POST /tts/cognitiveservices/v1: SSML in, audio out in the
// format X-Microsoft-OutputFormat names, streamed in chunks.
func (a *Azure) serveTTSREST(w http.ResponseWriter, r *http.Request, finish func(int, string)) {
	fail := func(status int, message string) {
		writeAzureError(w, status, fmt.Sprint(status), message)
		finish(status, "")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/ssml+xml" {
		fail(http.StatusUnsupportedMediaType, "Content-Type must be application/ssml+xml.")
		return
	}
	if r.ContentLength > maxSSMLBytes {
		// At once, the body unread: with Expect: 100-continue the client
		// never sends it.
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("The SSML is larger than %d bytes.", maxSSMLBytes))
		return
	}
	format := r.Header.Get("X-Microsoft-OutputFormat")
	if format == "" {
		fail(http.StatusBadRequest, "X-Microsoft-OutputFormat is required.")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSSMLBytes))
	if err != nil {
		fail(http.StatusBadRequest, "read SSML: "+err.Error())
		return
	}
	text, err := SSMLText(string(body))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	audio, ok := synthesize(format, text)
	if !ok {
		fail(http.StatusBadRequest, unsupportedFormat(format))
		return
	}
	f, _ := parseFormat(format)
	w.Header().Set("Content-Type", f.contentType())
	w.WriteHeader(http.StatusOK)
	finish(http.StatusOK, "")
	rc := http.NewResponseController(w)
	for len(audio) > 0 {
		n := min(len(audio), AudioFrameBytes)
		if _, err := w.Write(audio[:n]); err != nil {
			return
		}
		_ = rc.Flush()
		audio = audio[n:]
	}
}

// Voice is one entry of the voices list, in Azure's shape.
type Voice struct {
	Name            string `json:"Name"`
	DisplayName     string `json:"DisplayName"`
	LocalName       string `json:"LocalName"`
	ShortName       string `json:"ShortName"`
	Gender          string `json:"Gender"`
	Locale          string `json:"Locale"`
	LocaleName      string `json:"LocaleName"`
	SampleRateHertz string `json:"SampleRateHertz"`
	VoiceType       string `json:"VoiceType"`
	Status          string `json:"Status"`
	WordsPerMinute  string `json:"WordsPerMinute"`
}

// Voices is what GET /tts/cognitiveservices/voices/list returns.
func Voices() []Voice {
	v := func(short, display, gender, locale, localeName, wpm string) Voice {
		return Voice{
			Name:            fmt.Sprintf("Microsoft Server Speech Text to Speech Voice (%s, %s)", locale, strings.TrimPrefix(short, locale+"-")),
			DisplayName:     display,
			LocalName:       display,
			ShortName:       short,
			Gender:          gender,
			Locale:          locale,
			LocaleName:      localeName,
			SampleRateHertz: "24000",
			VoiceType:       "Neural",
			Status:          "GA",
			WordsPerMinute:  wpm,
		}
	}
	return []Voice{
		v("en-US-AvaMultilingualNeural", "Ava Multilingual", "Female", "en-US", "English (United States)", "150"),
		v("en-US-AndrewNeural", "Andrew", "Male", "en-US", "English (United States)", "145"),
		v("de-DE-KatjaNeural", "Katja", "Female", "de-DE", "German (Germany)", "133"),
	}
}

func (a *Azure) serveVoices(w http.ResponseWriter, finish func(int, string)) {
	finish(http.StatusOK, "")
	writeJSON(w, http.StatusOK, Voices())
}
