package fakeazure

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// service is what a path on a service listener leads to.
type service int

const (
	serviceNone service = iota
	serviceTTSWebSocket
	serviceSTTWebSocket
	serviceTTSREST
	serviceVoices
	serviceOpenAIChat
	serviceTranslate
	serviceAnalyzeText
	serviceOpenAIModels
	serviceOpenAIRealtime
	serviceBatchSubmit
	serviceBatchRead
)

// bearerOnly reports whether s takes only the bearer form: the aad form is
// Speech's alone (Azure OpenAI, Translator, Language).
func (s service) bearerOnly() bool {
	switch s {
	case serviceOpenAIChat, serviceOpenAIModels, serviceOpenAIRealtime, serviceTranslate, serviceAnalyzeText, serviceBatchSubmit, serviceBatchRead:
		return true
	}
	return false
}

// method is the one HTTP method the service answers.
func (s service) method() string {
	switch s {
	case serviceTTSREST, serviceOpenAIChat, serviceTranslate, serviceAnalyzeText, serviceBatchSubmit:
		return http.MethodPost
	default:
		return http.MethodGet
	}
}

// customService maps a custom-domain path: the regional path with the
// service's name as first segment (docs/SPEECH-SDK-WIRE.md, "Paths").
// Regional paths are deliberately absent, so a proxy that forgets to map
// them gets 404. deployment is the OpenAI deployment or the Translator
// version.
func customService(path string) (s service, deployment string) {
	switch path {
	case "/tts/cognitiveservices/websocket/v1", "/voice/cognitiveservices/websocket/v1":
		return serviceTTSWebSocket, ""
	case "/stt/speech/universal/v2",
		"/stt/speech/recognition/interactive/cognitiveservices/v1",
		"/stt/speech/recognition/conversation/cognitiveservices/v1",
		"/stt/speech/recognition/dictation/cognitiveservices/v1":
		return serviceSTTWebSocket, ""
	case "/tts/cognitiveservices/v1":
		return serviceTTSREST, ""
	case "/tts/cognitiveservices/voices/list":
		return serviceVoices, ""
	case "/translator/text/v3.0/translate":
		return serviceTranslate, "3.0"
	case "/translator/text/v2026-06-06/translate":
		// azure-ai-translation-text 2.0 for Python puts its api-version
		// in the path, where the JavaScript client writes v3.0.
		return serviceTranslate, "2026-06-06"
	case "/language/:analyze-text":
		return serviceAnalyzeText, ""
	case "/openai/models":
		return serviceOpenAIModels, ""
	}
	if path == "/openai/v1/realtime" || path == "/openai/realtime" {
		return serviceOpenAIRealtime, ""
	}
	if path == "/speechtotext/transcriptions:submit" {
		return serviceBatchSubmit, ""
	}
	if _, ok := batchPath(path); ok {
		return serviceBatchRead, ""
	}
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		if d, ok := strings.CutSuffix(rest, "/chat/completions"); ok && d != "" && !strings.Contains(d, "/") {
			return serviceOpenAIChat, d
		}
	}
	return serviceNone, ""
}

// regionalService maps a regional host path (eastus.tts.speech.microsoft.com
// and friends), where the redirect mode leads.
func regionalService(path string) service {
	switch path {
	case "/cognitiveservices/websocket/v1":
		return serviceTTSWebSocket
	case "/speech/universal/v2",
		"/speech/recognition/interactive/cognitiveservices/v1",
		"/speech/recognition/conversation/cognitiveservices/v1",
		"/speech/recognition/dictation/cognitiveservices/v1":
		return serviceSTTWebSocket
	case "/cognitiveservices/v1":
		return serviceTTSREST
	case "/cognitiveservices/voices/list":
		return serviceVoices
	}
	return serviceNone
}

// serveCustom is the custom-domain listener: test controls and the identity
// endpoint on paths no SDK uses, then the services.
func (a *Azure) serveCustom(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_fake/"):
		a.serveAdmin(w, r)
	case r.URL.Path == "/msi/token":
		a.serveMSI(w, r)
	default:
		a.serveService(w, r, "custom")
	}
}

func (a *Azure) serveRegional(w http.ResponseWriter, r *http.Request) {
	a.serveService(w, r, "regional")
}

// serveService checks a service request in the order a front door would
// (host, path, method, credentials), redirects when told to, then serves it.
// Every request is recorded once, with the status it got.
func (a *Azure) serveService(w http.ResponseWriter, r *http.Request, listener string) {
	req := newRequest(listener, r)
	finish := func(status int, reason string) {
		req.Status, req.Reject = status, reason
		a.record(req)
	}
	settings := a.Settings()

	ownHost := a.isCustomHost
	svc, deployment := customService(r.URL.Path)
	if listener == "regional" {
		ownHost = func(h string) bool { return strings.EqualFold(h, a.regionalHost) }
		svc = regionalService(r.URL.Path)
	}
	if !ownHost(r.Host) {
		finish(reject(w, ReasonWrongHost), ReasonWrongHost)
		return
	}
	if svc == serviceNone {
		finish(http.StatusNotFound, "")
		writeAzureError(w, http.StatusNotFound, "404", "Resource not found")
		return
	}
	if r.Method != svc.method() {
		w.Header().Set("Allow", svc.method())
		writeAzureError(w, http.StatusMethodNotAllowed, "405", "Method not allowed")
		finish(http.StatusMethodNotAllowed, "")
		return
	}
	if listener == "regional" && !a.namesCustomDomain(r) {
		finish(reject(w, ReasonNoCustomDomain), ReasonNoCustomDomain)
		return
	}
	mode := settings.Auth
	if settings.TTSAuth != "" && (svc == serviceTTSWebSocket || svc == serviceTTSREST || svc == serviceVoices) {
		mode = settings.TTSAuth
	}
	if svc.bearerOnly() {
		// The aad form is Speech's short-audio and WebSocket APIs' alone;
		// Azure OpenAI, Translator, Language and batch transcription take
		// bearer tokens (https://learn.microsoft.com/azure/ai-services/authentication).
		mode = AuthBearer
	}
	if reason := a.checkCredentials(r, mode, settings.ResourceID, &req); reason != "" {
		finish(reject(w, reason), reason)
		return
	}

	if listener == "custom" {
		switch {
		case svc == serviceTTSWebSocket && settings.Redirect:
			// Azure answers with wss:// to the regional host (docs/SPEECH-SDK-WIRE.md,
			// "Entra ID forms and redirects"); the plain-text twin here is ws://.
			w.Header().Set("Location", a.regionalURL("ws", "/cognitiveservices/websocket/v1", r.URL.RawQuery))
			w.WriteHeader(settings.RedirectStatus)
			finish(settings.RedirectStatus, "")
			return
		case svc == serviceTTSREST && settings.RedirectREST:
			// 307, not 301, so that a client keeps POST and the SSML body.
			w.Header().Set("Location", a.regionalURL("http", "/cognitiveservices/v1", r.URL.RawQuery))
			w.WriteHeader(http.StatusTemporaryRedirect)
			finish(http.StatusTemporaryRedirect, "")
			return
		}
	}

	switch svc {
	case serviceTTSWebSocket:
		a.serveTTSWebSocket(w, r, &req, finish)
	case serviceSTTWebSocket:
		a.serveSTTWebSocket(w, r, &req, finish)
	case serviceTTSREST:
		a.serveTTSREST(w, r, finish)
	case serviceVoices:
		a.serveVoices(w, finish)
	case serviceOpenAIChat:
		a.serveChat(w, r, deployment, settings, finish)
	case serviceTranslate:
		if v := r.URL.Query().Get("api-version"); deployment != "3.0" && v != deployment {
			writeAzureError(w, http.StatusBadRequest, "400021", "The api-version "+strconv.Quote(v)+" does not match the path's v"+deployment+".")
			finish(http.StatusBadRequest, "")
			return
		}
		a.serveTranslate(w, r, finish)
	case serviceAnalyzeText:
		a.serveAnalyzeText(w, r, finish)
	case serviceOpenAIModels:
		a.serveModels(w, r, finish)
	case serviceOpenAIRealtime:
		a.serveRealtime(w, r, &req, finish)
	case serviceBatchSubmit, serviceBatchRead:
		a.serveBatch(w, r, finish)
	}
}

// regionalURL is where a redirect leads: the regional path with the original
// query and Ocp-Apim-Custom-Domain-Name naming the custom domain, as Azure's
// redirect does.
func (a *Azure) regionalURL(scheme, path, rawQuery string) string {
	q := rawQuery
	if q != "" {
		q += "&"
	}
	q += "Ocp-Apim-Custom-Domain-Name=" + url.QueryEscape(a.customHost)
	return scheme + "://" + a.regionalHost + path + "?" + q
}

// namesCustomDomain reports whether r names this fake's custom domain in the
// Ocp-Apim-Custom-Domain-Name query parameter or header.
func (a *Azure) namesCustomDomain(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("Ocp-Apim-Custom-Domain-Name"), a.customHost) {
		return true
	}
	for k, vs := range r.URL.Query() {
		if !strings.EqualFold(k, "Ocp-Apim-Custom-Domain-Name") {
			continue
		}
		for _, v := range vs {
			if strings.EqualFold(v, a.customHost) {
				return true
			}
		}
	}
	return false
}
