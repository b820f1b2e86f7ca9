package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/gorilla/websocket"

	"github.com/entraproxy/entraproxy/proxy"
)

// probeSpec is one request an app would make.
type probeSpec struct {
	name, protocol, method, path string
}

// OpenAIAPIVersion is the GA data-plane version the OpenAI probe asks for
// (https://learn.microsoft.com/azure/ai-services/openai/reference).
const OpenAIAPIVersion = "2024-10-21"

// specs are the probes for the service: the cheapest authenticated GETs.
func (d *doctor) specs() []probeSpec {
	if d.service == ServiceOpenAI {
		return []probeSpec{{"models list", "http", http.MethodGet, "/openai/models?api-version=" + OpenAIAPIVersion}}
	}
	return []probeSpec{
		{"voices list", "http", http.MethodGet, "/tts/cognitiveservices/voices/list"},
		// The handshake is where the Speech SDK's 401 happens (README,
		// first screen); doctor closes right after the 101.
		{"TTS WebSocket", "websocket", http.MethodGet, "/tts/cognitiveservices/websocket/v1"},
	}
}

// forms are the Authorization forms worth probing: aad is Speech's and
// needs a resource id.
func (d *doctor) forms() []proxy.AuthFormat {
	if d.service == ServiceSpeech && d.cfg.ResourceID != "" {
		return []proxy.AuthFormat{proxy.FormatBearer, proxy.FormatAAD}
	}
	return []proxy.AuthFormat{proxy.FormatBearer}
}

// staticTokens hands the probe proxies the one token check 2 got, so each
// form is tried with the same token and a 401 is never retried.
type staticTokens struct{ tok azcore.AccessToken }

func (s staticTokens) Token(context.Context) (azcore.AccessToken, error) { return s.tok, nil }
func (s staticTokens) Renew(context.Context, string) (azcore.AccessToken, error) {
	return s.tok, nil
}

// probeProxy is a proxy.Proxy fixed to one form, served on a loopback port
// for the duration of the auth check: probing through the real proxy means
// the header forms, Speech paths and redirect rules are the ones serving
// uses, not a copy of them.
type probeProxy struct {
	addr string
	p    *proxy.Proxy
	srv  *http.Server
	done chan struct{}
}

func (d *doctor) startProbeProxy(form proxy.AuthFormat) (*probeProxy, error) {
	p, err := proxy.New(proxy.Options{
		Upstream:        d.cfg.UpstreamURL(),
		Tokens:          staticTokens{d.token},
		AuthFormat:      form,
		ResourceID:      d.cfg.ResourceID,
		SpeechPaths:     d.cfg.SpeechPaths,
		RedirectHosts:   d.cfg.RedirectHosts,
		UpstreamTimeout: d.timeout(),
		ResponseTimeout: d.timeout(),
		Proxy:           d.proxyFunc,
		TLSConfig:       d.tlsConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("build the %s probe proxy: %w", form, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the %s probe proxy: %w", form, err)
	}
	pp := &probeProxy{addr: ln.Addr().String(), p: p, done: make(chan struct{}),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}}
	go func() {
		defer close(pp.done)
		pp.srv.Serve(ln)
	}()
	return pp, nil
}

// stop ends the proxy's sessions and server, and waits for its goroutine.
func (pp *probeProxy) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pp.p.Shutdown(ctx)
	pp.srv.Close()
	<-pp.done
}

// checkAuth is check 5: each probe in each form, through the proxy, and
// what the answers mean for ENTRAPROXY_AUTH_FORMAT.
func (d *doctor) checkAuth(ctx context.Context, c *Check) {
	forms, specs := d.forms(), d.specs()
	proxies := make([]*probeProxy, len(forms))
	for i, f := range forms {
		pp, err := d.startProbeProxy(f)
		if err != nil {
			c.Verdict, c.Summary = Fail, "the probes could not start: "+err.Error()
			c.Fix = append(c.Fix, "doctor needs a free loopback port; run it again")
			for _, pp := range proxies[:i] {
				pp.stop()
			}
			return
		}
		proxies[i] = pp
	}
	httpTransport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	probes := make([]Probe, len(forms)*len(specs))
	var wg sync.WaitGroup
	for i, f := range forms {
		for j, s := range specs {
			wg.Go(func() {
				probes[i*len(specs)+j] = d.probe(ctx, httpTransport, proxies[i].addr, string(f), s)
			})
		}
	}
	wg.Wait()
	for _, pp := range proxies {
		pp.stop()
	}
	c.Probes = probes
	d.judgeAuth(c, forms, specs)
}

// probe makes one request through the probe proxy at addr.
func (d *doctor) probe(ctx context.Context, tr http.RoundTripper, addr, form string, s probeSpec) Probe {
	p := Probe{Name: s.name, Protocol: s.protocol, Method: s.method, Path: s.path, Form: form}
	// The proxy gives up on the upstream after timeout(); the client waits
	// a little longer so that it sees the proxy's 504, not its own timeout.
	pctx, cancel := context.WithTimeout(ctx, d.timeout()+time.Second)
	defer cancel()
	start := time.Now()
	var body []byte
	var err error
	if s.protocol == "websocket" {
		p.Status, body, err = probeWebSocket(pctx, addr, s.path)
	} else {
		p.Status, body, err = probeHTTP(pctx, tr, addr, s)
	}
	p.Duration = time.Since(start)
	p.DurationMS = p.Duration.Milliseconds()
	if err != nil {
		p.Verdict, p.Detail = Fail, "the probe failed before an answer: "+err.Error()
		return p
	}
	code, message := azureError(body)
	p.Code = code
	translate(&p, message)
	return p
}

func probeHTTP(ctx context.Context, tr http.RoundTripper, addr string, s probeSpec) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, s.method, "http://"+addr+s.path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, body, nil
}

// probeWebSocket opens the handshake as the Speech SDK does (subprotocol
// USP, X-ConnectionId) and closes right after the 101.
func probeWebSocket(ctx context.Context, addr, path string) (int, []byte, error) {
	id := make([]byte, 16)
	rand.Read(id)
	connID := strings.ToUpper(hex.EncodeToString(id))
	dialer := websocket.Dialer{Subprotocols: []string{"USP"}}
	conn, resp, err := dialer.DialContext(ctx, "ws://"+addr+path+"?X-ConnectionId="+connID, http.Header{"X-Connectionid": {connID}})
	if err == nil {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "entraproxy doctor")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		conn.Close()
		return http.StatusSwitchingProtocols, nil, nil
	}
	if resp == nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	// gorilla keeps up to 1 KiB of a failed handshake's body.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, body, nil
}

// azureError reads Azure's error envelope {"error":{"code","message"}}
// (also the flat {"code","message"}), or the first line of a text body.
func azureError(body []byte) (code, message string) {
	var env struct {
		Error *struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Code    any    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		switch {
		case env.Error != nil:
			return codeString(env.Error.Code), truncate(firstLine(env.Error.Message), maxLine)
		case env.Message != "":
			return codeString(env.Code), truncate(firstLine(env.Message), maxLine)
		}
		return "", ""
	}
	text := firstLine(string(body))
	if strings.HasPrefix(text, "<") {
		return "", "" // an HTML page says nothing useful in one line
	}
	return "", truncate(text, maxLine)
}

func codeString(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case float64:
		return fmt.Sprint(c)
	}
	return ""
}

// Codes the proxy itself answers with (README, Errors).
const (
	codeRedirectNotAllowed  = "redirect_not_allowed"
	codeUpstreamUnreachable = "upstream_unreachable"
	codeUpstreamTimeout     = "upstream_timeout"
)

// permissionDenied reports whether a 401 is really a missing role: Azure
// OpenAI answers 401 PermissionDenied, "The principal ... lacks the
// required data action ...", where other services say 403.
func permissionDenied(code, message string) bool {
	return strings.EqualFold(code, "PermissionDenied") || strings.Contains(message, "lacks the required data action")
}

// networkDenied reports whether a 403 comes from the resource's firewall
// ("Access denied due to Virtual Network/Firewall rules.") rather than from
// a missing role.
func networkDenied(message string) bool {
	return strings.Contains(message, "Virtual Network") || strings.Contains(message, "Firewall")
}

// translate sets the probe's verdict and says what its answer means.
func translate(p *Probe, message string) {
	says := ""
	if message != "" {
		says = "; Azure says: " + message
	}
	status := fmt.Sprintf("%d %s", p.Status, http.StatusText(p.Status))
	switch {
	case p.Status == http.StatusSwitchingProtocols || (p.Status >= 200 && p.Status < 300):
		p.Verdict, p.Detail = Pass, status+": accepted"
	case p.Status == http.StatusTooManyRequests:
		p.Verdict, p.Detail = Warn, status+": accepted, but throttled by the resource's rate limit"
	case p.Status == http.StatusUnauthorized && permissionDenied(p.Code, message):
		p.Verdict, p.Detail = Fail, status+": the token is valid but its principal lacks a role on the resource"+says
		p.roleMissing = true
	case p.Status == http.StatusUnauthorized:
		p.Verdict, p.Detail = Fail, status+": the "+p.Form+" form was refused"+says
	case p.Status == http.StatusForbidden && networkDenied(message):
		p.Verdict, p.Detail = Fail, status+": the resource's network rules refuse this machine"+says
		p.networkDenied = true
	case p.Status == http.StatusForbidden:
		p.Verdict, p.Detail = Fail, status+": the principal lacks a role on the resource"+says
		p.roleMissing = true
	case p.Status == http.StatusNotFound:
		p.Verdict, p.Detail = Fail, status+": the upstream does not serve "+p.Path+says
	case p.Code == codeRedirectNotAllowed || p.Code == codeUpstreamUnreachable || p.Code == codeUpstreamTimeout:
		p.Verdict, p.Detail = Fail, status+": the proxy says "+p.Code+": "+message
	default:
		p.Verdict, p.Detail = Fail, status+": unexpected answer"+says
	}
}

// works reports whether an app's request in p's form would get through.
func works(p Probe) bool { return p.Verdict == Pass || p.Verdict == Warn }

var redirectHostPattern = regexp.MustCompile(`redirected to "([^"]+)"`)

// judgeAuth turns the probes into check 5's verdict, evidence and fixes.
func (d *doctor) judgeAuth(c *Check, forms []proxy.AuthFormat, specs []probeSpec) {
	n := len(specs)
	byForm := map[proxy.AuthFormat][]Probe{}
	for i, f := range forms {
		byForm[f] = c.Probes[i*n : (i+1)*n]
	}
	formWorks := func(f proxy.AuthFormat) bool {
		ps, ok := byForm[f]
		if !ok {
			return false
		}
		for _, p := range ps {
			if !works(p) {
				return false
			}
		}
		return true
	}
	autoWorks := true
	for j := range specs {
		ok := works(byForm[proxy.FormatBearer][j])
		if aad, probed := byForm[proxy.FormatAAD]; probed && works(aad[j]) {
			ok = true
		}
		autoWorks = autoWorks && ok
	}
	bearerOK, aadOK := formWorks(proxy.FormatBearer), formWorks(proxy.FormatAAD)
	throttled := false
	for _, p := range c.Probes {
		c.Evidence = append(c.Evidence, fmt.Sprintf("%-6s %-13s %s", p.Form, p.Name, p.Detail))
		throttled = throttled || p.Verdict == Warn
	}
	if _, ok := byForm[proxy.FormatAAD]; !ok && d.service == ServiceSpeech {
		c.Evidence = append(c.Evidence, "aad form not probed: ENTRAPROXY_RESOURCE_ID is empty")
	}

	configured := proxy.AuthFormat(d.cfg.AuthFormat)
	var ok bool
	switch configured {
	case proxy.FormatBearer:
		ok = bearerOK
	case proxy.FormatAAD:
		ok = aadOK
	default:
		ok = autoWorks
	}
	setFormat := func(f proxy.AuthFormat, why string) {
		c.Fix = append(c.Fix, "set ENTRAPROXY_AUTH_FORMAT="+string(f))
		d.recommend("ENTRAPROXY_AUTH_FORMAT", string(f), "check 5: "+why)
	}

	switch {
	case ok && configured == proxy.FormatAuto && !bearerOK && aadOK:
		c.Verdict = Warn
		c.Summary = "only the aad form is accepted; auto gets there after a 401 on the first request"
		setFormat(proxy.FormatAAD, "only the aad form was accepted")
	case ok:
		c.Verdict = Pass
		switch {
		case configured == proxy.FormatAuto && !bearerOK:
			c.Summary = "auto works: some requests need the aad form, others bearer"
		default:
			c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s works for every probe", configured)
		}
		if throttled {
			c.Verdict = Warn
			c.Summary += ", but the resource throttled (429)"
			c.Fix = append(c.Fix, "the credential works; the resource's rate limit was hit: retry later, or raise the deployment's or resource's quota")
		}
	case bearerOK:
		c.Verdict = Fail
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused; the bearer form is accepted", configured)
		if configured == proxy.FormatAAD && d.service == ServiceOpenAI {
			c.Summary = "the aad form is Speech only and is never sent to Azure OpenAI; the bearer form is accepted"
		}
		setFormat(proxy.FormatBearer, "only the bearer form was accepted")
	case aadOK:
		c.Verdict = Fail
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused; the aad form is accepted", configured)
		setFormat(proxy.FormatAAD, "only the aad form was accepted")
	case autoWorks:
		c.Verdict = Fail
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused for some requests; auto, which tries both forms, works", configured)
		setFormat(proxy.FormatAuto, "requests need different forms")
	default:
		c.Verdict = Fail
		c.Summary = d.diagnose(c)
	}
}

// diagnose explains probes that no form got through, most specific cause
// first, and adds the fixes.
func (d *doctor) diagnose(c *Check) string {
	var redirect, role, network, notFound, unauthorized, unreachable, other bool
	var redirectHost string
	for _, p := range c.Probes {
		switch {
		case works(p):
		case p.Code == codeRedirectNotAllowed:
			redirect = true
			if m := redirectHostPattern.FindStringSubmatch(p.Detail); m != nil {
				redirectHost = m[1]
			}
		case p.roleMissing:
			role = true
		case p.networkDenied:
			network = true
		case p.Status == http.StatusNotFound:
			notFound = true
		case p.Status == http.StatusUnauthorized:
			unauthorized = true
		case p.Code == codeUpstreamUnreachable || p.Code == codeUpstreamTimeout || p.Status == 0:
			unreachable = true
		default:
			other = true
		}
	}
	var causes []string
	if redirect {
		causes = append(causes, "the upstream redirects to a host ENTRAPROXY_REDIRECT_HOSTS does not allow")
		host := redirectHost
		if host == "" {
			host = "HOST"
		}
		c.Fix = append(c.Fix, fmt.Sprintf("add %s to ENTRAPROXY_REDIRECT_HOSTS if it is your resource's Azure host (such as eastus.tts.speech.microsoft.com): the proxy sends the token there", host))
		if redirectHost != "" {
			d.recommend("ENTRAPROXY_REDIRECT_HOSTS", strings.Join(append(append([]string(nil), d.cfg.RedirectHosts...), redirectHost), ","), "check 5: the upstream redirects to "+redirectHost)
		}
	}
	if role {
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
		scope := d.cfg.ResourceID
		if scope == "" {
			scope = "RESOURCE_ID"
		}
		causes = append(causes, fmt.Sprintf("principal %s lacks the %q role on the resource", oid, roleName))
		fix := fmt.Sprintf("grant the role: az role assignment create --role %q --assignee-object-id %s%s --scope %s", roleName, oid, ptype, scope)
		if scope == "RESOURCE_ID" {
			fix += " (RESOURCE_ID: `az cognitiveservices account show -n NAME -g GROUP --query id -o tsv`)"
		}
		c.Fix = append(c.Fix, fix, "role assignments take a few minutes to apply; run doctor again after that")
	}
	if network {
		causes = append(causes, "the resource's network rules refuse this machine")
		c.Fix = append(c.Fix, "allow this machine's outbound IP address or virtual network under the resource's Networking settings, or reach it through a private endpoint")
	}
	if notFound {
		if d.service == ServiceOpenAI {
			causes = append(causes, "the upstream does not serve Azure OpenAI")
			c.Fix = append(c.Fix, "set ENTRAPROXY_UPSTREAM to the endpoint of the Azure OpenAI resource (https://NAME.openai.azure.com) or of the AI Services resource that hosts the deployments (https://NAME.cognitiveservices.azure.com)")
		} else {
			causes = append(causes, "the upstream does not serve Speech at its custom-domain paths")
			c.Fix = append(c.Fix, "set ENTRAPROXY_UPSTREAM to the custom domain of the Speech (or AI Services) resource; if this endpoint is for Azure OpenAI, run `entraproxy doctor --service openai`")
		}
	}
	if unauthorized {
		causes = append(causes, "Azure refused the token in every form (401)")
		switch {
		case d.tokenProblem != "":
			c.Fix = append(c.Fix, "fix the token first (check 3): "+d.tokenProblem)
		default:
			if d.service == ServiceSpeech && d.cfg.ResourceID == "" {
				c.Fix = append(c.Fix, "set ENTRAPROXY_RESOURCE_ID to the Speech resource's ARM id (`az cognitiveservices account show -n NAME -g GROUP --query id -o tsv`), so that the aad form can be tried")
			}
			if d.cfg.ResourceID != "" && d.service == ServiceSpeech {
				c.Fix = append(c.Fix, "check that ENTRAPROXY_RESOURCE_ID is the id of this very resource: the aad form carries it")
			}
			tenant := "TENANT"
			if d.claims != nil && d.claims.Tid != "" {
				tenant = d.claims.Tid
			}
			c.Fix = append(c.Fix, fmt.Sprintf("the token is from tenant %s: if the resource is in another tenant, sign in there (AZURE_TENANT_ID, or `az login --tenant` with the resource's tenant)", tenant))
			c.Fix = append(c.Fix, "make sure the resource allows Entra ID auth: ENTRAPROXY_UPSTREAM must be its custom domain (check 4)")
		}
	}
	if unreachable {
		causes = append(causes, "the proxy could not reach the upstream")
		c.Fix = append(c.Fix, "see check 4; a probe that timed out may mean the upstream is slow: raise ENTRAPROXY_UPSTREAM_TIMEOUT only if Azure is known to be slow here")
	}
	if other {
		causes = append(causes, "the upstream answered something unexpected")
		c.Fix = append(c.Fix, "see the probes' answers above; a 5xx is Azure's side: retry later")
	}
	if len(causes) == 0 {
		return "no probe got through"
	}
	return strings.Join(causes, "; ")
}
