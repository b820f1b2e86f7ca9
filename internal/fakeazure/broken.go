package fakeazure

import (
	"io"
	"net/http"
)

// Secrets BrokenTokenEndpoint puts in its answers. No log line, /readyz
// answer or doctor report may ever hold them.
const (
	// BrokenJWT is a JWT quoted in the error description.
	BrokenJWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL2NvZ25pdGl2ZXNlcnZpY2VzLmF6dXJlLmNvbSIsImxlYWsiOjF9.YnJva2VuLWVuZHBvaW50LXNpZ25hdHVyZQ"
	// BrokenToken is an opaque value in an access_token field, which no
	// JWT pattern would catch.
	BrokenToken = "opaque-token-after-access_token-5d1c7a"
)

// BrokenTokenEndpoint answers every request as a broken token service might:
// 500 with a JSON error whose description quotes a JWT and which also holds
// an access_token field. Point an App Service managed identity credential at
// it (IDENTITY_ENDPOINT, any IDENTITY_HEADER). It asks for retries 1 ms
// apart (retry-after-ms, which azcore's retry policy honours), so azcore's
// three retries of a 500 take milliseconds instead of about 10 seconds.
func BrokenTokenEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After-Ms", "1")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":"server_error","error_description":"token service failed while signing `+BrokenJWT+`",`+
			`"access_token":"`+BrokenToken+`","expires_on":"0","token_type":"Bearer"}`)
	})
}
