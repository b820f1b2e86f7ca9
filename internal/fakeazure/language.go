package fakeazure

import (
	"encoding/json"
	"net/http"
)

// The Language service's text analysis on a custom domain:
// POST /language/:analyze-text?api-version=2023-04-01
// (https://learn.microsoft.com/rest/api/language/analyze-text/analyze-text/analyze-text),
// which @azure/ai-language-text 1.1 calls. The fake knows one kind,
// LanguageDetection, and detects every document as English.

// serveAnalyzeText is POST /language/:analyze-text?api-version=...
func (a *Azure) serveAnalyzeText(w http.ResponseWriter, r *http.Request, finish func(int, string)) {
	fail := func(status int, code, message string) {
		writeAzureError(w, status, code, message)
		finish(status, "")
	}
	if r.URL.Query().Get("api-version") == "" {
		fail(http.StatusNotFound, "404", "Resource not found")
		return
	}
	var in struct {
		Kind          string `json:"kind"`
		AnalysisInput struct {
			Documents []struct {
				ID   string `json:"id"`
				Text string `json:"text"`
			} `json:"documents"`
		} `json:"analysisInput"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSSMLBytes)).Decode(&in); err != nil {
		fail(http.StatusBadRequest, "InvalidRequest", "Invalid Request.")
		return
	}
	if in.Kind != "LanguageDetection" {
		fail(http.StatusBadRequest, "InvalidRequest", "This fake knows the kind LanguageDetection only, not "+in.Kind+".")
		return
	}
	if len(in.AnalysisInput.Documents) == 0 {
		fail(http.StatusBadRequest, "InvalidRequest", "Invalid document in request.")
		return
	}
	type detected struct {
		Name            string  `json:"name"`
		ISO6391Name     string  `json:"iso6391Name"`
		ConfidenceScore float64 `json:"confidenceScore"`
	}
	type document struct {
		ID               string   `json:"id"`
		DetectedLanguage detected `json:"detectedLanguage"`
		Warnings         []any    `json:"warnings"`
	}
	docs := make([]document, len(in.AnalysisInput.Documents))
	for i, d := range in.AnalysisInput.Documents {
		docs[i] = document{ID: d.ID, DetectedLanguage: detected{"English", "en", 1}, Warnings: []any{}}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": "LanguageDetectionResults",
		"results": map[string]any{
			"documents":    docs,
			"errors":       []any{},
			"modelVersion": "2024-04-01",
		},
	})
	finish(http.StatusOK, "")
}
