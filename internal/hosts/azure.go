package hosts

import (
	"net/netip"
	"slices"
	"strings"
)

// Kind is what Classify found a host to be.
type Kind int

const (
	// Other is any other host: a gateway, a private alias
	// (NAME.privatelink.cognitiveservices.azure.com), a typo, an IP address
	// that is not loopback. It is the zero value.
	Other Kind = iota
	// Loopback is this machine (IsLoopback): local testing.
	Loopback
	// CustomDomain is a resource's custom subdomain,
	// NAME.cognitiveservices.azure.com (.us, .cn), as Entra ID auth needs.
	CustomDomain
	// OpenAI is an Azure OpenAI resource's custom subdomain,
	// NAME.openai.azure.com (.us, .cn), as Entra ID auth needs.
	OpenAI
	// Regional is a shared regional endpoint, such as
	// eastus.api.cognitive.microsoft.com or
	// westeurope.tts.speech.microsoft.com, which rejects an Entra ID token
	// for a resource unless the request names the resource's custom domain.
	Regional
)

func (k Kind) String() string {
	switch k {
	case Loopback:
		return "loopback"
	case CustomDomain:
		return "custom domain"
	case OpenAI:
		return "Azure OpenAI custom domain"
	case Regional:
		return "regional endpoint"
	}
	return "other"
}

// Cloud is one Azure cloud's host names for AI services.
type Cloud struct {
	// Audience is the token audience AI services accept in this cloud
	// (https://learn.microsoft.com/azure/ai-services/authentication); the
	// scope to ask for is Audience + "/.default".
	Audience string

	customDomain string   // parent of the resources' custom subdomains
	openAI       string   // parent of Azure OpenAI resources' custom subdomains
	regional     []string // parents of one label, the region, in regional endpoints
	speech       string   // parent of Speech's regional hosts (redirect targets)
	domains      []string // parents of every host of this cloud
}

// CustomDomainURL is the endpoint of the resource whose custom subdomain is
// name, in c: https://name.cognitiveservices.azure.com (.us, .cn). Pass
// "NAME" for a placeholder.
func (c Cloud) CustomDomainURL(name string) string {
	return "https://" + name + "." + c.customDomain
}

// Clouds are what this package knows of the public cloud, Azure Government
// and Azure operated by 21Vianet, in that order:
//
//   - the custom subdomains of resources, NAME.cognitiveservices.azure.com and
//     Azure OpenAI's NAME.openai.azure.com, with .us and .cn in place of .com:
//     the public DNS zones of Azure AI services' private endpoints in each
//     cloud (https://learn.microsoft.com/azure/private-link/private-endpoint-dns);
//     Entra ID auth needs them
//     (https://learn.microsoft.com/azure/ai-services/cognitive-services-custom-subdomains);
//   - the shared regional endpoints: REGION.api.cognitive.microsoft.com and
//     Speech's REGION.stt / .tts .speech.microsoft.com
//     (https://learn.microsoft.com/azure/ai-services/speech-service/rest-speech-to-text,
//     https://learn.microsoft.com/azure/ai-services/speech-service/rest-text-to-speech)
//     and .s2s (speech translation); REGION.api.cognitive.microsoft.us and
//     REGION.stt / .tts .speech.azure.us in Azure Government;
//     REGION.api.cognitive.azure.cn and REGION.stt / .tts .speech.azure.cn in
//     Azure operated by 21Vianet
//     (https://learn.microsoft.com/azure/ai-services/speech-service/sovereign-clouds);
//   - the token audience of each
//     (https://learn.microsoft.com/azure/ai-services/authentication).
func Clouds() []Cloud {
	return []Cloud{
		{
			Audience:     "https://cognitiveservices.azure.com",
			customDomain: "cognitiveservices.azure.com",
			openAI:       "openai.azure.com",
			regional:     []string{"api.cognitive.microsoft.com", "stt.speech.microsoft.com", "tts.speech.microsoft.com", "s2s.speech.microsoft.com"},
			speech:       "speech.microsoft.com",
			domains:      []string{"azure.com", "microsoft.com"},
		},
		{
			Audience:     "https://cognitiveservices.azure.us",
			customDomain: "cognitiveservices.azure.us",
			openAI:       "openai.azure.us",
			regional:     []string{"api.cognitive.microsoft.us", "stt.speech.azure.us", "tts.speech.azure.us", "s2s.speech.azure.us"},
			speech:       "speech.azure.us",
			domains:      []string{"azure.us", "microsoft.us"},
		},
		{
			Audience:     "https://cognitiveservices.azure.cn",
			customDomain: "cognitiveservices.azure.cn",
			openAI:       "openai.azure.cn",
			regional:     []string{"api.cognitive.azure.cn", "stt.speech.azure.cn", "tts.speech.azure.cn", "s2s.speech.azure.cn"},
			speech:       "speech.azure.cn",
			domains:      []string{"azure.cn"},
		},
	}
}

// Class is what a host name says about an Azure AI services endpoint.
type Class struct {
	Kind Kind
	// Cloud is the cloud whose domains hold the host; the public cloud
	// for a host in none of them (loopback, a gateway), whose cloud the
	// name cannot tell.
	Cloud Cloud
}

// Classify says what hostport (a host name or IP address, with or without
// a port; letter case and a trailing dot do not matter) is, from its name
// alone: it asks no DNS. Config refuses a Regional ENTRAPROXY_UPSTREAM with
// the custom domain of its cloud to use instead; doctor judges the
// upstream by it.
func Classify(hostport string) Class {
	host, _, _ := splitHostPort(hostport)
	clouds := Clouds()
	class := Class{Cloud: clouds[0]}
	switch _, err := netip.ParseAddr(host); {
	case host == "":
		return class
	case IsLoopback(host):
		class.Kind = Loopback
		return class
	case err == nil:
		return class // an IP address names no endpoint
	}
	for _, c := range clouds {
		if !below(host, c.domains...) {
			continue
		}
		class.Cloud = c
		label, parent, _ := strings.Cut(host, ".")
		switch {
		case !isLabel(label):
		case parent == c.customDomain:
			class.Kind = CustomDomain
		case parent == c.openAI:
			class.Kind = OpenAI
		case slices.Contains(c.regional, parent):
			class.Kind = Regional
		}
		return class
	}
	return class
}

// IsOpenAI reports whether hostport is in one of Azure OpenAI's domains: a
// resource's custom subdomain (Classify's OpenAI) or any name below one. It
// is broader than Classify on purpose: it keeps Speech's aad form away
// from Azure OpenAI, which refuses it, whatever alias names the host.
func IsOpenAI(hostport string) bool {
	host, _, _ := splitHostPort(hostport)
	for _, c := range Clouds() {
		if below(host, c.openAI) {
			return true
		}
	}
	return false
}

// DefaultRedirectHosts is ENTRAPROXY_REDIRECT_HOSTS' default, as Patterns
// entries: the custom-subdomain domain of AI services and Speech's regional
// hosts in each cloud, and Azure OpenAI's domain in the public cloud. The
// Speech service answers a custom-domain WebSocket handshake with a
// redirect to its regional host
// (wss://REGION.tts.speech.microsoft.com/...?Ocp-Apim-Custom-Domain-Name=NAME.cognitiveservices.azure.com,
// docs/SPEECH-SDK-WIRE.md). Azure OpenAI's Government and 21Vianet domains
// are not in it: the list is the README's, unchanged since it was
// published.
func DefaultRedirectHosts() []string {
	clouds := Clouds()
	public := clouds[0]
	list := []string{"*." + public.customDomain, "*." + public.speech, "*." + public.openAI}
	for _, c := range clouds[1:] {
		list = append(list, "*."+c.customDomain, "*."+c.speech)
	}
	return list
}

// below reports whether host is a name below one of domains: at least one
// label before it.
func below(host string, domains ...string) bool {
	for _, d := range domains {
		if labels, ok := strings.CutSuffix(host, "."+d); ok && labels != "" {
			return true
		}
	}
	return false
}

// isLabel reports whether s is one DNS label of the kind Azure names
// resources and regions with: lower-case letters, digits and hyphens.
func isLabel(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}
