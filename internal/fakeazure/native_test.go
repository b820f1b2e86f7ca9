package fakeazure

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// sttTurn sends one recognition turn as the native SDK does (speech.config,
// speech.context, the RIFF header, PCM, the empty audio message) and
// returns the paths and bodies of the answers up to turn.end.
func sttTurn(t *testing.T, conn *websocket.Conn, context string, pcm []byte) (paths []string, bodies []string) {
	t.Helper()
	id := "0123456789abcdef0123456789abcdef"
	for _, m := range []struct{ path, body string }{{"speech.config", `{}`}, {"speech.context", context}} {
		if err := conn.WriteMessage(websocket.TextMessage, uspText(m.body, "Path", m.path, "X-RequestId", id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]byte{wavHeader(len(pcm)), pcm, nil} {
		if err := conn.WriteMessage(websocket.BinaryMessage, uspBinary(c, "Path", "audio", "X-RequestId", id)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		msg, err := readUSP(conn, id)
		if err != nil {
			t.Fatalf("read: %v (after %v)", err, paths)
		}
		paths = append(paths, msg.path())
		bodies = append(bodies, string(msg.body))
		if msg.path() == "turn.end" {
			return paths, bodies
		}
	}
}

func silence(ms int) []byte { return make([]byte, ms*32) }

func TestRecognitionFindsPhrasesByPauses(t *testing.T) {
	a := start(t, Settings{Auth: AuthBearer})
	conn, _, err := dial(t, strings.Replace(a.URL(), "http", "ws", 1)+"/stt/speech/universal/v2", http.Header{"Authorization": {bearer(a.Issue())}}, "USP")
	if err != nil {
		t.Fatal(err)
	}
	// 300 ms tone, 400 ms pause, 200 ms tone, 100 ms pause (too short), 200 ms tone.
	var pcm []byte
	for _, part := range [][]byte{tone(9600), silence(400), tone(6400), silence(100), tone(6400)} {
		pcm = append(pcm, part...)
	}
	paths, bodies := sttTurn(t, conn, `{"phraseDetection":{"mode":"CONVERSATION"}}`, pcm)
	var phrases []struct {
		DisplayText      string
		Offset, Duration int64
	}
	for i, p := range paths {
		if p == "speech.phrase" {
			var ph struct {
				DisplayText      string
				Offset, Duration int64
			}
			json.Unmarshal([]byte(bodies[i]), &ph)
			phrases = append(phrases, ph)
		}
	}
	want := []struct {
		DisplayText      string
		Offset, Duration int64
	}{
		{DefaultPhrase, 0, 3_000_000},
		{DefaultPhrase, 7_000_000, 5_000_000}, // the 100 ms pause does not split
	}
	if len(phrases) != len(want) || phrases[0] != want[0] || phrases[1] != want[1] {
		t.Errorf("phrases = %+v, want %+v", phrases, want)
	}

	// The tail the native SDK sends again after turn.end: silence only.
	paths, bodies = sttTurn(t, conn, `{"phraseDetection":{"mode":"CONVERSATION"}}`, silence(300))
	if strings.Join(paths, ",") != "turn.start,speech.phrase,turn.end" || !strings.Contains(bodies[1], `"RecognitionStatus":"EndOfDictation"`) {
		t.Errorf("silent turn = %v %v, want one EndOfDictation", paths, bodies)
	}
	paths, bodies = sttTurn(t, conn, `{"phraseDetection":{"mode":"INTERACTIVE"}}`, silence(300))
	if !strings.Contains(bodies[1], `"RecognitionStatus":"InitialSilenceTimeout"`) {
		t.Errorf("silent interactive turn = %v %v, want InitialSilenceTimeout", paths, bodies)
	}
}

func TestTranslationAndSpeakerIDs(t *testing.T) {
	a := start(t, Settings{Auth: AuthBearer})
	conn, _, err := dial(t, strings.Replace(a.URL(), "http", "ws", 1)+"/stt/speech/universal/v2", http.Header{"Authorization": {bearer(a.Issue())}}, "USP")
	if err != nil {
		t.Fatal(err)
	}
	paths, bodies := sttTurn(t, conn, `{"translation":{"targetLanguages":["de","fr"]}}`, tone(16000))
	if got := strings.Join(paths, ","); got != "turn.start,speech.startdetected,translation.hypothesis,speech.enddetected,translation.phrase,turn.end" {
		t.Fatalf("translation turn = %s", got)
	}
	if !strings.Contains(bodies[4], `"Translations":[{"Language":"de","Text":"[de] Hello from the fake Azure."},{"Language":"fr","Text":"[fr] Hello from the fake Azure."}]`) {
		t.Errorf("translation.phrase = %s", bodies[4])
	}
	_, bodies = sttTurn(t, conn, `{"phraseDetection":{"speakerDiarization":{"mode":"Anonymous"}}}`, tone(16000))
	if !strings.Contains(bodies[4], `"SpeakerId":"Guest-1"`) {
		t.Errorf("speech.phrase with diarization = %s, want SpeakerId Guest-1", bodies[4])
	}
}

// TTSAuth plays the report's resource: recognition takes bearer, synthesis
// only aad.
func TestTTSAuthOverridesAuthForSynthesis(t *testing.T) {
	a := start(t, Settings{Auth: AuthBearer, TTSAuth: AuthAAD})
	ws := strings.Replace(a.URL(), "http", "ws", 1)
	tok := a.Issue()
	if _, _, err := dial(t, ws+"/stt/speech/universal/v2", http.Header{"Authorization": {bearer(tok)}}, "USP"); err != nil {
		t.Errorf("STT with bearer: %v, want 101", err)
	}
	if _, resp, _ := dial(t, ws+"/tts/cognitiveservices/websocket/v1", http.Header{"Authorization": {bearer(tok)}}, "USP"); resp == nil || resp.StatusCode != 401 || lastRequest(t, a).Reject != ReasonWrongForm {
		t.Errorf("TTS with bearer: %v, want 401 wrong_form", resp)
	}
	if _, _, err := dial(t, ws+"/tts/cognitiveservices/websocket/v1", http.Header{"Authorization": {aad(DefaultResourceID, tok)}}, "USP"); err != nil {
		t.Errorf("TTS with aad: %v, want 101", err)
	}
}

func TestRedirectStatus(t *testing.T) {
	for _, status := range []int{301, 307, 308} {
		a := start(t, Settings{Redirect: true, RedirectStatus: status})
		_, resp, _ := dial(t, ttsURL(a), http.Header{"Authorization": {bearer(a.Issue())}})
		if resp == nil || resp.StatusCode != status {
			t.Errorf("RedirectStatus %d: handshake answer %v", status, resp)
		}
	}
	if err := (Settings{RedirectStatus: 303}).Validate(); err == nil {
		t.Error("RedirectStatus 303: no error, want one")
	}
}

// The TLS listener: a certificate for localhost and 127.0.0.1 from the
// fake's CA, naming a CRL the plain listener serves (the native SDK 1.45
// refuses a certificate without one).
func TestTLSListener(t *testing.T) {
	a, err := Start(Options{Settings: Settings{Auth: AuthBearer}, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.CACertPEM()) {
		t.Fatal("CACertPEM is not a PEM certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	if !strings.HasPrefix(a.TLSURL(), "https://localhost:") {
		t.Fatalf("TLSURL = %q, want https://localhost:PORT", a.TLSURL())
	}
	for _, base := range []string{a.TLSURL(), strings.Replace(a.TLSURL(), "localhost", "127.0.0.1", 1)} {
		req, _ := http.NewRequest(http.MethodGet, base+"/tts/cognitiveservices/voices/list", nil)
		req.Header.Set("Authorization", bearer(a.Issue()))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", base, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s voices = %d, want 200", base, resp.StatusCode)
		}
		cert := resp.TLS.PeerCertificates[0]
		if len(cert.CRLDistributionPoints) != 1 || cert.CRLDistributionPoints[0] != a.URL()+"/_fake/ca.crl" {
			t.Errorf("CRL distribution points = %v, want the plain listener's /_fake/ca.crl", cert.CRLDistributionPoints)
		}
	}
	resp, body := send(t, http.MethodGet, a.URL()+"/_fake/ca.crl", nil, "")
	crl, err := x509.ParseRevocationList([]byte(body))
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("/_fake/ca.crl = %d, %v", resp.StatusCode, err)
	}
	block, _ := pem.Decode(a.CACertPEM())
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CRL signature: %v, want signed by the CA", err)
	}
	if len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("CRL revokes %d certificates, want none", len(crl.RevokedCertificateEntries))
	}
}

// The formats the native SDK asks for besides raw-16khz: other PCM rates
// and MP3, whose frames are valid Layer III headers covering the duration.
func TestOutputFormats(t *testing.T) {
	const text = "Twelve chars" // 12 characters: 600 ms
	tests := []struct {
		format     string
		bytes      int
		frameBytes int // mp3: the size of each frame
		header     []byte
	}{
		{"raw-16khz-16bit-mono-pcm", 19200, 0, nil},
		{"raw-24khz-16bit-mono-pcm", 28800, 0, nil},
		{"RIFF-8khz-16bit-mono-pcm", 44 + 9600, 0, []byte("RIFF")},
		{"raw-22050hz-16bit-mono-pcm", 2 * 13230, 0, nil},
		{"audio-16khz-32kbitrate-mono-mp3", 17 * 144, 144, []byte{0xFF, 0xF3, 0x48, 0xC0}},  // 9600 samples, 576 a frame
		{"audio-24khz-48kbitrate-mono-mp3", 25 * 144, 144, []byte{0xFF, 0xF3, 0x64, 0xC0}},  // 14400 samples
		{"audio-48khz-192kbitrate-mono-mp3", 25 * 576, 576, []byte{0xFF, 0xFB, 0xB4, 0xC0}}, // 28800 samples, 1152 a frame
	}
	for _, tc := range tests {
		audio, ok := synthesize(tc.format, text)
		if !ok || len(audio) != tc.bytes {
			t.Errorf("%s: %d bytes, %v, want %d", tc.format, len(audio), ok, tc.bytes)
			continue
		}
		if n, _ := FormatBytes(tc.format, text); n != tc.bytes {
			t.Errorf("FormatBytes(%s) = %d, want %d", tc.format, n, tc.bytes)
		}
		if tc.frameBytes > 0 {
			for off := 0; off < len(audio); off += tc.frameBytes {
				if string(audio[off:off+4]) != string(tc.header) {
					t.Fatalf("%s: frame at %d starts % x, want % x", tc.format, off, audio[off:off+4], tc.header)
				}
			}
		} else if tc.header != nil && string(audio[:4]) != string(tc.header) {
			t.Errorf("%s starts %q", tc.format, audio[:4])
		}
	}
	for _, bad := range []string{"ogg-24khz-16bit-mono-opus", "raw-16khz-8bit-mono-mulaw", "audio-16khz-33kbitrate-mono-mp3"} {
		if _, ok := synthesize(bad, text); ok {
			t.Errorf("%s: made audio, want unsupported", bad)
		}
	}
}
