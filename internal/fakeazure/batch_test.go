package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBatchTranscription: the links of every answer are absolute URLs of the
// host the request addressed, and following them works; the result file's
// contentUrl is on the storage host.
func TestBatchTranscription(t *testing.T) {
	a := start(t, Settings{})
	h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
	const q = "?api-version=2024-11-15"
	var created []string
	for _, name := range []string{"one", "two", "three"} {
		resp, body := send(t, http.MethodPost, a.URL()+"/speechtotext/transcriptions:submit"+q, h,
			`{"displayName":"`+name+`","locale":"en-US","contentUrls":["https://example.blob.core.windows.net/audio/`+name+`.wav"]}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("submit = %d %s", resp.StatusCode, body)
		}
		var tr struct {
			Self  string
			Links struct{ Files string }
		}
		json.Unmarshal([]byte(body), &tr)
		if loc := resp.Header.Get("Location"); loc != tr.Self || !strings.HasPrefix(loc, a.URL()+"/speechtotext/transcriptions/") {
			t.Errorf("Location %q, self %q: want the same absolute URL on %s", loc, tr.Self, a.URL())
		}
		created = append(created, tr.Self)
		resp, body = send(t, http.MethodGet, tr.Links.Files, h, "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"contentUrl":"https://`+BatchContentHost+`/`) {
			t.Errorf("files = %d %s, want a contentUrl on %s", resp.StatusCode, body, BatchContentHost)
		}
	}
	var seen []string
	next := a.URL() + "/speechtotext/transcriptions" + q
	for next != "" {
		resp, body := send(t, http.MethodGet, next, h, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list = %d %s", resp.StatusCode, body)
		}
		var page struct {
			Values []struct{ Self string }
			Next   string `json:"@nextLink"`
		}
		json.Unmarshal([]byte(body), &page)
		for _, v := range page.Values {
			seen = append(seen, v.Self)
		}
		next = page.Next
	}
	if strings.Join(seen, " ") != strings.Join(created, " ") {
		t.Errorf("paged list = %q, want %q", seen, created)
	}
	if resp, _ := send(t, http.MethodGet, created[0], map[string][]string{"Authorization": {bearer(a.Issue())}, "Ocp-Apim-Subscription-Key": {"dummy"}}, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("with a key: %d, want 401", resp.StatusCode)
	}
}
