package fakeazure

import (
	"encoding/json"
	"net/http"
	"testing"
)

const translatePath = "/translator/text/v3.0/translate"

func TestTranslate(t *testing.T) {
	tests := []struct {
		name  string
		query string
		body  string
		want  int
		// wantText is the first translation's text on success.
		wantText string
	}{
		{"v3.0 documented call", "?api-version=3.0&to=de&to=fr", `[{"Text":"Hello"}]`, 200, "[de] Hello"},
		{"2026-06-06 as the JS 2.0 client sends it", "?api-version=2026-06-06", `{"inputs":[{"text":"Hello","targets":[{"language":"de"},{"language":"fr"}]}]}`, 200, "[de] Hello"},
		{"no api-version", "?to=de", `[{"Text":"Hello"}]`, 400, ""},
		{"unknown api-version", "?api-version=2.0&to=de", `[{"Text":"Hello"}]`, 400, ""},
		{"v3.0 without a target", "?api-version=3.0", `[{"Text":"Hello"}]`, 400, ""},
		{"2026-06-06 without a target", "?api-version=2026-06-06", `{"inputs":[{"text":"Hello"}]}`, 400, ""},
		{"not json", "?api-version=3.0&to=de", `Hello`, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
			resp, body := send(t, http.MethodPost, a.URL()+translatePath+tc.query, h, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				azureError(t, body)
				return
			}
			type translation struct{ Text, To, Language string }
			var items []struct{ Translations []translation }
			if tc.query == "?api-version=2026-06-06" {
				var v struct {
					Value []struct{ Translations []translation }
				}
				if err := json.Unmarshal([]byte(body), &v); err != nil {
					t.Fatalf("decode %s: %v", body, err)
				}
				items = v.Value
			} else if err := json.Unmarshal([]byte(body), &items); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if len(items) != 1 || len(items[0].Translations) != 2 || items[0].Translations[0].Text != tc.wantText ||
				items[0].Translations[1].Text != "[fr] Hello" {
				t.Errorf("answer = %s, want translations %q and %q", body, tc.wantText, "[fr] Hello")
			}
		})
	}
}

// Translator, like Azure OpenAI, takes only the bearer form: aad#...# is
// Speech's.
func TestTranslateRefusesAADForm(t *testing.T) {
	a := start(t, Settings{Auth: AuthBoth})
	h := map[string][]string{"Authorization": {aad(DefaultResourceID, a.Issue())}, "Content-Type": {"application/json"}}
	resp, body := send(t, http.MethodPost, a.URL()+translatePath+"?api-version=3.0&to=de", h, `[{"Text":"Hello"}]`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d (%s), want 401", resp.StatusCode, body)
	}
}
