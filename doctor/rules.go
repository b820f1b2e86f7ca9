package doctor

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/entraproxy/entraproxy/proxy"
)

// Doctor's reasoning about the auth probes, as two tables that its golden
// files (testdata/*.golden, one scenario per rule; TestScenarios checks
// that every rule is shown by one) pin down:
//
//   - answerRules: what one probe's answer means (match -> verdict, detail,
//     cause);
//   - diagnoses: for probes that no form got through, each cause in turn
//     (cause -> summary, fixes), the most specific first.

// cause is why a probe did not get through. The order of the constants is
// the order diagnose explains them in.
type cause int

const (
	noCause cause = iota // it got through
	causeRedirect
	causeRole
	causeNetwork
	causeNotFound
	causeUnauthorized
	causeUnreachable
	causeOther
)

func (c cause) String() string {
	return [...]string{"none", "redirect", "role", "network", "not found", "unauthorized", "unreachable", "other"}[c]
}

// answerRule is one kind of answer an app can get through the proxy.
type answerRule struct {
	name    string
	match   func(p *Probe, message string) bool
	verdict Verdict
	cause   cause
	// detail says what the answer means, after its status; says is
	// Azure's own message as "; Azure says: ...", or "".
	detail func(p *Probe, message, says string) string
}

// answerRules are tried in order; the last matches anything.
func answerRules() []answerRule {
	status := func(codes ...int) func(*Probe, string) bool {
		return func(p *Probe, _ string) bool { return slices.Contains(codes, p.Status) }
	}
	fixed := func(text string) func(*Probe, string, string) string {
		return func(_ *Probe, _, says string) string { return text + says }
	}
	return []answerRule{
		{
			name:    "accepted",
			match:   func(p *Probe, _ string) bool { return p.Status == http.StatusSwitchingProtocols || p.Status/100 == 2 },
			verdict: Pass, detail: func(*Probe, string, string) string { return "accepted" },
		},
		{
			name: "throttled", match: status(http.StatusTooManyRequests),
			verdict: Warn, detail: func(*Probe, string, string) string { return "accepted, but throttled by the resource's rate limit" },
		},
		{
			// Azure OpenAI answers a missing role with 401 PermissionDenied,
			// "The principal ... lacks the required data action ...", where
			// other services say 403.
			name: "role missing (401)",
			match: func(p *Probe, message string) bool {
				return p.Status == http.StatusUnauthorized &&
					(strings.EqualFold(p.Code, "PermissionDenied") || strings.Contains(message, "lacks the required data action"))
			},
			verdict: Fail, cause: causeRole, detail: fixed("the token is valid but its principal lacks a role on the resource"),
		},
		{
			name: "refused", match: status(http.StatusUnauthorized),
			verdict: Fail, cause: causeUnauthorized,
			detail: func(p *Probe, _, says string) string { return "the " + p.Form + " form was refused" + says },
		},
		{
			// "Access denied due to Virtual Network/Firewall rules."
			name: "firewall",
			match: func(p *Probe, message string) bool {
				return p.Status == http.StatusForbidden && (strings.Contains(message, "Virtual Network") || strings.Contains(message, "Firewall"))
			},
			verdict: Fail, cause: causeNetwork, detail: fixed("the resource's network rules refuse this machine"),
		},
		{
			name: "role missing (403)", match: status(http.StatusForbidden),
			verdict: Fail, cause: causeRole, detail: fixed("the principal lacks a role on the resource"),
		},
		{
			name: "not found", match: status(http.StatusNotFound),
			verdict: Fail, cause: causeNotFound,
			detail: func(p *Probe, _, says string) string { return "the upstream does not serve " + p.Path + says },
		},
		{
			name:    "redirect refused",
			match:   func(p *Probe, _ string) bool { return p.Code == proxy.CodeRedirectNotAllowed },
			verdict: Fail, cause: causeRedirect, detail: proxySays,
		},
		{
			name: "upstream unreachable",
			match: func(p *Probe, _ string) bool {
				return p.Code == proxy.CodeUpstreamUnreachable || p.Code == proxy.CodeUpstreamTimeout
			},
			verdict: Fail, cause: causeUnreachable, detail: proxySays,
		},
		{
			name:    "unexpected",
			match:   func(*Probe, string) bool { return true },
			verdict: Fail, cause: causeOther, detail: fixed("unexpected answer"),
		},
	}
}

func proxySays(p *Probe, message, _ string) string {
	return "the proxy says " + p.Code + ": " + message
}

// translate sets the probe's verdict, cause and detail from its answer:
// the status, the envelope's code (already in p) and message.
func translate(p *Probe, message string) {
	says := ""
	if message != "" {
		says = "; Azure says: " + message
	}
	for _, r := range answerRules() {
		if r.match(p, message) {
			p.Verdict, p.cause, p.rule = r.verdict, r.cause, r.name
			p.Detail = fmt.Sprintf("%d %s: %s", p.Status, http.StatusText(p.Status), r.detail(p, message, says))
			return
		}
	}
}

// diagnosis explains one cause: it adds the fixes to c and returns the
// cause in words, for the check's summary. probes are those of the cause.
type diagnosis func(d *doctor, c *Check, probes []Probe) string

// diagnoses are the explanations of each cause, in the order of the
// causes.
func diagnoses() map[cause]diagnosis {
	return map[cause]diagnosis{
		causeRedirect:     (*doctor).explainRedirect,
		causeRole:         (*doctor).explainRole,
		causeNetwork:      (*doctor).explainNetwork,
		causeNotFound:     (*doctor).explainNotFound,
		causeUnauthorized: (*doctor).explainUnauthorized,
		causeUnreachable:  (*doctor).explainUnreachable,
		causeOther:        (*doctor).explainOther,
	}
}

// diagnose explains probes that no form got through, most specific cause
// first, and adds the fixes.
func (d *doctor) diagnose(c *Check) string {
	byCause := map[cause][]Probe{}
	for _, p := range c.Probes {
		if !works(p) {
			byCause[p.cause] = append(byCause[p.cause], p)
		}
	}
	explain := diagnoses()
	var causes []string
	for k := causeRedirect; k <= causeOther; k++ {
		if probes := byCause[k]; len(probes) > 0 {
			causes = append(causes, explain[k](d, c, probes))
		}
	}
	if len(causes) == 0 {
		return "no probe got through"
	}
	return strings.Join(causes, "; ")
}

// explainRedirect: the proxy refused a redirect; its target says where to,
// which is what ENTRAPROXY_REDIRECT_HOSTS needs.
func (d *doctor) explainRedirect(c *Check, probes []Probe) string {
	host := ""
	for _, p := range probes {
		host = cmp.Or(host, p.Target)
	}
	shown := host
	if shown == "" {
		shown = "HOST"
	}
	c.Fix = append(c.Fix, fmt.Sprintf("add %s to ENTRAPROXY_REDIRECT_HOSTS if it is your resource's Azure host (such as eastus.tts.speech.microsoft.com): the proxy sends the token there", shown))
	if host != "" {
		d.recommend("ENTRAPROXY_REDIRECT_HOSTS", strings.Join(append(slices.Clone(d.cfg.RedirectHosts), host), ","), "check 5: the upstream redirects to "+host)
	}
	return "the upstream redirects to a host ENTRAPROXY_REDIRECT_HOSTS does not allow"
}

// explainRole: a 403, or Azure OpenAI's 401 PermissionDenied; the role to
// grant, to whom, where.
func (d *doctor) explainRole(c *Check, _ []Probe) string {
	roleName := "Cognitive Services Speech User"
	if d.service == ServiceOpenAI {
		roleName = "Cognitive Services OpenAI User"
	}
	oid, ptype := "OBJECT_ID", ""
	if d.claims != nil && d.claims.Oid != "" {
		oid = d.claims.Oid
		if t := d.claims.principalType(); t != "" {
			ptype = " --assignee-principal-type " + t
		}
	}
	scope := cmp.Or(d.cfg.ResourceID, "RESOURCE_ID")
	fix := fmt.Sprintf("grant the role: az role assignment create --role %q --assignee-object-id %s%s --scope %s", roleName, oid, ptype, scope)
	if scope == "RESOURCE_ID" {
		fix += " (RESOURCE_ID: `az cognitiveservices account show -n NAME -g GROUP --query id -o tsv`)"
	}
	c.Fix = append(c.Fix, fix, "role assignments take a few minutes to apply; run doctor again after that")
	return fmt.Sprintf("principal %s lacks the %q role on the resource", oid, roleName)
}

func (d *doctor) explainNetwork(c *Check, _ []Probe) string {
	c.Fix = append(c.Fix, "allow this machine's outbound IP address or virtual network under the resource's Networking settings, or reach it through a private endpoint")
	return "the resource's network rules refuse this machine"
}

func (d *doctor) explainNotFound(c *Check, _ []Probe) string {
	if d.service == ServiceOpenAI {
		c.Fix = append(c.Fix, "set ENTRAPROXY_UPSTREAM to the endpoint of the Azure OpenAI resource (https://NAME.openai.azure.com) or of the AI Services resource that hosts the deployments (https://NAME.cognitiveservices.azure.com)")
		return "the upstream does not serve Azure OpenAI"
	}
	c.Fix = append(c.Fix, "set ENTRAPROXY_UPSTREAM to the custom domain of the Speech (or AI Services) resource; if this endpoint is for Azure OpenAI, run `entraproxy doctor --service openai`")
	return "the upstream does not serve Speech at its custom-domain paths"
}

// explainUnauthorized: 401 in every form. A token check 3 found wrong
// explains it; else the suspects that remain, in the order worth checking.
func (d *doctor) explainUnauthorized(c *Check, _ []Probe) string {
	const summary = "Azure refused the token in every form (401)"
	if d.tokenProblem != "" {
		c.Fix = append(c.Fix, "fix the token first (check 3): "+d.tokenProblem)
		return summary
	}
	if d.service == ServiceSpeech && d.cfg.ResourceID == "" {
		c.Fix = append(c.Fix, "set ENTRAPROXY_RESOURCE_ID to the Speech resource's ARM id (`az cognitiveservices account show -n NAME -g GROUP --query id -o tsv`), so that the aad form can be tried")
	}
	if d.service == ServiceSpeech && d.cfg.ResourceID != "" {
		c.Fix = append(c.Fix, "check that ENTRAPROXY_RESOURCE_ID is the id of this very resource: the aad form carries it")
	}
	tenant := "TENANT"
	if d.claims != nil && d.claims.Tid != "" {
		tenant = d.claims.Tid
	}
	c.Fix = append(c.Fix,
		fmt.Sprintf("the token is from tenant %s: if the resource is in another tenant, sign in there (AZURE_TENANT_ID, or `az login --tenant` with the resource's tenant)", tenant),
		"make sure the resource allows Entra ID auth: ENTRAPROXY_UPSTREAM must be its custom domain (check 4)")
	return summary
}

func (d *doctor) explainUnreachable(c *Check, _ []Probe) string {
	c.Fix = append(c.Fix, "see check 4; a probe that timed out may mean the upstream is slow: raise ENTRAPROXY_UPSTREAM_TIMEOUT only if Azure is known to be slow here")
	return "the proxy could not reach the upstream"
}

func (d *doctor) explainOther(c *Check, _ []Probe) string {
	c.Fix = append(c.Fix, "see the probes' answers above; a 5xx is Azure's side: retry later")
	return "the upstream answered something unexpected"
}
