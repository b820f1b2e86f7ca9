package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestAnalyzeText(t *testing.T) {
	const path = "/language/:analyze-text"
	tests := []struct {
		name  string
		query string
		body  string
		want  int
	}{
		{"language detection", "?api-version=2023-04-01", `{"kind":"LanguageDetection","analysisInput":{"documents":[{"id":"0","text":"Hello world"},{"id":"7","text":"Hi"}]},"parameters":{}}`, 200},
		{"no api-version", "", `{"kind":"LanguageDetection","analysisInput":{"documents":[{"id":"0","text":"Hello"}]}}`, 404},
		{"another kind", "?api-version=2023-04-01", `{"kind":"EntityRecognition","analysisInput":{"documents":[{"id":"0","text":"Hello"}]}}`, 400},
		{"no documents", "?api-version=2023-04-01", `{"kind":"LanguageDetection","analysisInput":{"documents":[]}}`, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
			resp, body := send(t, http.MethodPost, a.URL()+path+tc.query, h, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				azureError(t, body)
				return
			}
			var out struct {
				Kind    string
				Results struct {
					Documents []struct {
						ID               string
						DetectedLanguage struct{ ISO6391Name string }
					}
				}
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if out.Kind != "LanguageDetectionResults" || len(out.Results.Documents) != 2 || out.Results.Documents[1].ID != "7" ||
				out.Results.Documents[0].DetectedLanguage.ISO6391Name != "en" {
				t.Errorf("answer = %s, want two documents (ids 0 and 7) detected as en", body)
			}
		})
	}
}

// What azure-ai-textanalytics and azure-ai-translation-text 2.0 for Python
// send: German detected, sentiments, and the Translator version in the path.
func TestLanguageAndTranslatorForPython(t *testing.T) {
	tests := []struct {
		name, path, body string
		want             int
		contains         string
	}{
		{"German", "/language/:analyze-text?api-version=2023-04-01",
			`{"kind":"LanguageDetection","analysisInput":{"documents":[{"id":"1","text":"Guten Morgen"}]}}`, 200,
			`"detectedLanguage":{"name":"German","iso6391Name":"de","confidenceScore":1}`},
		{"sentiment", "/language/:analyze-text?api-version=2023-04-01",
			`{"kind":"SentimentAnalysis","analysisInput":{"documents":[{"id":"1","text":"I hate rain"}]}}`, 200,
			`"sentiment":"negative"`},
		{"translate, version in the path", "/translator/text/v2026-06-06/translate?api-version=2026-06-06",
			`{"inputs":[{"text":"Hello","targets":[{"language":"de"}]}]}`, 200,
			`{"value":[{"translations":[{"language":"de","text":"[de] Hello","sourceCharacters":5}]}]}`},
		{"translate, path and api-version differ", "/translator/text/v2026-06-06/translate?api-version=3.0&to=de", `[{"Text":"x"}]`, 400, ""},
		{"translate, the global path", "/translate?api-version=2026-06-06", `{}`, 404, ""},
	}
	a := start(t, Settings{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
			resp, body := send(t, http.MethodPost, a.URL()+tc.path, h, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body = %s, want it to contain %s", body, tc.contains)
			}
		})
	}
}
