package fakeazure

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Test controls, on the custom-domain listener under /_fake/, a prefix no SDK
// uses. They need no token: they are the test's side of the fake, not Azure's.
//
//	GET  /_fake/requests  the request log, JSON array of Request
//	GET  /_fake/stats     {"issued","issuedMsi","issuedAz","rejections":{reason:n}}
//	GET  /_fake/streams   [{"deployment","eventsUnixMs":[...],"done"}]
//	GET  /_fake/config    the settings (configJSON)
//	POST /_fake/config    change some settings: a configJSON with only those keys
//	POST /_fake/reset     Reset; 204
//	POST /_fake/token     {"kind":"valid"|"expired"|"foreign"} -> {"token","expiresOn"}
//	GET  /_fake/az-token  what the fake az prints (counted as issued)
//	GET  /_fake/ca.crl    the TLS listener's CA's certificate revocation list (DER)

// configJSON is Settings on the wire. Durations are Go duration strings
// ("90s", "1h") or numbers of seconds.
type configJSON struct {
	Auth           *AuthMode        `json:"auth,omitempty"`
	TTSAuth        *AuthMode        `json:"ttsAuth,omitempty"`
	ResourceID     *string          `json:"resourceId,omitempty"`
	Phrase         *string          `json:"phrase,omitempty"`
	TokenLifetime  *json.RawMessage `json:"tokenLifetime,omitempty"`
	Redirect       *bool            `json:"redirect,omitempty"`
	RedirectREST   *bool            `json:"redirectRest,omitempty"`
	RedirectStatus *int             `json:"redirectStatus,omitempty"`
	SSEGap         *json.RawMessage `json:"sseGap,omitempty"`
	ChatDelay      *json.RawMessage `json:"chatDelay,omitempty"`
}

func settingsJSON(s Settings) map[string]any {
	return map[string]any{
		"auth":           s.Auth,
		"resourceId":     s.ResourceID,
		"phrase":         s.Phrase,
		"tokenLifetime":  s.TokenLifetime.String(),
		"redirect":       s.Redirect,
		"redirectRest":   s.RedirectREST,
		"redirectStatus": s.RedirectStatus,
		"ttsAuth":        s.TTSAuth,
		"sseGap":         s.SSEGap.String(),
		"chatDelay":      s.ChatDelay.String(),
	}
}

// parseDuration reads a duration string or a number of seconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil {
		return 0, fmt.Errorf("duration %s: want a string like \"90s\" or a number of seconds", raw)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// apply changes s by the keys present in c.
func (c configJSON) apply(s Settings) (Settings, error) {
	var errs []error
	if c.Auth != nil {
		s.Auth = *c.Auth
	}
	if c.TTSAuth != nil {
		s.TTSAuth = *c.TTSAuth
	}
	if c.ResourceID != nil {
		s.ResourceID = *c.ResourceID
	}
	if c.Phrase != nil {
		s.Phrase = *c.Phrase
	}
	if c.Redirect != nil {
		s.Redirect = *c.Redirect
	}
	if c.RedirectREST != nil {
		s.RedirectREST = *c.RedirectREST
	}
	if c.RedirectStatus != nil {
		s.RedirectStatus = *c.RedirectStatus
	}
	if c.TokenLifetime != nil {
		d, err := parseDuration(*c.TokenLifetime)
		errs = append(errs, err)
		s.TokenLifetime = d
	}
	if c.SSEGap != nil {
		d, err := parseDuration(*c.SSEGap)
		errs = append(errs, err)
		s.SSEGap = d
	}
	if c.ChatDelay != nil {
		d, err := parseDuration(*c.ChatDelay)
		errs = append(errs, err)
		s.ChatDelay = d
	}
	return s, errors.Join(errs...)
}

func (a *Azure) serveAdmin(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /_fake/requests":
		writeJSON(w, http.StatusOK, a.Requests())
	case "GET /_fake/stats":
		a.mu.Lock()
		stats := map[string]any{"issued": a.issuedMSI + a.issuedAZ, "issuedMsi": a.issuedMSI, "issuedAz": a.issuedAZ}
		a.mu.Unlock()
		stats["rejections"] = a.Rejections()
		writeJSON(w, http.StatusOK, stats)
	case "GET /_fake/streams":
		type streamJSON struct {
			Deployment   string  `json:"deployment"`
			EventsUnixMs []int64 `json:"eventsUnixMs"`
			Done         bool    `json:"done"`
		}
		out := []streamJSON{}
		for _, s := range a.Streams() {
			sj := streamJSON{Deployment: s.Deployment, Done: s.Done, EventsUnixMs: []int64{}}
			for _, t := range s.Events {
				sj.EventsUnixMs = append(sj.EventsUnixMs, t.UnixMilli())
			}
			out = append(out, sj)
		}
		writeJSON(w, http.StatusOK, out)
	case "GET /_fake/config":
		writeJSON(w, http.StatusOK, settingsJSON(a.Settings()))
	case "POST /_fake/config":
		var c configJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			writeAzureError(w, http.StatusBadRequest, "BadConfig", "decode config: "+err.Error())
			return
		}
		s, err := c.apply(a.Settings())
		if err == nil {
			err = a.Set(s)
		}
		if err != nil {
			writeAzureError(w, http.StatusBadRequest, "BadConfig", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, settingsJSON(a.Settings()))
	case "POST /_fake/reset":
		a.Reset()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_fake/token":
		var body struct {
			Kind string `json:"kind"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
			writeAzureError(w, http.StatusBadRequest, "BadRequest", "decode body: "+err.Error())
			return
		}
		var tok string
		switch body.Kind {
		case "valid":
			tok = a.Issue()
		case "expired":
			tok = a.IssueExpired()
		case "foreign":
			tok = ForeignToken()
		default:
			writeAzureError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("kind %q: want valid, expired or foreign", body.Kind))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expiresOn": tokenExpiry(tok)})
	case "GET /_fake/az-token":
		a.serveAZToken(w, r)
	case "GET /_fake/ca.crl":
		if a.crlDER == nil {
			writeAzureError(w, http.StatusNotFound, "404", "no TLS listener, so no CRL")
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(a.crlDER)
	default:
		writeAzureError(w, http.StatusNotFound, "404", "no fake control at "+strconv.Quote(route))
	}
}

// tokenExpiry reads exp from a token's claims, in Unix seconds.
func tokenExpiry(tok string) int64 {
	var claims struct {
		Exp int64 `json:"exp"`
	}
	_ = json.Unmarshal(decodeSegment(tok, 1), &claims)
	return claims.Exp
}
