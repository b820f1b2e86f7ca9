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
	"slices"
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
		p.Verdict, p.cause, p.rule = Fail, causeUnreachable, "no answer"
		p.Detail = "the probe failed before an answer: " + err.Error()
		return p
	}
	var message string
	p.Code, message, p.Target = azureError(body)
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

// azureError reads Azure's error envelope {"error":{"code","message","target"}}
// (also the flat {"code","message"}), or the first line of a text body.
// The proxy's own errors carry their target there (proxy.CodeRedirectNotAllowed).
func azureError(body []byte) (code, message, target string) {
	var env struct {
		Error *struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
			Target  string `json:"target"`
		} `json:"error"`
		Code    any    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		switch {
		case env.Error != nil:
			return codeString(env.Error.Code), truncate(firstLine(env.Error.Message), maxLine), truncate(firstLine(env.Error.Target), maxLine)
		case env.Message != "":
			return codeString(env.Code), truncate(firstLine(env.Message), maxLine), ""
		}
		return "", "", ""
	}
	text := firstLine(string(body))
	if strings.HasPrefix(text, "<") {
		return "", "", "" // an HTML page says nothing useful in one line
	}
	return "", truncate(text, maxLine), ""
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

// works reports whether an app's request in p's form would get through.
func works(p Probe) bool { return p.Verdict == Pass || p.Verdict == Warn }

// formResults is what the probes say of each Authorization form.
type formResults struct {
	// bearer and aad: every probe got through in that form (aad is false
	// when it was not probed).
	bearer, aad bool
	// auto: every request got through in one form or the other, as auto
	// would after a 401.
	auto bool
	// throttled: some answer was a 429.
	throttled bool
}

// resultsOf reads probes, n per form in forms' order.
func resultsOf(probes []Probe, forms []proxy.AuthFormat, n int) formResults {
	r := formResults{auto: true}
	for j := range n {
		some := false
		for i := range forms {
			some = some || works(probes[i*n+j])
		}
		r.auto = r.auto && some
	}
	for i, f := range forms {
		all := !slices.ContainsFunc(probes[i*n:(i+1)*n], func(p Probe) bool { return !works(p) })
		switch f {
		case proxy.FormatBearer:
			r.bearer = all
		case proxy.FormatAAD:
			r.aad = all
		}
	}
	for _, p := range probes {
		r.throttled = r.throttled || p.Verdict == Warn
	}
	return r
}

// judgeAuth turns the probes into check 5's verdict, evidence and fixes.
func (d *doctor) judgeAuth(c *Check, forms []proxy.AuthFormat, specs []probeSpec) {
	for _, p := range c.Probes {
		c.Evidence = append(c.Evidence, fmt.Sprintf("%-6s %-13s %s", p.Form, p.Name, p.Detail))
	}
	if !slices.Contains(forms, proxy.FormatAAD) && d.service == ServiceSpeech {
		c.Evidence = append(c.Evidence, "aad form not probed: ENTRAPROXY_RESOURCE_ID is empty")
	}
	d.decideAuth(c, resultsOf(c.Probes, forms, len(specs)))
}

// decideAuth judges ENTRAPROXY_AUTH_FORMAT by what each form got: it works,
// it works with a caveat, another value works (the fix), or nothing does
// (diagnose says why).
func (d *doctor) decideAuth(c *Check, r formResults) {
	configured := proxy.AuthFormat(d.cfg.AuthFormat)
	ok := map[proxy.AuthFormat]bool{proxy.FormatBearer: r.bearer, proxy.FormatAAD: r.aad, proxy.FormatAuto: r.auto}[configured]
	setFormat := func(f proxy.AuthFormat, why string) {
		c.Fix = append(c.Fix, "set ENTRAPROXY_AUTH_FORMAT="+string(f))
		d.recommend("ENTRAPROXY_AUTH_FORMAT", string(f), "check 5: "+why)
	}
	c.Verdict = Fail
	switch {
	case ok && configured == proxy.FormatAuto && !r.bearer && r.aad:
		c.Verdict = Warn
		c.Summary = "only the aad form is accepted; auto gets there after a 401 on the first request"
		setFormat(proxy.FormatAAD, "only the aad form was accepted")
	case ok:
		d.passAuth(c, configured, r)
	case r.bearer && configured == proxy.FormatAAD && d.service == ServiceOpenAI:
		// Only --service openai on a host that is not Azure OpenAI's own
		// gets here: config refuses aad with an Azure OpenAI upstream.
		c.Summary = "ENTRAPROXY_AUTH_FORMAT=aad sends Speech's aad form, which Azure OpenAI does not accept (not probed); the bearer form is accepted"
		setFormat(proxy.FormatBearer, "Azure OpenAI needs the bearer form")
	case r.bearer:
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused; the bearer form is accepted", configured)
		setFormat(proxy.FormatBearer, "only the bearer form was accepted")
	case r.aad:
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused; the aad form is accepted", configured)
		setFormat(proxy.FormatAAD, "only the aad form was accepted")
	case r.auto:
		c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s is refused for some requests; auto, which tries both forms, works", configured)
		setFormat(proxy.FormatAuto, "requests need different forms")
	default:
		c.Summary = d.diagnose(c)
	}
}

// passAuth is the verdict when the configured form works: a pass, or a
// warning when the resource throttled.
func (d *doctor) passAuth(c *Check, configured proxy.AuthFormat, r formResults) {
	c.Verdict = Pass
	c.Summary = fmt.Sprintf("ENTRAPROXY_AUTH_FORMAT=%s works for every probe", configured)
	if configured == proxy.FormatAuto && !r.bearer {
		c.Summary = "auto works: some requests need the aad form, others bearer"
	}
	if r.throttled {
		c.Verdict = Warn
		c.Summary += ", but the resource throttled (429)"
		c.Fix = append(c.Fix, "the credential works; the resource's rate limit was hit: retry later, or raise the deployment's or resource's quota")
	}
}
