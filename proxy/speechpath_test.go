package proxy

import (
	"net/http"
	"testing"
)

// Regional / container Speech paths reach the custom domain under /stt or
// /tts; everything else passes as it is.
func TestSpeechPathMapping(t *testing.T) {
	tests := []struct {
		name string
		in   string // path and query the client sends
		want string // request URI the upstream sees
	}{
		{"STT v1 conversation", "/speech/recognition/conversation/cognitiveservices/v1?language=en-US&format=simple",
			"/stt/speech/recognition/conversation/cognitiveservices/v1?language=en-US&format=simple"},
		{"STT v1 interactive", "/speech/recognition/interactive/cognitiveservices/v1?language=de-DE&X-ConnectionId=abc",
			"/stt/speech/recognition/interactive/cognitiveservices/v1?language=de-DE&X-ConnectionId=abc"},
		{"STT v1 dictation", "/speech/recognition/dictation/cognitiveservices/v1",
			"/stt/speech/recognition/dictation/cognitiveservices/v1"},
		{"STT v2", "/speech/universal/v2?X-ConnectionId=0123", "/stt/speech/universal/v2?X-ConnectionId=0123"},
		{"TTS WebSocket path", "/cognitiveservices/websocket/v1?X-ConnectionId=0123", "/tts/cognitiveservices/websocket/v1?X-ConnectionId=0123"},
		{"TTS REST", "/cognitiveservices/v1", "/tts/cognitiveservices/v1"},
		{"voices list", "/cognitiveservices/voices/list", "/tts/cognitiveservices/voices/list"},
		{"credential removed, rest of query kept", "/cognitiveservices/v1?Ocp-Apim-Subscription-Key=k&b=2&a=1", "/tts/cognitiveservices/v1?b=2&a=1"},

		{"already /stt/", "/stt/speech/recognition/conversation/cognitiveservices/v1?language=en-US",
			"/stt/speech/recognition/conversation/cognitiveservices/v1?language=en-US"},
		{"already /stt/ v2", "/stt/speech/universal/v2", "/stt/speech/universal/v2"},
		{"already /tts/", "/tts/cognitiveservices/websocket/v1", "/tts/cognitiveservices/websocket/v1"},
		{"custom voice /voice/", "/voice/cognitiveservices/v1?deploymentId=d1", "/voice/cognitiveservices/v1?deploymentId=d1"},
		{"fast transcription", "/speechtotext/transcriptions:transcribe?api-version=2024-11-15",
			"/speechtotext/transcriptions:transcribe?api-version=2024-11-15"},
		{"Azure OpenAI", "/openai/deployments/gpt/chat/completions?api-version=2024-10-21",
			"/openai/deployments/gpt/chat/completions?api-version=2024-10-21"},
		{"root", "/", "/"},
		{"encoded slash not mapped", "/cognitiveservices%2Fv1", "/cognitiveservices%2Fv1"},
		{"encoded slash in STT not mapped", "/speech/recognition%2Finteractive/cognitiveservices/v1",
			"/speech/recognition%2Finteractive/cognitiveservices/v1"},
		{"longer TTS path not mapped", "/cognitiveservices/v1/extra", "/cognitiveservices/v1/extra"},
		{"prefix of a Speech path not mapped", "/cognitiveservices/v10", "/cognitiveservices/v10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.SpeechPaths = true })
			resp, body := f.get(t, tc.in)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
			}
			if got := f.seen.last(t).requestURI; got != tc.want {
				t.Errorf("upstream request URI = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSpeechPathsOff(t *testing.T) {
	for _, path := range []string{
		"/speech/recognition/conversation/cognitiveservices/v1?language=en-US",
		"/speech/universal/v2",
		"/cognitiveservices/websocket/v1",
		"/cognitiveservices/v1",
		"/cognitiveservices/voices/list",
	} {
		t.Run(path, func(t *testing.T) {
			f := newHTTPFixture(t, upstreamOK, func(o *Options) { o.SpeechPaths = false })
			resp, body := f.get(t, path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %s)", resp.StatusCode, body)
			}
			if got := f.seen.last(t).requestURI; got != path {
				t.Errorf("upstream request URI = %q, want %q", got, path)
			}
		})
	}
}

func TestSpeechPrefix(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/speech/recognition/interactive/cognitiveservices/v1", "/stt"},
		{"/speech/recognition/", "/stt"},
		{"/speech/recognition", ""},
		{"/speech/universal/v2", "/stt"},
		{"/speech/universal/v2/", ""},
		{"/cognitiveservices/websocket/v1", "/tts"},
		{"/cognitiveservices/v1", "/tts"},
		{"/cognitiveservices/voices/list", "/tts"},
		{"/cognitiveservices%2Fv1", ""},
		{"/stt/speech/universal/v2", ""},
		{"/tts/cognitiveservices/v1", ""},
		{"/voice/cognitiveservices/v1", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := speechPrefix(tc.path); got != tc.want {
				t.Errorf("speechPrefix(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}
