package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The Language service's text analysis on a custom domain:
// POST /language/:analyze-text?api-version=2023-04-01
// (https://learn.microsoft.com/rest/api/language/analyze-text/analyze-text/analyze-text),
// which @azure/ai-language-text 1.1 and azure-ai-textanalytics 5.4 call.
// The fake knows two kinds: LanguageDetection (DetectLanguage) and
// SentimentAnalysis (Sentiment).

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
	if in.Kind != "LanguageDetection" && in.Kind != "SentimentAnalysis" {
		fail(http.StatusBadRequest, "InvalidRequest", "This fake knows the kinds LanguageDetection and SentimentAnalysis only, not "+in.Kind+".")
		return
	}
	if len(in.AnalysisInput.Documents) == 0 {
		fail(http.StatusBadRequest, "InvalidRequest", "Invalid document in request.")
		return
	}
	if in.Kind == "SentimentAnalysis" {
		var docs []map[string]any
		for _, d := range in.AnalysisInput.Documents {
			s := Sentiment(d.Text)
			scores := map[string]float64{"positive": 0, "neutral": 0, "negative": 0}
			scores[s] = 1
			docs = append(docs, map[string]any{"id": d.ID, "sentiment": s, "confidenceScores": scores, "warnings": []any{},
				"sentences": []map[string]any{{"sentiment": s, "confidenceScores": scores, "offset": 0,
					"length": utf8.RuneCountInString(d.Text), "text": d.Text}}})
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"kind":    "SentimentAnalysisResults",
			"results": map[string]any{"documents": docs, "errors": []any{}, "modelVersion": "2024-04-01"},
		})
		finish(http.StatusOK, "")
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
		name, iso := DetectLanguage(d.Text)
		docs[i] = document{ID: d.ID, DetectedLanguage: detected{name, iso, 1}, Warnings: []any{}}
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

// DetectLanguage is the fake's language detection: German (de) when text
// has one of a few common German words, else English (en).
func DetectLanguage(text string) (name, iso6391 string) {
	for _, w := range strings.Fields(strings.ToLower(text)) {
		switch strings.Trim(w, ".,!?") {
		case "der", "die", "das", "und", "ist", "ich", "nicht", "guten", "morgen", "hallo":
			return "German", "de"
		}
	}
	return "English", "en"
}

// Sentiment is the fake's sentiment analysis: "positive" or "negative" by a
// few words, else "neutral".
func Sentiment(text string) string {
	for _, w := range strings.Fields(strings.ToLower(text)) {
		switch strings.Trim(w, ".,!?") {
		case "love", "great", "good", "happy", "excellent":
			return "positive"
		case "hate", "bad", "awful", "terrible", "sad":
			return "negative"
		}
	}
	return "neutral"
}
