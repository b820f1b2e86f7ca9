package doctor

import (
	"regexp"
	"strings"
)

// maxLine bounds one line of evidence quoted from somebody else's message.
const maxLine = 240

var (
	aadstsPattern      = regexp.MustCompile(`AADSTS\d+:[^\r\n"]*`)
	descriptionPattern = regexp.MustCompile(`"error_description"\s*:\s*"([^"]*)"`)
	responsePattern    = regexp.MustCompile(`RESPONSE \d{3}[^\r\n]*`)
)

// condenseCredentialError turns an azidentity error into a few lines.
// DefaultAzureCredential's error lists every source it tried, one per
// "\n\t" line with continuation lines indented by "\t\t"
// (createChainedErrorMessage in azidentity's chained_token_credential.go);
// each becomes one line "Source: what it said". Other credentials' errors
// become one line: the first, plus the HTTP status and Entra's
// AADSTS code or error_description when the message holds a response.
func condenseCredentialError(err error) []string {
	msg := err.Error()
	head, rest, chained := strings.Cut(msg, "\nAttempted credentials:")
	if !chained {
		return []string{condenseOne(msg)}
	}
	out := []string{firstLine(head)}
	var entry []string
	flush := func() {
		if len(entry) > 0 {
			out = append(out, "tried "+condenseOne(strings.Join(entry, "\n")))
		}
		entry = nil
	}
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case strings.HasPrefix(line, "\t\t"):
			entry = append(entry, strings.TrimSpace(line))
		case strings.HasPrefix(line, "\t"):
			flush()
			entry = append(entry, strings.TrimSpace(line))
		}
	}
	flush()
	return out
}

// condenseOne makes one line of one credential's message.
func condenseOne(msg string) string {
	line := firstLine(msg)
	var extra []string
	if m := responsePattern.FindString(msg); m != "" && !strings.Contains(line, m) {
		extra = append(extra, strings.TrimSpace(m))
	}
	if m := aadstsPattern.FindString(msg); m != "" && !strings.Contains(line, m) {
		extra = append(extra, strings.TrimSpace(m))
	} else if m := descriptionPattern.FindStringSubmatch(msg); m != nil && !strings.Contains(line, m[1]) {
		extra = append(extra, strings.TrimSpace(m[1]))
	}
	if len(extra) > 0 {
		line = strings.TrimSuffix(line, ".") + "; " + strings.Join(extra, "; ")
	}
	return truncate(line, maxLine)
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// credentialFix says how to make each ENTRAPROXY_CREDENTIAL kind produce a
// token.
func credentialFix(kind string) []string {
	switch kind {
	case "azure-cli":
		return []string{"run `az login` (and `az account set --subscription SUB` for the resource's subscription) as the user entraproxy runs as; `az account get-access-token --scope https://cognitiveservices.azure.com/.default` must work"}
	case "azure-developer-cli":
		return []string{"run `azd auth login` as the user entraproxy runs as"}
	case "managed-identity":
		return []string{"run where a managed identity is assigned (App Service, Functions, Container Apps, AKS, a VM); for a user-assigned identity set AZURE_CLIENT_ID to its client id"}
	case "workload-identity":
		return []string{"set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (on AKS the workload identity webhook sets them when the pod's service account is annotated and the pod is labelled azure.workload.identity/use=true)"}
	case "environment":
		return []string{"set AZURE_TENANT_ID, AZURE_CLIENT_ID and either AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"}
	}
	return []string{
		"make one of the sources above work, e.g. `az login` on a workstation or a managed identity in Azure",
		"or name the one you mean with ENTRAPROXY_CREDENTIAL (azure-cli, managed-identity, workload-identity ...), or narrow DefaultAzureCredential with AZURE_TOKEN_CREDENTIALS (dev, prod, or a credential name)",
	}
}
