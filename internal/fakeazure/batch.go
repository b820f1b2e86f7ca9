package fakeazure

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Batch transcription (Speech to text REST, api-version 2024-11-15), as far
// as its links go: every answer names the URLs to call next as absolute
// URLs of the host the request was addressed to (self, links.files,
// @nextLink, and Location on a 201), which Microsoft's batch samples follow
// (https://learn.microsoft.com/azure/ai-services/speech-service/batch-transcription-create).
// The result files' contentUrl points at blob storage, another host.
// Transcriptions "succeed" at once.

// BatchPageSize is how many transcriptions one list page holds unless the
// request's top says otherwise; a longer list has an @nextLink.
const BatchPageSize = 2

// BatchContentHost is the storage host of every result file's contentUrl.
const BatchContentHost = "fakespeechstorage.blob.core.windows.net"

type transcription struct {
	id          string
	displayName string
	locale      string
	created     time.Time
}

// batchPath splits a batch transcription path: "" for the collection,
// "ID" or "ID/files" below it; ok is false for other paths.
func batchPath(path string) (rest string, ok bool) {
	if path == "/speechtotext/transcriptions" || path == "/speechtotext/transcriptions:submit" {
		return "", true
	}
	rest, ok = strings.CutPrefix(path, "/speechtotext/transcriptions/")
	return rest, ok && rest != ""
}

// serveBatch answers the batch transcription endpoints.
func (a *Azure) serveBatch(w http.ResponseWriter, r *http.Request, finish func(int, string)) {
	fail := func(status int, code, message string) {
		writeAzureError(w, status, code, message)
		finish(status, "")
	}
	apiVersion := r.URL.Query().Get("api-version")
	if apiVersion == "" {
		fail(http.StatusNotFound, "404", "Resource not found")
		return
	}
	base := "http://" + r.Host + "/speechtotext/transcriptions"
	link := func(path string, query ...string) string {
		q := "api-version=" + apiVersion
		for i := 0; i+1 < len(query); i += 2 {
			q += "&" + query[i] + "=" + query[i+1]
		}
		return base + path + "?" + q
	}
	view := func(t transcription) map[string]any {
		return map[string]any{
			"self":               link("/" + t.id),
			"links":              map[string]string{"files": link("/" + t.id + "/files")},
			"displayName":        t.displayName,
			"locale":             t.locale,
			"status":             "Succeeded",
			"createdDateTime":    t.created.UTC().Format(time.RFC3339),
			"lastActionDateTime": t.created.UTC().Format(time.RFC3339),
			"properties":         map[string]any{"durationMilliseconds": 1500},
		}
	}
	rest, _ := batchPath(r.URL.Path)
	switch {
	case r.URL.Path == "/speechtotext/transcriptions:submit":
		var body struct {
			DisplayName string   `json:"displayName"`
			Locale      string   `json:"locale"`
			ContentURLs []string `json:"contentUrls"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.Locale == "" || len(body.ContentURLs) == 0 {
			fail(http.StatusBadRequest, "InvalidPayload", "The request needs displayName, locale and contentUrls.")
			return
		}
		t := transcription{id: newUUID(), displayName: body.DisplayName, locale: body.Locale, created: time.Now()}
		a.mu.Lock()
		a.transcriptions = append(a.transcriptions, t)
		a.mu.Unlock()
		w.Header().Set("Location", link("/"+t.id))
		writeJSON(w, http.StatusCreated, view(t))
		finish(http.StatusCreated, "")
	case rest == "":
		skip, _ := strconv.Atoi(r.URL.Query().Get("skip"))
		top, err := strconv.Atoi(r.URL.Query().Get("top"))
		if err != nil || top <= 0 {
			top = BatchPageSize
		}
		a.mu.Lock()
		all := append([]transcription(nil), a.transcriptions...)
		a.mu.Unlock()
		page := map[string]any{"values": []any{}}
		var values []any
		for i := skip; i < len(all) && i < skip+top; i++ {
			values = append(values, view(all[i]))
		}
		if values != nil {
			page["values"] = values
		}
		if skip+top < len(all) {
			page["@nextLink"] = link("", "skip", strconv.Itoa(skip+top), "top", strconv.Itoa(top))
		}
		writeJSON(w, http.StatusOK, page)
		finish(http.StatusOK, "")
	default:
		id, files := strings.CutSuffix(rest, "/files")
		a.mu.Lock()
		var found *transcription
		for i := range a.transcriptions {
			if a.transcriptions[i].id == id {
				found = &a.transcriptions[i]
			}
		}
		a.mu.Unlock()
		if found == nil || strings.Contains(id, "/") {
			fail(http.StatusNotFound, "NotFound", "There is no transcription "+id+".")
			return
		}
		if !files {
			writeJSON(w, http.StatusOK, view(*found))
			finish(http.StatusOK, "")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"values": []any{map[string]any{
			"self":  link("/" + id + "/files/" + id[:8]),
			"name":  "contenturl_0.json",
			"kind":  "Transcription",
			"links": map[string]string{"contentUrl": "https://" + BatchContentHost + "/results/" + id + "/contenturl_0.json?sv=2024-11-04&sig=fake"},
		}}})
		finish(http.StatusOK, "")
	}
}
