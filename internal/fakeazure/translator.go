package fakeazure

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// The Translator text API on a custom domain:
// POST /translator/text/v3.0/translate
// (https://learn.microsoft.com/azure/ai-services/translator/reference/v3-0-reference,
// "Switzerland service endpoints": the custom endpoint carries the
// /translator/text/v3.0 prefix). Two request shapes reach that path:
//
//   - api-version=3.0, the documented v3 call (curl, the 1.x SDKs): target
//     languages in the to query parameter, body [{"Text": "..."}], answer
//     [{"translations": [{"text": "...", "to": "de"}]}];
//   - api-version=2026-06-06, what @azure-rest/ai-translation-text 2.0.0
//     builds on the same prefix: body {"inputs": [{"text": "...",
//     "targets": [{"language": "de"}]}]}, answer {"value":
//     [{"translations": [{"language": "de", "text": "..."}]}]} (the
//     package's TranslateBody and TranslationResultOutput types).

// Translation is what the fake Translator makes of text for a target
// language: the text marked with the language, so a test can tell it came
// back from the service.
func Translation(text, language string) string { return "[" + language + "] " + text }

// translatorAPIVersions are the api-version values the fake accepts.
var translatorAPIVersions = []string{"3.0", "2026-06-06"}

// serveTranslate is POST /translator/text/v3.0/translate?api-version=...
func (a *Azure) serveTranslate(w http.ResponseWriter, r *http.Request, finish func(int, string)) {
	fail := func(status int, code, message string) {
		writeAzureError(w, status, code, message)
		finish(status, "")
	}
	body := http.MaxBytesReader(w, r.Body, maxSSMLBytes)
	switch version := r.URL.Query().Get("api-version"); version {
	case "3.0":
		targets := r.URL.Query()["to"]
		if len(targets) == 0 {
			fail(http.StatusBadRequest, "400036", "The target language is not valid.")
			return
		}
		var items []struct{ Text string }
		if err := json.NewDecoder(body).Decode(&items); err != nil || len(items) == 0 {
			fail(http.StatusBadRequest, "400074", "The body of the request is not valid JSON.")
			return
		}
		type translation struct {
			Text string `json:"text"`
			To   string `json:"to"`
		}
		out := make([]map[string][]translation, len(items))
		for i, it := range items {
			for _, to := range targets {
				out[i] = map[string][]translation{"translations": append(out[i]["translations"], translation{Translation(it.Text, to), to})}
			}
		}
		writeJSON(w, http.StatusOK, out)
	case "2026-06-06":
		var in struct {
			Inputs []struct {
				Text    string `json:"text"`
				Targets []struct {
					Language string `json:"language"`
				} `json:"targets"`
			} `json:"inputs"`
		}
		if err := json.NewDecoder(body).Decode(&in); err != nil || len(in.Inputs) == 0 {
			fail(http.StatusBadRequest, "400074", "The body of the request is not valid JSON.")
			return
		}
		type translation struct {
			Language         string `json:"language"`
			Text             string `json:"text"`
			SourceCharacters int    `json:"sourceCharacters"`
		}
		type item struct {
			Translations []translation `json:"translations"`
		}
		out := struct {
			Value []item `json:"value"`
		}{Value: make([]item, len(in.Inputs))}
		for i, it := range in.Inputs {
			if len(it.Targets) == 0 {
				fail(http.StatusBadRequest, "400036", "The target language is not valid.")
				return
			}
			for _, t := range it.Targets {
				out.Value[i].Translations = append(out.Value[i].Translations, translation{t.Language, Translation(it.Text, t.Language), len([]rune(it.Text))})
			}
		}
		writeJSON(w, http.StatusOK, out)
	default:
		fail(http.StatusBadRequest, "400021", "The API version parameter is missing or invalid; this fake knows "+strings.Join(translatorAPIVersions, " and ")+".")
		return
	}
	finish(http.StatusOK, "")
}

// translationTargets are the target languages of a speech translation
// session: the to query parameter of the /stt/speech/universal/v2 upgrade,
// comma-separated as the JavaScript Speech SDK writes it (to=de,fr). None
// means plain recognition.
func translationTargets(q url.Values) []string {
	var out []string
	for _, v := range q["to"] {
		for l := range strings.SplitSeq(v, ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
