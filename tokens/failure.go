package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Bounds of what a CredentialError shows, in bytes.
const (
	// maxSummary bounds CredentialError.Error: one log field, one /readyz
	// reason.
	maxSummary = 512
	// maxSourceLine bounds the line of one credential (one source of
	// DefaultAzureCredential) within it.
	maxSourceLine = 200
	// maxDetail bounds CredentialError.Detail, the whole message for debug
	// logs.
	maxDetail = 8 << 10
)

// CredentialError is a credential call that gave no token, described in
// words that may be shown. The credential's own message may quote the token
// endpoint's whole answer, tokens included (azidentity's
// AuthenticationFailedError prints the response body), so:
//
//   - Error is one line of at most 512 bytes: the credential's first line,
//     the HTTP status and Entra ID's AADSTS code when the endpoint answered,
//     and for DefaultAzureCredential the same for each source it tried. It is
//     what logs at info and warn level, /readyz and clients' errors carry.
//   - Detail is the whole message, at most 8 KiB, for debug logs.
//
// Both are redacted (see Redact). Unwrap returns the credential's own error,
// for errors.Is and errors.As only: its text is exactly what must not be
// shown.
type CredentialError struct {
	// Credential names the credential that failed, such as
	// "AzureCLICredential" or "DefaultAzureCredential".
	Credential string
	// Status is the HTTP status the token endpoint answered with; 0 when no
	// answer came (a CLI credential, a network error, a missing setting).
	Status int
	// Sources has one line per source DefaultAzureCredential tried, in
	// order, each like Error; nil for a credential that is not a chain.
	Sources []string
	// Fix says what most likely makes the credential work, read from the
	// error's type and azidentity's messages; empty when they suggest
	// nothing specific.
	Fix string

	summary, detail string
	err             error
}

// Error is the bounded, redacted one-line summary.
func (e *CredentialError) Error() string { return e.summary }

// Detail is the credential's whole message, redacted and bounded.
func (e *CredentialError) Detail() string { return e.detail }

// Unwrap returns the credential's own error. Never show its text.
func (e *CredentialError) Unwrap() error { return e.err }

// DescribeCredentialError describes err, returned by the credential named
// credential (the name the Source logs; it stands first in the summary when
// the message does not already name a credential). A *CredentialError is
// returned as it is.
//
// It calls err.Error() once: azidentity's AuthenticationFailedError reads the
// response body again on every call, which is not safe from two goroutines,
// so the Source describes each error on its own goroutine and shares only
// the description.
func DescribeCredentialError(credential string, err error) *CredentialError {
	var ce *CredentialError
	if errors.As(err, &ce) {
		return ce
	}
	msg := err.Error()
	ce = &CredentialError{Credential: credential, err: err, detail: truncate(Redact(msg), maxDetail)}
	var afe *azidentity.AuthenticationFailedError
	authFailed := errors.As(err, &afe)
	if authFailed && afe.RawResponse != nil {
		ce.Status = afe.RawResponse.StatusCode
	}

	head, rest, chained := strings.Cut(msg, "\nAttempted credentials:")
	if !chained {
		src := describeSource(msg)
		if src.status == 0 {
			src.status = ce.Status
			src.line = withStatus(src.line, src.status)
		}
		ce.Status = src.status
		if src.name != "" {
			ce.Credential = src.name
		} else if credential != "" && !strings.HasPrefix(src.line, credential) {
			src.line = credential + ": " + src.line
		}
		ce.Fix = src.fix()
		ce.summary = truncate(src.line, maxSummary)
		return ce
	}

	// DefaultAzureCredential (a ChainedTokenCredential) lists each source on
	// a line of its own after "Attempted credentials:", indented by a tab,
	// with continuation lines indented by two (docs/AZIDENTITY.md, "How a
	// failure is recognised").
	var sources []source
	var entry []string
	flush := func() {
		if len(entry) > 0 {
			sources = append(sources, describeSource(strings.Join(entry, "\n")))
		}
		entry = nil
	}
	for line := range strings.SplitSeq(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "\t\t"):
			entry = append(entry, strings.TrimPrefix(line, "\t\t"))
		case strings.HasPrefix(line, "\t"):
			flush()
			entry = append(entry, strings.TrimPrefix(line, "\t"))
		}
	}
	flush()
	if name := credentialPattern.FindString(head); name != "" {
		ce.Credential = name
	}
	lines := make([]string, len(sources))
	for i, s := range sources {
		lines[i] = s.line
	}
	ce.Sources = lines
	ce.summary = truncate(firstSentence(firstLine(head))+". Tried "+strings.Join(lines, "; "), maxSummary)
	ce.Fix = chainFix(sources, authFailed)
	return ce
}

// Redact removes what may be a secret from a credential's or token
// endpoint's message: everything from the first access_token, refresh_token,
// id_token, client_secret or client_assertion (in any case, with or without
// the underscore) to the end, then any JWT-shaped string and any value after
// "Bearer ". What a token endpoint says after those names is the token
// itself; what it says before them (the error code, its description) is what
// tells a person what went wrong.
func Redact(s string) string {
	if loc := secretFieldPattern.FindStringIndex(s); loc != nil {
		s = s[:loc[1]] + " " + redacted
	}
	s = bearerPattern.ReplaceAllString(s, "${1}"+redacted)
	return jwtPattern.ReplaceAllString(s, redacted)
}

const redacted = "[redacted]"

var (
	secretFieldPattern = regexp.MustCompile(`(?i)\b(access_?token|refresh_?token|id_?token|client_?secret|client_?assertion)\b`)
	// jwtPattern is three base64url parts, the first an encoded {" (eyJ).
	jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`)
	// bearerPattern is a credential after "Bearer ": 16 characters or more,
	// so that prose such as "bearer form" stays.
	bearerPattern = regexp.MustCompile(`(?i)(bearer\s+)[A-Za-z0-9._~+/=#:-]{16,}`)

	credentialPattern = regexp.MustCompile(`^[A-Za-z]+Credential\b`)
	responsePattern   = regexp.MustCompile(`RESPONSE (\d{3})\b`)
	aadstsPattern     = regexp.MustCompile(`AADSTS(\d+)`)
	oauthErrorPattern = regexp.MustCompile(`"error"\s*:\s*"([a-z_]{3,40})"`)
)

// source is one credential's failure, as its message tells it.
type source struct {
	name   string // such as "AzureCLICredential"; empty when the message does not say
	line   string // the summary line, redacted
	status int
	aadsts string // Entra ID's error code, such as "7000215"
	text   string // the whole message, for the fix rules
}

// describeSource reads one credential's message: its first sentence, minus
// azidentity's troubleshooting link, plus the status and the AADSTS code and
// sentence when the message holds a token endpoint's answer.
func describeSource(msg string) source {
	s := source{text: msg, name: credentialPattern.FindString(msg)}
	if m := responsePattern.FindStringSubmatch(msg); m != nil {
		s.status, _ = strconv.Atoi(m[1])
	}
	first := firstLine(msg)
	var line string
	// "X authentication failed. <why>" heads azidentity's message for an
	// answer from the endpoint (AuthenticationFailedError.Error); the
	// answer's body follows on later lines.
	if head, why, ok := strings.Cut(first, " authentication failed."); ok {
		line = head + " authentication failed"
		if why = firstSentence(why); why != "" {
			line += ": " + why
		}
	} else {
		line = firstSentence(first)
	}
	line = withStatus(line, s.status)
	var extra []string
	if m := aadstsPattern.FindStringSubmatchIndex(msg); m != nil {
		s.aadsts = msg[m[2]:m[3]]
		if code := "AADSTS" + s.aadsts; !strings.Contains(line, code) {
			extra = append(extra, firstSentence(firstLine(msg[m[0]:])))
		}
	} else if m := oauthErrorPattern.FindStringSubmatch(msg); m != nil && !strings.Contains(line, m[1]) {
		extra = append(extra, m[1])
	}
	if len(extra) > 0 {
		line += "; " + strings.Join(extra, "; ")
	}
	s.line = truncate(Redact(line), maxSourceLine)
	return s
}

// withStatus adds the HTTP status to a line that does not show it yet.
func withStatus(line string, status int) string {
	if status == 0 || strings.Contains(line, strconv.Itoa(status)) {
		return line
	}
	return fmt.Sprintf("%s (HTTP %d %s)", line, status, http.StatusText(status))
}

// The install pages the fixes point at.
const (
	installAzureCLI = "https://learn.microsoft.com/cli/azure/install-azure-cli"
	installAzd      = "https://learn.microsoft.com/azure/developer/azure-developer-cli/install-azd"
)

// fix is the likely fix for one credential's failure: that of the first of
// fixRules that matches it, or none.
func (s source) fix() string {
	for _, r := range fixRules {
		if (r.credential == "" || r.credential == s.name) && (r.match == nil || r.match(s)) {
			if r.fixFor != nil {
				return r.fixFor(s)
			}
			return r.fix
		}
	}
	return ""
}

// fixRule is one row of fixRules.
type fixRule struct {
	// credential is the failed credential's name; empty matches any.
	credential string
	// match reports whether the rule applies to a failure of that
	// credential; nil matches every one.
	match func(source) bool
	// fix is what to do; empty means no advice (and stops the search).
	fix string
	// fixFor, when set, is used instead of fix: for advice that quotes the
	// failure.
	fixFor func(source) string
}

// fixRules is the table fix reads, first match wins: Entra ID's AADSTS codes
// (https://learn.microsoft.com/entra/identity-platform/reference-error-codes),
// then each credential's own messages. The messages are azidentity v1.15's
// (docs/AZIDENTITY.md, "How a failure is recognised"): "executable not found
// on path" when the shell cannot find az, azd or pwsh; az's and azd's own
// stderr ("Please run 'az login'"); "managed identity timed out" and the dial
// errors when no managed identity endpoint answers; "missing environment
// variable" and "no ... specified" for unset AZURE_* variables.
var fixRules = []fixRule{
	// az's own sign-in no longer works (expired, revoked, MFA): az says
	// "Please run 'az login'", or passes Entra ID's AADSTS code on. Before
	// the codes: whatever the code, it is az's sign-in that needs renewing.
	{credential: "AzureCLICredential", match: anyOf(hasAADSTS, says("az login")),
		fix: "run `az login` as the user entraproxy runs as; `az account get-access-token --resource https://cognitiveservices.azure.com` must work"},
	{credential: "AzureDeveloperCLICredential", match: hasAADSTS,
		fix: "run `azd auth login` as the user entraproxy runs as"},

	{match: aadsts("7000215"),
		fix: "AZURE_CLIENT_SECRET is not a valid secret of the app AZURE_CLIENT_ID: use the secret's value (not its id), from Certificates & secrets of the app registration"},
	{match: aadsts("7000222"),
		fix: "the client secret has expired: create a new one in the app registration and set AZURE_CLIENT_SECRET"},
	{match: aadsts("700016"),
		fix: "AZURE_CLIENT_ID is not an application in tenant AZURE_TENANT_ID: check both"},
	{match: aadsts("90002"),
		fix: "tenant AZURE_TENANT_ID does not exist: check its value (a tenant id or domain)"},
	{match: aadsts("70021", "700211", "700212", "700213"),
		fix: "the federated identity credential of AZURE_CLIENT_ID does not match this workload's token (issuer, subject, audience): check the federated credential's subject names this service account"},

	{credential: "AzureCLICredential", match: says(executableNotFound),
		fix: "install the Azure CLI (" + installAzureCLI + "), run `az login`, then start entraproxy from that shell (az must be on its PATH)"},
	{credential: "AzureCLICredential",
		fix: "check that `az account get-access-token --resource https://cognitiveservices.azure.com` works as the user entraproxy runs as"},

	{credential: "AzureDeveloperCLICredential", match: says(executableNotFound),
		fix: "install the Azure Developer CLI (" + installAzd + ") and run `azd auth login`, or use ENTRAPROXY_CREDENTIAL=azure-cli"},
	{credential: "AzureDeveloperCLICredential",
		fix: "run `azd auth login` as the user entraproxy runs as"},

	// No PowerShell is rarely the one meant; the other sources say more.
	{credential: "AzurePowerShellCredential", match: says(executableNotFound)},
	{credential: "AzurePowerShellCredential",
		fix: "run `Connect-AzAccount` in PowerShell as the user entraproxy runs as"},

	{credential: "ManagedIdentityCredential", match: says("isn't assigned to this resource"),
		fix: "assign the user-assigned identity AZURE_CLIENT_ID to this Azure resource, or unset AZURE_CLIENT_ID to use its system-assigned identity"},
	{credential: "ManagedIdentityCredential", match: says("system assigned identity"),
		fix: "turn on this Azure resource's system-assigned identity, or set AZURE_CLIENT_ID to a user-assigned identity assigned to it"},
	{credential: "ManagedIdentityCredential", match: func(s source) bool { return s.status >= 500 },
		fix: "the managed identity endpoint failed; entraproxy retries. If it persists, check the identity of this Azure resource"},
	{credential: "ManagedIdentityCredential", match: func(s source) bool { return s.status != 0 },
		fixFor: func(s source) string {
			return fmt.Sprintf("the managed identity endpoint refused (HTTP %d). On Azure, assign a managed identity to this resource "+
				"(and set AZURE_CLIENT_ID to its client id if it is user-assigned); elsewhere something else answers at its address: %s", s.status, otherCredential)
		}},
	{credential: "ManagedIdentityCredential", match: func(s source) bool { return unreachable(s.text) },
		fix: "no managed identity endpoint answers here, so this is no Azure resource with a managed identity: " + otherCredential},

	{credential: "WorkloadIdentityCredential", match: says("specified", "token file"),
		fix: "set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (on AKS the workload identity webhook sets them for a pod labelled azure.workload.identity/use=true whose service account names the identity)"},
	{credential: "EnvironmentCredential", match: says("environment variable"),
		fix: "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) for a service principal"},
}

// executableNotFound is azidentity's message when the shell cannot find the
// developer tool a credential runs (exit status 127, or cmd.exe's "is not
// recognized").
const executableNotFound = "executable not found on path"

// says matches a failure whose message contains any of texts.
func says(texts ...string) func(source) bool {
	return func(s source) bool {
		return slices.ContainsFunc(texts, func(t string) bool { return strings.Contains(s.text, t) })
	}
}

// aadsts matches a failure with one of Entra ID's error codes (the digits
// after AADSTS).
func aadsts(codes ...string) func(source) bool {
	return func(s source) bool { return slices.Contains(codes, s.aadsts) }
}

func hasAADSTS(s source) bool { return s.aadsts != "" }

func anyOf(matches ...func(source) bool) func(source) bool {
	return func(s source) bool {
		return slices.ContainsFunc(matches, func(m func(source) bool) bool { return m(s) })
	}
}

// otherCredential is the way out when managed identity cannot work here.
const otherCredential = "outside Azure pick another credential, such as ENTRAPROXY_CREDENTIAL=azure-cli after `az login` (or AZURE_TOKEN_CREDENTIALS=dev to skip managed identity)"

// unreachable reports whether a message says nothing answered: a timeout or
// a failed connection, or (Docker Desktop's proxy) an "unreachable" answer.
func unreachable(msg string) bool {
	for _, s := range []string{"timed out", "timeout", "dial tcp", "connection refused", "no such host", "network is unreachable", "no route to host", "unreachable"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// chainFix is the likely fix when DefaultAzureCredential gave no token.
// When a source failed outright, the chain stopped there (failed is true:
// the chain's error is an AuthenticationFailedError) and that source's fix
// is the one. When every source was unavailable, the Azure CLI's fix is the
// likely one on a workstation; without the CLI in the chain
// (AZURE_TOKEN_CREDENTIALS=prod), the last source's: managed identity's.
func chainFix(sources []source, failed bool) string {
	const other = "; or name the credential with ENTRAPROXY_CREDENTIAL"
	if len(sources) == 0 {
		return ""
	}
	if failed {
		if f := sources[len(sources)-1].fix(); f != "" {
			return f
		}
	}
	for _, s := range sources {
		if s.name == "AzureCLICredential" {
			if f := s.fix(); f != "" {
				return f + other
			}
		}
	}
	for _, s := range slices.Backward(sources) {
		if f := s.fix(); f != "" {
			return f + other
		}
	}
	return ""
}

func firstLine(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// firstSentence cuts s at the end of its first sentence, dropping
// azidentity's "To troubleshoot, visit ..." and "See ... for more
// information" tails.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(strings.TrimSpace(s), ".")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
