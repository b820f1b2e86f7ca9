package fakeazure

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// The Azure OpenAI realtime API over WebSocket, as far as clients need it to
// hold a text conversation: the GA path /openai/v1/realtime?model=D and the
// preview path /openai/realtime?api-version=V&deployment=D, subprotocol
// "realtime", JSON events both ways
// (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/realtime-audio-websockets).
// Like the other services it accepts only a token this fake issued, in the
// bearer form, and refuses a key anywhere, including the subprotocol
// openai-insecure-api-key.<key> that the openai package's browser client
// offers.

// Realtime session cookies: the 101 carries two, as a front end with session
// affinity would, and apim-request-id, so a proxy's handling of the 101's
// headers shows.
const (
	RealtimeCookieAffinity = "ARRAffinity"
	RealtimeCookieSession  = "realtime-session"
)

// realtimeEvent is any event; Type says which.
type realtimeEvent struct {
	Type    string          `json:"type"`
	EventID string          `json:"event_id,omitempty"`
	Item    json.RawMessage `json:"item,omitempty"`
	Session json.RawMessage `json:"session,omitempty"`
}

// serveRealtime is GET /openai/v1/realtime or /openai/realtime with a
// WebSocket upgrade.
func (a *Azure) serveRealtime(w http.ResponseWriter, r *http.Request, req *Request, finish func(int, string)) {
	q := r.URL.Query()
	model := q.Get("model")
	if r.URL.Path == "/openai/realtime" {
		if q.Get("api-version") == "" {
			writeAzureError(w, http.StatusNotFound, "404", "Resource not found")
			finish(http.StatusNotFound, "")
			return
		}
		model = q.Get("deployment")
	}
	if model == "" {
		writeAzureError(w, http.StatusBadRequest, "BadRequest", "The model (deployment) is required.")
		finish(http.StatusBadRequest, "")
		return
	}
	h := http.Header{}
	h.Add("Set-Cookie", RealtimeCookieAffinity+"="+randomHex(16)+"; Path=/; HttpOnly; Secure; SameSite=None")
	h.Add("Set-Cookie", RealtimeCookieSession+"="+randomHex(8)+"; Path=/openai; HttpOnly")
	conn, done, ok := a.upgrade(w, r, req, finish, h)
	if !ok {
		return
	}
	defer done()
	rt := realtimeSession{conn: conn, model: model}
	if err := rt.send(map[string]any{"type": "session.created", "session": rt.sessionJSON()}); err != nil {
		return
	}
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var ev realtimeEvent
		if mt != websocket.TextMessage || json.Unmarshal(data, &ev) != nil || ev.Type == "" {
			if rt.error("invalid_event", "events are JSON text messages with a type", "") != nil {
				return
			}
			continue
		}
		if err := rt.handle(ev); err != nil {
			return
		}
	}
}

// realtimeSession is the server side of one realtime WebSocket.
type realtimeSession struct {
	conn  *websocket.Conn
	model string
	items int
}

func (s *realtimeSession) send(ev map[string]any) error {
	ev["event_id"] = "event_" + randomHex(12)
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

func (s *realtimeSession) sessionJSON() map[string]any {
	return map[string]any{"id": "sess_" + randomHex(12), "object": "realtime.session", "model": s.model, "output_modalities": []string{"text"}}
}

func (s *realtimeSession) error(code, message, eventID string) error {
	return s.send(map[string]any{"type": "error", "error": map[string]any{
		"type": "invalid_request_error", "code": code, "message": message, "event_id": eventID}})
}

// handle answers one client event: session.update, conversation.item.create
// and response.create, which streams OpenAIReply one word per delta.
func (s *realtimeSession) handle(ev realtimeEvent) error {
	switch ev.Type {
	case "session.update":
		return s.send(map[string]any{"type": "session.updated", "session": s.sessionJSON()})
	case "conversation.item.create":
		s.items++
		item := map[string]any{}
		_ = json.Unmarshal(ev.Item, &item)
		item["id"] = "item_" + randomHex(12)
		return s.send(map[string]any{"type": "conversation.item.created", "previous_item_id": nil, "item": item})
	case "response.create":
		respID, itemID := "resp_"+randomHex(12), "item_"+randomHex(12)
		if err := s.send(map[string]any{"type": "response.created", "response": map[string]any{
			"id": respID, "object": "realtime.response", "status": "in_progress", "output": []any{}}}); err != nil {
			return err
		}
		words := strings.Fields(OpenAIReply)
		for i, w := range words {
			if i < len(words)-1 {
				w += " "
			}
			if err := s.send(map[string]any{"type": "response.output_text.delta", "response_id": respID, "item_id": itemID,
				"output_index": 0, "content_index": 0, "delta": w}); err != nil {
				return err
			}
		}
		if err := s.send(map[string]any{"type": "response.output_text.done", "response_id": respID, "item_id": itemID,
			"output_index": 0, "content_index": 0, "text": OpenAIReply}); err != nil {
			return err
		}
		return s.send(map[string]any{"type": "response.done", "response": map[string]any{
			"id": respID, "object": "realtime.response", "status": "completed",
			"output": []any{map[string]any{"id": itemID, "type": "message", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": OpenAIReply}}}}}})
	}
	return s.error("unknown_event", "unknown event type "+ev.Type, ev.EventID)
}
