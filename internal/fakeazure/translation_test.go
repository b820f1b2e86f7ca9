package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// A speech translation session (the to parameter on /stt/speech/universal/v2,
// as the JavaScript SDK's TranslationRecognizer opens it) ends its turn with
// translation.hypothesis and translation.phrase, one translation per target,
// in place of speech.hypothesis and speech.phrase.
func TestSpeechTranslationPhrase(t *testing.T) {
	a := start(t, Settings{})
	conn, _, err := dial(t, "ws://"+a.CustomHost()+"/stt/speech/universal/v2?from=en-US&to=de,fr&scenario=interactive", http.Header{"Authorization": {bearer(a.Issue())}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	const id = "0123ABCD"
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
		if msg.path() == "translation.phrase" {
			var p struct {
				RecognitionStatus string
				Text              string
				Duration          json.Number
				Translation       struct {
					TranslationStatus string
					Translations      []struct{ Language, Text string }
				}
			}
			if err := json.Unmarshal(msg.body, &p); err != nil {
				t.Fatalf("translation.phrase %s: %v", msg.body, err)
			}
			tr := p.Translation.Translations
			if p.RecognitionStatus != "Success" || p.Text != DefaultPhrase || p.Duration != "10000000" || p.Translation.TranslationStatus != "Success" ||
				len(tr) != 2 || tr[0].Language != "de" || tr[0].Text != Translation(DefaultPhrase, "de") || tr[1].Language != "fr" {
				t.Errorf("translation.phrase = %s, want the phrase translated to de and fr", msg.body)
			}
		}
		if msg.path() == "turn.end" {
			break
		}
	}
	want := "turn.start,speech.startdetected,translation.hypothesis,speech.enddetected,translation.phrase,turn.end"
	if got := strings.Join(paths, ","); got != want {
		t.Errorf("messages = %s, want %s", got, want)
	}
}
