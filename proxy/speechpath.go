package proxy

import "strings"

// speechPrefix returns the custom-domain prefix ("/stt" or "/tts") for a
// regional or container style Speech path, or "" when the path passes as it
// is. SDKs pointed at a plain host (SpeechConfig.fromHost, host=) use the
// regional paths, which a custom domain serves under the service's name
// (docs/SPEECH-SDK-WIRE.md, Paths).
//
// It matches the escaped path, so an encoded slash (%2F) is not a separator
// here, just as it is not one for the upstream.
func speechPrefix(escapedPath string) string {
	switch escapedPath {
	case "/speech/universal/v2":
		return "/stt"
	case "/cognitiveservices/websocket/v1", "/cognitiveservices/v1", "/cognitiveservices/voices/list":
		return "/tts"
	}
	if strings.HasPrefix(escapedPath, "/speech/recognition/") {
		return "/stt"
	}
	return ""
}
