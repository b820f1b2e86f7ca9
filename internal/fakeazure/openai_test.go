package fakeazure

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entraproxy/entraproxy/internal/leakcheck"
)

const chatPath = "/openai/deployments/gpt-4o-mini/chat/completions"

func TestChatCompletion(t *testing.T) {
	tests := []struct {
		name  string
		query string
		body  string
		want  int
	}{
		{name: "plain", query: "?api-version=2024-10-21", body: `{"messages":[{"role":"user","content":"hi"}]}`, want: 200},
		{name: "no api-version", body: `{"messages":[{"role":"user","content":"hi"}]}`, want: 404},
		{name: "no messages", query: "?api-version=2024-10-21", body: `{}`, want: 400},
		{name: "not json", query: "?api-version=2024-10-21", body: `hello`, want: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := start(t, Settings{})
			h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
			resp, body := send(t, http.MethodPost, a.URL()+chatPath+tc.query, h, tc.body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				azureError(t, body)
				return
			}
			var c struct {
				Object  string
				Model   string
				Choices []struct {
					Message      struct{ Role, Content string }
					FinishReason string `json:"finish_reason"`
				}
				Usage struct {
					TotalTokens int `json:"total_tokens"`
				}
			}
			if err := json.Unmarshal([]byte(body), &c); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			if c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message.Content != OpenAIReply ||
				c.Choices[0].Message.Role != "assistant" || c.Choices[0].FinishReason != "stop" || c.Usage.TotalTokens == 0 {
				t.Errorf("completion = %s, want one assistant choice %q", body, OpenAIReply)
			}
		})
	}
}

// TestChatCompletionDelay: with ChatDelay the answer comes no sooner than
// the delay, as from a reasoning model that thinks before it answers.
func TestChatCompletionDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	a := start(t, Settings{ChatDelay: delay})
	h := map[string][]string{"Authorization": {bearer(a.Issue())}, "Content-Type": {"application/json"}}
	start := time.Now()
	resp, body := send(t, http.MethodPost, a.URL()+chatPath+"?api-version=2024-10-21", h, `{"messages":[{"role":"user","content":"hi"}]}`)
	if took := time.Since(start); resp.StatusCode != http.StatusOK || took < delay {
		t.Errorf("answer %d after %v, want 200 after at least %v (body %s)", resp.StatusCode, took, delay, body)
	}

}

// streamChat starts a streamed chat completion against a and returns the
// response, whose body the caller reads and closes.
func streamChat(t *testing.T, a *Azure) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, a.URL()+chatPath+"?api-version=2024-10-21",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer(a.Issue()))
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{ResponseHeaderTimeout: leakcheck.HangGuard}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		t.Fatalf("status, Content-Type = %d, %q, want 200, text/event-stream", resp.StatusCode, ct)
	}
	return resp
}

// TestChatCompletionStreams checks that the first event reaches the client
// while the stream is still being written: with an hour between events, the
// second cannot have been written when the first is read, however slow the
// machine.
func TestChatCompletionStreams(t *testing.T) {
	a := start(t, Settings{SSEGap: time.Hour})
	resp := streamChat(t, a)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first line = %q, %v, want the first event", line, err)
	}
	// The fake notes an event after flushing it, so the first may or may
	// not be noted yet; the second cannot have been written.
	streams := a.Streams()
	if len(streams) != 1 || streams[0].Done || len(streams[0].Events) > 1 {
		t.Fatalf("Streams() = %+v, want one stream still being written, with at most one event", streams)
	}
}

// TestChatCompletionStream checks the events of a whole stream, written
// spaced by the gap (the fake's own timestamps: a sleep is never shorter),
// and that StreamDone reports its end.
func TestChatCompletionStream(t *testing.T) {
	const gap = 30 * time.Millisecond
	a := start(t, Settings{SSEGap: gap})
	resp := streamChat(t, a)
	defer resp.Body.Close()

	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		d, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		data = append(data, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	var done time.Time
	select {
	case done = <-a.StreamDone():
	case <-time.After(leakcheck.HangGuard):
		t.Fatal("StreamDone never delivered")
	}
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("events = %q, want several ending with [DONE]", data)
	}

	var text strings.Builder
	for _, d := range data[:len(data)-1] {
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string }
			}
		}
		if err := json.Unmarshal([]byte(d), &chunk); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		for _, c := range chunk.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.String() != OpenAIReply {
		t.Errorf("streamed text = %q, want %q", text.String(), OpenAIReply)
	}

	streams := a.Streams()
	if len(streams) != 1 || !streams[0].Done || len(streams[0].Events) != len(data) || !streams[0].Events[len(data)-1].Equal(done) {
		t.Fatalf("Streams() = %+v, want one done stream of %d events ending at %v", streams, len(data), done)
	}
	for i := 1; i < len(streams[0].Events); i++ {
		if d := streams[0].Events[i].Sub(streams[0].Events[i-1]); d < gap {
			t.Errorf("event %d written %v after the previous, want at least %v", i, d, gap)
		}
	}
}

// GET /openai/models, as Azure OpenAI serves it: bearer only, api-version
// required.
func TestModelsList(t *testing.T) {
	a := start(t, Settings{})
	for _, tc := range []struct {
		name, query, auth string
		want              int
	}{
		{"bearer", "?api-version=2024-10-21", bearer(a.Issue()), 200},
		{"aad form refused", "?api-version=2024-10-21", aad(DefaultResourceID, a.Issue()), 401},
		{"no token", "?api-version=2024-10-21", "", 401},
		{"no api-version", "", bearer(a.Issue()), 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string][]string{}
			if tc.auth != "" {
				h["Authorization"] = []string{tc.auth}
			}
			resp, body := send(t, http.MethodGet, a.URL()+"/openai/models"+tc.query, h, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 {
				azureError(t, body)
				return
			}
			var list struct {
				Object string
				Data   []struct{ ID, Object, Status string }
			}
			if err := json.Unmarshal([]byte(body), &list); err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].Object != "model" {
				t.Errorf("models = %s (%v), want a list of one model", body, err)
			}
		})
	}
}
