package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wantFields checks line's fields: a nil want means the field is absent.
func wantFields(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := line[k]
		switch {
		case w == nil && ok:
			t.Errorf("log field %s = %v, want none", k, got)
		case w != nil && got != w:
			t.Errorf("log field %s = %v (%T), want %v", k, got, got, w)
		}
	}
}

// The access-log line answers "why did Azure refuse this?": the path the
// upstream was asked for (after Speech path mapping), the auth form sent,
// whether a 401 was retried or a redirect followed, and the upstream's
// request id, whichever header carries it.
func TestAccessLogUpstreamFields(t *testing.T) {
	for _, tc := range []struct {
		name     string
		path     string
		upstream http.HandlerFunc
		edit     func(o *Options, elsewhere string)
		noToken  bool
		want     map[string]any
	}{
		{
			name: "speech path mapped, apim-request-id",
			path: "/cognitiveservices/voices/list",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("apim-request-id", "4b1d6d7e-0000-4000-8000-00000000a001")
				w.Write([]byte("[]"))
			},
			want: map[string]any{"status": float64(200), "path": "/cognitiveservices/voices/list",
				"upstream_path": "/tts/cognitiveservices/voices/list", "auth_form": "bearer", "auth_retried": false,
				"redirects": float64(0), "upstream_host": nil, "upstream_request_id": "4b1d6d7e-0000-4000-8000-00000000a001"},
		},
		{
			name:     "a path over 1 KiB is cut, in both fields",
			path:     "/x/" + strings.Repeat("a", 5000),
			upstream: func(w http.ResponseWriter, r *http.Request) {},
			want: map[string]any{"status": float64(200), "path": "/x/" + strings.Repeat("a", 1021) + "...",
				"upstream_path": "/x/" + strings.Repeat("a", 1021) + "..."},
		},
		{
			name: "401 retried in the aad form, x-ms-request-id",
			path: "/tts/cognitiveservices/v1",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer aad#") {
					w.Header().Set("x-ms-request-id", "refused-1")
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("x-ms-request-id", "accepted-2")
			},
			edit: func(o *Options, _ string) { o.ResourceID = plantedResourceID },
			want: map[string]any{"status": float64(200), "upstream_path": "/tts/cognitiveservices/v1", "auth_form": "aad",
				"auth_retried": true, "redirects": float64(0), "upstream_request_id": "accepted-2"},
		},
		{
			name: "401 not retried: the upstream's id of the refusal",
			path: "/openai/models",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("x-request-id", "refused-3")
				w.WriteHeader(http.StatusUnauthorized)
			},
			edit: func(o *Options, _ string) { o.AuthFormat = FormatBearer },
			want: map[string]any{"status": float64(401), "upstream_path": "/openai/models", "auth_form": "bearer",
				"auth_retried": false, "upstream_request_id": "refused-3"},
		},
		{
			name: "redirect followed",
			path: "/tts/cognitiveservices/v1",
			upstream: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://"+r.Header.Get("X-Test-Elsewhere")+"/cognitiveservices/v1?x=1", http.StatusTemporaryRedirect)
			},
			edit: func(o *Options, elsewhere string) { o.RedirectHosts = []string{elsewhere} },
			want: map[string]any{"status": float64(200), "upstream_path": "/cognitiveservices/v1", "redirects": float64(1),
				"upstream_request_id": "regional-4"},
		},
		{
			name:    "no token: nothing was sent",
			path:    "/openai/models",
			noToken: true,
			want: map[string]any{"status": float64(503), "error": "token_unavailable", "upstream_path": nil, "auth_form": nil,
				"auth_retried": nil, "redirects": nil, "upstream_request_id": nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			elsewhere, _ := newRecordingUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "regional-4")
			}))
			logs := &logBuffer{}
			up := tc.upstream
			if up == nil {
				up = upstreamOK
			}
			f := newHTTPFixture(t, up, func(o *Options) {
				o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tc.edit != nil {
					tc.edit(o, elsewhere.Listener.Addr().String())
				}
			})
			if tc.noToken {
				f.tokens.setErr(errors.New("no token in this test"))
			}
			req := newHTTPRequest(t, http.MethodPost, f.url(tc.path+"?Ocp-Apim-Subscription-Key=dummy"), strings.NewReader("<speak/>"))
			req.Header.Set("X-Test-Elsewhere", elsewhere.Listener.Addr().String())
			f.do(t, req)
			f.front.Close() // waits for the handler, so its line is written

			lines := logs.lines(t, "request", "websocket")
			if len(lines) != 1 {
				t.Fatalf("access lines = %d, want 1:\n%s", len(lines), logs.String())
			}
			wantFields(t, lines[0], tc.want)
			if tc.want["redirects"] == float64(1) {
				wantFields(t, lines[0], map[string]any{"upstream_host": elsewhere.Listener.Addr().String()})
			}
			wantNoPlantedSecret(t, "log", logs.String())
			if tc.noToken && strings.Contains(logs.String(), `"level":"WARN"`) {
				// The token source warns once per credential call; a
				// warning per request would only repeat it.
				t.Errorf("a request without a token logged a warning:\n%s", logs.String())
			}
		})
	}
}

// WebSocket lines carry the same upstream fields, with the request id from
// the upstream's 101 (which koding/websocketproxy does not pass on) or from
// its refusal, and the client's X-ConnectionId, from the header the native
// Speech SDK sends or the query parameter the JavaScript SDK uses.
func TestWebSocketAccessLogFields(t *testing.T) {
	const connID = "5B7C0A3E2F1D4C6B8A9E0F1A2B3C4D5E"
	t.Run("session", func(t *testing.T) {
		sessions := make(chan *websocket.Conn, 1)
		up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u := websocket.Upgrader{Subprotocols: []string{"USP"}}
			c, err := u.Upgrade(w, r, http.Header{"Apim-Request-Id": {"ws-session-5"}})
			if err == nil {
				sessions <- c
			}
		}))
		env := newWSFixture(t, up, nil)
		client := env.dial(t, wsSpeechPath, http.Header{"X-ConnectionId": {connID}})
		upstream := wsRecv(t, "upstream session", sessions)
		defer upstream.Close()
		client.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wsWait))
		upstream.ReadMessage()
		wsSessionsDone(t, env.proxy)
		lines := env.logs.lines(t, "request", "websocket")
		if len(lines) != 1 {
			t.Fatalf("access lines = %d, want 1:\n%s", len(lines), env.logs.String())
		}
		wantFields(t, lines[0], map[string]any{"msg": "websocket", "status": float64(101), "path": wsSpeechPath,
			"upstream_path": wsMappedSpeechPath, "auth_form": "bearer", "auth_retried": false, "redirects": float64(0),
			"upstream_request_id": "ws-session-5", "connection_id": connID})
	})

	t.Run("refused handshake after a retry", func(t *testing.T) {
		up := newTestUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("apim-request-id", "ws-refused-6")
			http.Error(w, "Access denied", http.StatusUnauthorized)
		}))
		env := newWSFixture(t, up, func(o *Options) { o.AuthFormat = FormatAuto })
		resp, _ := env.rawUpgrade(t, http.MethodGet, wsSpeechPath+"?X-ConnectionId="+connID, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want the upstream's 401", resp.StatusCode)
		}
		env.front.Close() // waits for the handler, so its line is written
		lines := env.logs.lines(t, "request", "websocket")
		if len(lines) != 1 {
			t.Fatalf("access lines = %d, want 1:\n%s", len(lines), env.logs.String())
		}
		wantFields(t, lines[0], map[string]any{"msg": "websocket", "status": float64(401),
			"upstream_path": wsMappedSpeechPath, "auth_form": "aad", "auth_retried": true,
			"upstream_request_id": "ws-refused-6", "connection_id": connID})
	})
}
