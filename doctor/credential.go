package doctor

import (
	"strings"

	"github.com/entraproxy/entraproxy/tokens"
)

// maxLine bounds one line of evidence quoted from somebody else's message.
const maxLine = 240

// credentialEvidence is what check 2 shows of a credential's failure: the
// same bounded, redacted description serving logs (tokens.CredentialError),
// one line per source DefaultAzureCredential tried.
func credentialEvidence(ce *tokens.CredentialError) []string {
	if len(ce.Sources) == 0 {
		return []string{ce.Error()}
	}
	out := make([]string, len(ce.Sources))
	for i, s := range ce.Sources {
		out[i] = "tried " + s
	}
	return out
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

// credentialFix says how to make the credential produce a token: the fix
// its error points at when there is one (the same one serving logs), else
// what each ENTRAPROXY_CREDENTIAL kind needs.
func credentialFix(kind string, ce *tokens.CredentialError) []string {
	if ce != nil && ce.Fix != "" {
		return []string{ce.Fix}
	}
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
