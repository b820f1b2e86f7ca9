package fakeazure

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Claims the fake puts in every token; fixed so tests can assert on them.
const (
	TenantID = "72f988bf-0000-4000-8000-00000000fa4e"
	ObjectID = "0b9c3a1e-0000-4000-8000-00000000fa4e"
)

// tokenInfo is what the fake remembers about a token it issued.
type tokenInfo struct {
	seq      int // 1-based issue order, shown in Request.TokenSeq
	audience string
	expires  time.Time
}

// newJWT returns a JWT-shaped string, header.claims.signature, each part
// base64url without padding. The signature is random, which makes every token
// unique; nothing verifies it, because the fake recognises its tokens by value.
func newJWT(audience string, issued, expires time.Time) string {
	sig := make([]byte, 32)
	rand.Read(sig) // never fails since Go 1.24
	header := `{"alg":"RS256","typ":"JWT","kid":"fakeazure"}`
	claims, _ := json.Marshal(struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Iat int64  `json:"iat"`
		Nbf int64  `json:"nbf"`
		Exp int64  `json:"exp"`
		Oid string `json:"oid"`
		Tid string `json:"tid"`
		Uti string `json:"uti"`
		Ver string `json:"ver"`
	}{
		Aud: audience,
		Iss: "https://sts.windows.net/" + TenantID + "/",
		Iat: issued.Unix(),
		Nbf: issued.Unix(),
		Exp: expires.Unix(),
		Oid: ObjectID,
		Tid: TenantID,
		Uti: base64.RawURLEncoding.EncodeToString(sig[:12]),
		Ver: "1.0",
	})
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}

// issue mints and remembers a token for resource that expires after lifetime
// (negative: already expired). A lifetime of 0 uses the current setting.
func (a *Azure) issue(resource string, lifetime time.Duration) (string, time.Time) {
	now := time.Now()
	a.mu.Lock()
	if lifetime == 0 {
		lifetime = a.settings.TokenLifetime
	}
	a.mu.Unlock()
	exp := now.Add(lifetime)
	issued := now
	if lifetime < 0 {
		issued = exp.Add(-DefaultTokenLifetime)
	}
	tok := newJWT(resource, issued, exp)
	a.mu.Lock()
	a.tokenSeq++
	a.tokens[tok] = tokenInfo{seq: a.tokenSeq, audience: resource, expires: exp}
	a.mu.Unlock()
	return tok, exp
}

// Issue mints a valid token for Audience with the current lifetime. It is
// remembered like the tokens the identity endpoints hand out but not counted
// by Issued.
func (a *Azure) Issue() string {
	tok, _ := a.issue(Audience, 0)
	return tok
}

// IssueExpired mints a token this fake issued that expired a minute ago.
func (a *Azure) IssueExpired() string {
	tok, _ := a.issue(Audience, -time.Minute)
	return tok
}

// ForeignToken returns a well-formed, unexpired token for Audience that no
// fake issued: what a token from another tenant or a forged one looks like.
func ForeignToken() string {
	now := time.Now()
	return newJWT(Audience, now, now.Add(DefaultTokenLifetime))
}

// Issued is how many tokens the identity endpoints handed out: managed
// identity (/msi/token) plus the fake az (/_fake/az-token). Reset zeroes it.
func (a *Azure) Issued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issuedMSI + a.issuedAZ
}

// lookupToken returns what the fake knows about tok.
func (a *Azure) lookupToken(tok string) (tokenInfo, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	info, ok := a.tokens[tok]
	return info, ok
}

// serveMSI is the App Service managed identity endpoint (api-version
// 2019-08-01) as MSAL's managedidentity package calls it: GET with
// X-IDENTITY-HEADER, reply with expires_on as Unix seconds in a string
// (azidentity's App Service managed identity source).
func (a *Azure) serveMSI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeAzureError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
		return
	}
	if got := r.Header.Get("X-IDENTITY-HEADER"); got != a.identitySecret {
		writeAzureError(w, http.StatusUnauthorized, "InvalidIdentityHeader", "X-IDENTITY-HEADER is missing or wrong")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != "2019-08-01" {
		writeAzureError(w, http.StatusBadRequest, "InvalidApiVersion", fmt.Sprintf("api-version %q is not supported; use 2019-08-01", v))
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		writeAzureError(w, http.StatusBadRequest, "MissingResource", "resource is required")
		return
	}
	tok, exp := a.issue(resource, 0)
	a.mu.Lock()
	a.issuedMSI++
	a.mu.Unlock()
	a.log.Debug("fakeazure issued token", "via", "managed identity", "resource", resource, "expires", exp)
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    "00000000-0000-4000-8000-00000000c11d",
	})
}

// serveAZToken is what the fake az script fetches: the JSON that
// "az account get-access-token -o json" prints.
func (a *Azure) serveAZToken(w http.ResponseWriter, r *http.Request) {
	resource := r.URL.Query().Get("resource")
	if resource == "" {
		resource = Audience
	}
	tok, exp := a.issue(resource, 0)
	a.mu.Lock()
	a.issuedAZ++
	a.mu.Unlock()
	a.log.Debug("fakeazure issued token", "via", "az", "resource", resource, "expires", exp)
	writeJSON(w, http.StatusOK, map[string]any{
		"accessToken":  tok,
		"expiresOn":    exp.Local().Format("2006-01-02 15:04:05.000000"),
		"expires_on":   exp.Unix(),
		"subscription": "00000000-0000-0000-0000-000000000000",
		"tenant":       TenantID,
		"tokenType":    "Bearer",
	})
}

// azScript is the fake az. azidentity runs
// "/bin/sh -c 'az account get-access-token -o json --resource R [--tenant T]'"
// with the process environment; newer az versions take --scope instead. It
// talks HTTP/1.0 to the fake over bash's /dev/tcp so that it needs nothing
// beyond bash, and prints the body, or fails with the status on stderr.
const azScript = `#!/bin/bash
# fake az written by github.com/entraproxy/entraproxy/internal/fakeazure.
# Only "az account get-access-token" exists; tokens come from the fake at %[1]s.
set -u
if [ "${1-}" != account ] || [ "${2-}" != get-access-token ]; then
  echo "ERROR: fake az supports only 'az account get-access-token', got: $*" >&2
  exit 2
fi
shift 2
resource=https://cognitiveservices.azure.com
while [ $# -gt 0 ]; do
  case "$1" in
    --resource) resource="${2-}"; shift ;;
    --scope) resource="${2%%/.default}"; shift ;;
  esac
  shift
done
case "$resource" in
  *[!A-Za-z0-9:/._-]*|"") echo "ERROR: fake az: bad resource '$resource'" >&2; exit 2 ;;
esac
if ! exec 3<>/dev/tcp/%[2]s/%[3]s; then
  echo "ERROR: fake az: cannot reach the fake at %[1]s" >&2
  exit 1
fi
printf 'GET /_fake/az-token?resource=%%s HTTP/1.0\r\nHost: %[1]s\r\n\r\n' "$resource" >&3
IFS= read -r status <&3 || status=""
status="${status%%$'\r'}"
while IFS= read -r line <&3; do
  [ -z "${line%%$'\r'}" ] && break
done
body=""
while IFS= read -r line <&3 || [ -n "$line" ]; do body="$body$line"; done
exec 3<&-
case "$status" in
  "HTTP/1."?" 200 "*) printf '%%s\n' "$body" ;;
  *) echo "ERROR: fake az: $status $body" >&2; exit 1 ;;
esac
`

// WriteAZ writes an executable script named az into dir that answers
// "az account get-access-token ... -o json" with a token this fake issues,
// as azidentity's AzureCLICredential expects. Put dir first on PATH (as an
// absolute path).
func (a *Azure) WriteAZ(dir string) error {
	host, port, err := net.SplitHostPort(a.customHost)
	if err != nil || net.ParseIP(host).To4() == nil {
		return fmt.Errorf("write fake az: unexpected listener address %q", a.customHost)
	}
	path := filepath.Join(dir, "az")
	script := fmt.Sprintf(azScript, a.customHost, host, port)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return fmt.Errorf("write fake az: %w", err)
	}
	// WriteFile keeps the mode of an existing file; make sure it is executable.
	if err := os.Chmod(path, 0o755); err != nil {
		return fmt.Errorf("write fake az: %w", err)
	}
	return nil
}

// decodeSegment returns the i-th base64url part of a JWT-shaped token, or nil.
func decodeSegment(tok string, i int) []byte {
	parts := strings.Split(tok, ".")
	if i >= len(parts) {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return nil
	}
	return b
}
