package fakeazure

import (
	"encoding/json"
	"net/http"
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
		{"another kind", "?api-version=2023-04-01", `{"kind":"SentimentAnalysis","analysisInput":{"documents":[{"id":"0","text":"Hello"}]}}`, 400},
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
