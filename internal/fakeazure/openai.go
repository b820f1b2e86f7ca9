package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// OpenAIReply is the assistant's answer to every chat completion. Streamed,
// it arrives one word per event (each word but the last followed by a space).
const OpenAIReply = "Hello from the fake Azure OpenAI deployment."

// OpenAIModel is the model name in every completion.
const OpenAIModel = "gpt-4o-mini"

// Stream is one streamed chat completion as the fake wrote it.
type Stream struct {
	Deployment string
	// Events holds when each server-sent event was written and flushed, in
	// order; the last is "data: [DONE]" once Done.
	Events []time.Time
	// Done is true once every event was written.
	Done bool
}

// Streams returns the streamed completions so far, oldest first.
func (a *Azure) Streams() []Stream {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Stream, len(a.streams))
	for i, s := range a.streams {
		out[i] = *s
		out[i].Events = append([]time.Time(nil), s.Events...)
	}
	return out
}

// StreamDone delivers, for each streamed completion that finished, the time
// its last event (data: [DONE]) was flushed. A proxy that streams delivers
// the earlier events to its client before that time; one that buffers does
// not. The channel holds 64; later values are dropped while it is full.
func (a *Azure) StreamDone() <-chan time.Time { return a.streamDone }

// chatEvents are the data lines of a streamed completion, shaped as Azure
// OpenAI sends them: first a chunk with prompt_filter_results and no choices,
// then the role, the words, the finish reason, and [DONE].
func chatEvents(id string, created int64) []string {
	type delta struct {
		Role    string  `json:"role,omitempty"`
		Content *string `json:"content,omitempty"`
	}
	type choice struct {
		Index        int     `json:"index"`
		Delta        delta   `json:"delta"`
		FinishReason *string `json:"finish_reason"`
		Logprobs     *string `json:"logprobs"`
	}
	chunk := func(d delta, finish *string) string {
		b, _ := json.Marshal(map[string]any{
			"id":                 id,
			"object":             "chat.completion.chunk",
			"created":            created,
			"model":              OpenAIModel,
			"system_fingerprint": "fp_fakeazure",
			"choices":            []choice{{Delta: d, FinishReason: finish}},
		})
		return string(b)
	}
	empty, stop := "", "stop"
	events := []string{
		`{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}`,
		chunk(delta{Role: "assistant", Content: &empty}, nil),
	}
	words := strings.Fields(OpenAIReply)
	for i, w := range words {
		if i < len(words)-1 {
			w += " "
		}
		events = append(events, chunk(delta{Content: &w}, nil))
	}
	return append(events, chunk(delta{}, &stop), "[DONE]")
}

// serveModels is GET /openai/models?api-version=..., the models the resource
// can use (https://learn.microsoft.com/rest/api/azureopenai/models/list),
// the cheapest authenticated call Azure OpenAI has without a deployment
// name: doctor's probe.
func (a *Azure) serveModels(w http.ResponseWriter, r *http.Request, finish func(int, string)) {
	if r.URL.Query().Get("api-version") == "" {
		writeAzureError(w, http.StatusNotFound, "404", "Resource not found")
		finish(http.StatusNotFound, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id":               OpenAIModel + "-2024-07-18",
			"object":           "model",
			"status":           "succeeded",
			"lifecycle_status": "generally-available",
			"created_at":       1721347200,
			"capabilities": map[string]bool{
				"fine_tune": false, "inference": true, "completion": false, "chat_completion": true, "embeddings": false,
			},
		}},
	})
	finish(http.StatusOK, "")
}

// serveChat is POST /openai/deployments/{d}/chat/completions?api-version=...
func (a *Azure) serveChat(w http.ResponseWriter, r *http.Request, deployment string, settings Settings, finish func(int, string)) {
	fail := func(status int, code, message string) {
		writeAzureError(w, status, code, message)
		finish(status, "")
	}
	// Azure OpenAI answers a request without api-version as an unknown resource.
	if r.URL.Query().Get("api-version") == "" {
		fail(http.StatusNotFound, "404", "Resource not found")
		return
	}
	var body struct {
		Messages []json.RawMessage `json:"messages"`
		Stream   bool              `json:"stream"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSSMLBytes)).Decode(&body); err != nil {
		fail(http.StatusBadRequest, "BadRequest", "The request body is not valid JSON: "+err.Error())
		return
	}
	if len(body.Messages) == 0 {
		fail(http.StatusBadRequest, "BadRequest", "'messages' is a required property.")
		return
	}
	id := "chatcmpl-" + randomHex(12)
	created := time.Now().Unix()
	if !body.Stream {
		if settings.ChatDelay > 0 && !a.sleep(r.Context(), settings.ChatDelay) {
			finish(499, "") // the client left while the model thought
			return
		}
		words := len(strings.Fields(OpenAIReply))
		writeJSON(w, http.StatusOK, map[string]any{
			"id":      id,
			"object":  "chat.completion",
			"created": created,
			"model":   OpenAIModel,
			"choices": []map[string]any{{
				"index":         0,
				"message":       map[string]string{"role": "assistant", "content": OpenAIReply},
				"finish_reason": "stop",
			}},
			"usage": map[string]int{"prompt_tokens": 10 * len(body.Messages), "completion_tokens": words, "total_tokens": 10*len(body.Messages) + words},
		})
		finish(http.StatusOK, "")
		return
	}

	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	finish(http.StatusOK, "")
	rc := http.NewResponseController(w)

	stream := &Stream{Deployment: deployment}
	a.mu.Lock()
	a.streams = append(a.streams, stream)
	a.mu.Unlock()

	events := chatEvents(id, created)
	for i, ev := range events {
		if i > 0 && !a.sleep(r.Context(), settings.SSEGap) {
			return
		}
		if _, err := w.Write([]byte("data: " + ev + "\n\n")); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		now := time.Now()
		last := i == len(events)-1
		a.mu.Lock()
		stream.Events = append(stream.Events, now)
		stream.Done = last
		a.mu.Unlock()
		if last {
			select {
			case a.streamDone <- now:
			default:
			}
		}
	}
}
