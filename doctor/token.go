package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// claims are the parts of an Entra ID access token doctor reports. See
// https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
type claims struct {
	Aud               audience    `json:"aud"`
	Iss               string      `json:"iss"`
	Tid               string      `json:"tid"`
	Oid               string      `json:"oid"`
	AppID             string      `json:"appid"` // v1 tokens
	Azp               string      `json:"azp"`   // v2 tokens
	Upn               string      `json:"upn"`
	UniqueName        string      `json:"unique_name"`
	PreferredUsername string      `json:"preferred_username"`
	Idtyp             string      `json:"idtyp"`
	Scp               string      `json:"scp"`
	Roles             []string    `json:"roles"`
	Exp               numericDate `json:"exp"`
	Iat               numericDate `json:"iat"`
	Nbf               numericDate `json:"nbf"`
}

// audience is "aud": one string, or (rarely, and not from Entra) a list.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud: %w", err)
	}
	*a = many
	return nil
}

// numericDate is a JWT time: seconds since the epoch, possibly fractional.
type numericDate struct{ time.Time }

func (n *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("numeric date: %w", err)
	}
	sec := int64(f)
	n.Time = time.Unix(sec, int64((f-float64(sec))*1e9))
	return nil
}

// decodeClaims reads a JWT's payload. The signature is not checked: doctor
// only reports what the token says, Azure is the one that verifies it.
func decodeClaims(token string) (*claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, errors.New("not a JWT (the payload is not base64url)")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("not a JWT (the payload is not JSON claims)")
	}
	return &c, nil
}

// Clock skew tolerated before doctor says the local clock is off. Entra
// sets iat to its own now; a token issued "in the future" means this
// machine's clock is behind, and the proxy, which refreshes by the local
// clock, would keep sending a token Azure already sees as expired.
const skewTolerance = 2 * time.Minute

// checkToken is check 3: what the token says, never the token.
func (d *doctor) checkToken(_ context.Context, c *Check) {
	cl, err := decodeClaims(d.token.Token)
	if err != nil {
		c.Verdict, c.Summary = Warn, "the token's claims could not be read: "+err.Error()
		c.Evidence = append(c.Evidence, "Entra ID access tokens for Cognitive Services are JWTs; the auth probes (check 5) still show whether Azure accepts it")
		c.Fix = append(c.Fix, "check that ENTRAPROXY_CREDENTIAL hands out Entra ID access tokens")
		return
	}
	d.claims = cl
	now := d.now()
	want := expectedAudience(d.cfg.UpstreamURL().Hostname())
	asked := scopeResource(d.cfg.Scope)
	aud := strings.Join(cl.Aud, ", ")

	var fails, warns []string
	audLine := "audience " + orNone(aud)
	switch {
	case !cl.Aud.has(want):
		fails = append(fails, fmt.Sprintf("audience %s, but Cognitive Services accepts only %s", orNone(aud), want))
		audLine += fmt.Sprintf(" (want %s)", want)
		c.Fix = append(c.Fix, fmt.Sprintf("set ENTRAPROXY_SCOPE=%s/.default (or leave it unset for the default)", want))
		d.recommend("ENTRAPROXY_SCOPE", want+"/.default", "check 3: the token's audience must be "+want)
	case asked != "" && !cl.Aud.has(asked):
		fails = append(fails, fmt.Sprintf("audience %s, but the scope asked for %s", aud, asked))
		c.Fix = append(c.Fix, "the credential returned a token for another resource than ENTRAPROXY_SCOPE; check AZURE_TOKEN_CREDENTIALS and the credential's configuration")
	default:
		audLine += " (matches the scope " + d.cfg.Scope + ")"
	}
	c.Evidence = append(c.Evidence, audLine)

	c.Evidence = append(c.Evidence, "tenant "+orNone(cl.Tid)+", issuer "+orNone(cl.Iss))
	c.Evidence = append(c.Evidence, "principal: "+cl.principal())
	switch {
	case cl.Scp != "" && len(cl.Roles) > 0:
		c.Evidence = append(c.Evidence, "scp "+cl.Scp+"; roles "+strings.Join(cl.Roles, " "))
	case cl.Scp != "":
		c.Evidence = append(c.Evidence, "scp "+cl.Scp)
	case len(cl.Roles) > 0:
		c.Evidence = append(c.Evidence, "roles "+strings.Join(cl.Roles, " "))
	default:
		c.Evidence = append(c.Evidence, "no scp or roles claim (access to the resource is decided by its Azure role assignments)")
	}

	exp := "no expiry claim"
	if !cl.Exp.IsZero() {
		exp = "expires " + d.timeAndDistance(cl.Exp.Time)
		if !now.Before(cl.Exp.Time) {
			fails = append(fails, "the token expired "+round(now.Sub(cl.Exp.Time)).String()+" ago")
			c.Fix = append(c.Fix, "the credential handed out an expired token: renew its sign-in (`az login`, `azd auth login`) or its cached token, and check this machine's clock")
		}
	}
	if !cl.Iat.IsZero() {
		skew := cl.Iat.Sub(now)
		exp += "; issued " + relative(-skew)
		if skew > skewTolerance {
			warns = append(warns, fmt.Sprintf("issued %s in the future: this machine's clock is behind Entra ID's by about that much", round(skew)))
			c.Fix = append(c.Fix, "synchronise this machine's clock (NTP); entraproxy refreshes tokens by the local clock")
		}
	}
	if !cl.Nbf.IsZero() && cl.Nbf.Sub(now) > skewTolerance && (cl.Iat.IsZero() || cl.Iat.Sub(now) <= skewTolerance) {
		warns = append(warns, fmt.Sprintf("not valid before %s: this machine's clock is behind Entra ID's", d.timeAndDistance(cl.Nbf.Time)))
		c.Fix = append(c.Fix, "synchronise this machine's clock (NTP); entraproxy refreshes tokens by the local clock")
	}
	c.Evidence = append(c.Evidence, exp)
	c.Evidence = append(c.Evidence, "signature not checked: doctor reads the claims, Azure verifies the signature; the token itself is never shown")

	switch {
	case len(fails) > 0:
		c.Verdict, c.Summary = Fail, strings.Join(fails, "; ")
		d.tokenProblem = c.Summary
	case len(warns) > 0:
		c.Verdict, c.Summary = Warn, strings.Join(warns, "; ")
	default:
		c.Verdict = Pass
		c.Summary = fmt.Sprintf("for %s, tenant %s, valid for %s", aud, orNone(cl.Tid), round(cl.Exp.Sub(now)))
	}
}

func (a audience) has(want string) bool {
	for _, v := range a {
		if strings.TrimSuffix(v, "/") == strings.TrimSuffix(want, "/") {
			return true
		}
	}
	return false
}

// principal names who the token is for: object id, app id, user name.
func (c *claims) principal() string {
	var parts []string
	kind := c.principalType()
	if kind != "" {
		parts = append(parts, strings.ToLower(kind))
	}
	parts = append(parts, "object id "+orNone(c.Oid))
	if app := firstNonEmpty(c.AppID, c.Azp); app != "" {
		parts = append(parts, "app id "+app)
	}
	if u := c.user(); u != "" {
		parts = append(parts, "upn "+u)
	}
	return strings.Join(parts, ", ")
}

func (c *claims) user() string { return firstNonEmpty(c.Upn, c.PreferredUsername, c.UniqueName) }

// principalType is the value `az role assignment create
// --assignee-principal-type` wants, or "" when the token does not say.
func (c *claims) principalType() string {
	switch {
	case c.Idtyp == "app":
		return "ServicePrincipal"
	case c.Idtyp == "user", c.user() != "":
		return "User"
	}
	return ""
}

// expectedAudience is the audience Cognitive Services accepts in the cloud
// host belongs to (https://learn.microsoft.com/azure/ai-services/authentication).
func expectedAudience(host string) string {
	return hosts.Classify(host).Cloud.Audience
}

// scopeResource is the resource a scope names: https://x/.default -> https://x.
func scopeResource(scope string) string {
	u, err := url.Parse(scope)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func relative(d time.Duration) string {
	if d >= 0 {
		return round(d).String() + " ago"
	}
	return "in " + round(-d).String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
