// Package doctor diagnoses why an app would get a 401 through entraproxy, and says what to change.
//
// Run takes the same settings as serving and checks, in order: the
// configuration, the credential, the token's claims, the upstream's network
// path (DNS, TCP, TLS, HTTP) and finally the auth forms, probed for real
// through an in-process proxy.Proxy, so that header forms, Speech paths and
// redirect rules are exactly what serving would do. Each check ends in a
// Verdict with its evidence and, when it is not a pass, the fix. The token
// itself never appears in a Report.
package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/tokens"
)

// Verdict is the outcome of one check or probe.
type Verdict string

const (
	Pass Verdict = "pass"
	// Warn works, with a caveat worth acting on; it does not fail the run.
	Warn Verdict = "warn"
	Fail Verdict = "fail"
	// Skip means an earlier failure made the check meaningless.
	Skip Verdict = "skip"
)

// Exit codes, the same as serving's (README, Exit codes): 0 when every check passes
// (warnings included), 1 when one fails, 2 when the settings are invalid.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitSettings = 2
)

// Service is which kind of Azure endpoint the auth probes talk to.
type Service string

const (
	// ServiceAuto picks OpenAI for Azure OpenAI's hosts
	// (*.openai.azure.com, .us, .cn: hosts.IsOpenAI) and Speech otherwise.
	ServiceAuto   Service = "auto"
	ServiceSpeech Service = "speech"
	ServiceOpenAI Service = "openai"
)

// Defaults for zero Options fields.
const (
	DefaultProbeTimeout      = 3 * time.Second
	DefaultCredentialTimeout = 15 * time.Second
)

// Options configure Run. Every field may be left zero.
type Options struct {
	// Getenv reads the ENTRAPROXY_* settings and the AZURE_* variables
	// tokens.NewCredential reads. Nil means os.Getenv. azidentity itself
	// still reads the process environment for the rest.
	Getenv func(string) string

	// Environ lists the variables set, as os.Environ does (NAME=value),
	// for the check of mistyped settings (config.FindTypos): a Getenv
	// cannot list them. Nil checks none.
	Environ []string

	// NewCredential builds the credential for ENTRAPROXY_CREDENTIAL. Nil
	// means tokens.NewCredential; tests wrap it or return a fake. When the
	// result implements tokens.Named, the report names the credential that
	// produced the token.
	NewCredential func(kind string, opts tokens.CredentialOptions) (azcore.TokenCredential, error)

	// CredentialTransport is passed to NewCredential as
	// tokens.CredentialOptions.Transport; nil means azcore's default.
	CredentialTransport policy.Transporter

	// ObserveAzureLog installs tokens.AzureLogListener with azlog.SetListener
	// before the credential is used, so that for the default kind the report
	// can say which source of DefaultAzureCredential answered: azidentity's
	// log is the only place that says so. The listener is process-wide and
	// stays installed; the command sets this, tests that run doctor
	// concurrently must not.
	ObserveAzureLog bool

	// Service picks the auth probes; "" means ServiceAuto.
	Service Service

	// ProbeTimeout bounds each network step and each auth probe; zero means
	// DefaultProbeTimeout. ENTRAPROXY_UPSTREAM_TIMEOUT, when shorter, wins.
	ProbeTimeout time.Duration

	// CredentialTimeout bounds the credential call; zero means
	// DefaultCredentialTimeout (az and azd take about a second each, and
	// DefaultAzureCredential may try several sources).
	CredentialTimeout time.Duration

	// TLSConfig is used for the upstream, as proxy.Options.TLSConfig; nil
	// means TLS 1.2 or newer with the system roots (SSL_CERT_FILE honoured).
	TLSConfig *tls.Config

	// Proxy picks an outbound HTTP proxy, as proxy.Options.Proxy; nil means
	// http.ProxyFromEnvironment (HTTPS_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)

	// Now is the clock for expiry and skew checks; nil means time.Now.
	Now func() time.Time
}

// Check is the result of one of the checks, in the order Run makes them.
type Check struct {
	// Name is a stable identifier: config, credential, token, upstream, auth.
	Name string `json:"name"`
	// Title is the human name, such as "Configuration".
	Title   string  `json:"title"`
	Verdict Verdict `json:"verdict"`
	// Summary is the one-line verdict.
	Summary string `json:"summary"`
	// Evidence are the facts behind the verdict, one per line.
	Evidence []string `json:"evidence,omitempty"`
	// Fix says what to change, one step per line; empty for a pass.
	Fix []string `json:"fix,omitempty"`
	// Probes are the auth probes (the auth check only).
	Probes []Probe `json:"probes,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"-"`
	// DurationMS is Duration in milliseconds, for JSON.
	DurationMS int64 `json:"duration_ms"`
}

// Probe is one request through the proxy in one Authorization form.
type Probe struct {
	// Name says what was asked for, such as "voices list".
	Name string `json:"name"`
	// Protocol is "http" or "websocket".
	Protocol string `json:"protocol"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	// Form is the Authorization form: "bearer" or "aad".
	Form string `json:"form"`
	// Status is the HTTP status the app would see (101 for an accepted
	// WebSocket); 0 when the request itself failed.
	Status int `json:"status"`
	// Code is the error code of the answer's Azure error envelope, or the
	// proxy's own code such as redirect_not_allowed (proxy.Code*).
	Code string `json:"code,omitempty"`
	// Target is the envelope's error target: for the proxy's
	// redirect_not_allowed, the host the refused redirect led to.
	Target  string  `json:"target,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Detail translates the answer into what it means.
	Detail     string        `json:"detail"`
	Duration   time.Duration `json:"-"`
	DurationMS int64         `json:"duration_ms"`

	// rule is the name of the answer rule that matched (rules.go), and
	// cause why the probe did not get through: noCause when it did.
	rule  string
	cause cause
}

// Setting is one environment variable the summary recommends.
type Setting struct {
	Var   string `json:"var"`
	Value string `json:"value"`
	// Why says which check asked for it.
	Why string `json:"why"`
}

// Summary is the outcome of the whole run.
type Summary struct {
	Verdict Verdict `json:"verdict"`
	// Message is one sentence for humans.
	Message string `json:"message"`
	// Settings are the values to set, in check order; empty when nothing
	// needs changing or nothing could be concluded.
	Settings []Setting `json:"settings,omitempty"`
	Passed   int       `json:"passed"`
	Warned   int       `json:"warned"`
	Failed   int       `json:"failed"`
	Skipped  int       `json:"skipped"`
	// ExitCode is what `entraproxy doctor` exits with: ExitOK, ExitFailed
	// or ExitSettings.
	ExitCode int `json:"exit_code"`
}

// Report is everything Run found. It holds no token and no key.
type Report struct {
	// Upstream is ENTRAPROXY_UPSTREAM as given.
	Upstream string `json:"upstream"`
	// Service is the kind of endpoint probed: "speech" or "openai"; empty
	// when the settings were invalid.
	Service    Service       `json:"service,omitempty"`
	Checks     []Check       `json:"checks"`
	Summary    Summary       `json:"summary"`
	Duration   time.Duration `json:"-"`
	DurationMS int64         `json:"duration_ms"`
}

// Check returns the check called name, or nil.
func (r *Report) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// doctor is one run: the options with their defaults, and what each check
// learned that a later one needs.
type doctor struct {
	opts          Options
	getenv        func(string) string
	now           func() time.Time
	probeTimeout  time.Duration
	credTimeout   time.Duration
	tlsConfig     *tls.Config
	proxyFunc     func(*http.Request) (*url.URL, error)
	newCredential func(string, tokens.CredentialOptions) (azcore.TokenCredential, error)

	cfg     *config.Config
	service Service
	// token is held only to be handed to the probe proxies; it never
	// reaches the report (see scrub).
	token  azcore.AccessToken
	claims *claims
	// tokenProblem is set when the token check failed: a 401 is then
	// explained by it first.
	tokenProblem string
	settings     []Setting
	// secrets are values that must never appear in the report: the token,
	// inbound keys, secrets from the environment.
	secrets []string
}

// Run diagnoses the settings in opts.Getenv and returns the report. The
// error is for unusable Options only: every problem with the settings,
// the credential or Azure is a failed check in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	d := &doctor{opts: opts, getenv: opts.Getenv, now: opts.Now, probeTimeout: opts.ProbeTimeout,
		credTimeout: opts.CredentialTimeout, tlsConfig: opts.TLSConfig, proxyFunc: opts.Proxy, newCredential: opts.NewCredential}
	if d.getenv == nil {
		d.getenv = os.Getenv
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.probeTimeout <= 0 {
		d.probeTimeout = DefaultProbeTimeout
	}
	if d.credTimeout <= 0 {
		d.credTimeout = DefaultCredentialTimeout
	}
	if d.tlsConfig == nil {
		d.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if d.proxyFunc == nil {
		d.proxyFunc = http.ProxyFromEnvironment
	}
	if d.newCredential == nil {
		d.newCredential = tokens.NewCredential
	}
	switch opts.Service {
	case "", ServiceAuto, ServiceSpeech, ServiceOpenAI:
	default:
		return nil, fmt.Errorf("doctor: service %q: want auto, speech or openai", opts.Service)
	}
	// Secrets the environment may hold; none belongs in a report, whatever
	// an error message from below chooses to quote.
	for _, v := range []string{"AZURE_CLIENT_SECRET", "IDENTITY_HEADER", "MSI_SECRET"} {
		if s := d.getenv(v); s != "" {
			d.secrets = append(d.secrets, s)
		}
		if s := os.Getenv(v); s != "" {
			d.secrets = append(d.secrets, s)
		}
	}

	start := time.Now()
	rep := &Report{Upstream: d.getenv("ENTRAPROXY_UPSTREAM")}
	steps := []struct {
		name, title string
		run         func(context.Context, *Check)
	}{
		{"config", "Configuration", d.checkConfig},
		{"credential", "Credential", d.checkCredential},
		{"token", "Token", d.checkToken},
		{"upstream", "Upstream", d.checkUpstream},
		{"auth", "Auth", d.checkAuth},
	}
	for _, s := range steps {
		c := Check{Name: s.name, Title: s.title}
		if why := d.skipReason(rep, s.name); why != "" {
			c.Verdict, c.Summary = Skip, why
		} else {
			t := time.Now()
			s.run(ctx, &c)
			c.Duration = time.Since(t)
		}
		c.DurationMS = c.Duration.Milliseconds()
		rep.Checks = append(rep.Checks, c)
	}
	rep.Service = d.service
	rep.Summary = d.summarize(rep)
	rep.Duration = time.Since(start)
	rep.DurationMS = rep.Duration.Milliseconds()
	d.scrub(rep)
	return rep, nil
}

// skipReason says why the check called name cannot run after the checks in
// rep, or "" when it can.
func (d *doctor) skipReason(rep *Report, name string) string {
	failed := func(n string) bool {
		c := rep.Check(n)
		return c != nil && (c.Verdict == Fail || c.Verdict == Skip)
	}
	switch {
	case name == "config":
		return ""
	case failed("config"):
		return "skipped: the settings are invalid (check 1)"
	case name == "token" && failed("credential"):
		return "skipped: no token (check 2)"
	case name == "auth" && failed("credential"):
		return "skipped: no token to probe with (check 2)"
	case name == "auth" && failed("upstream"):
		return "skipped: the upstream is unreachable (check 4)"
	}
	return ""
}

// recommend adds a setting to the summary, replacing an earlier value.
func (d *doctor) recommend(variable, value, why string) {
	for i, s := range d.settings {
		if s.Var == variable {
			d.settings[i] = Setting{Var: variable, Value: value, Why: why}
			return
		}
	}
	d.settings = append(d.settings, Setting{Var: variable, Value: value, Why: why})
}

func (d *doctor) summarize(rep *Report) Summary {
	s := Summary{Settings: d.settings}
	for _, c := range rep.Checks {
		switch c.Verdict {
		case Pass:
			s.Passed++
		case Warn:
			s.Warned++
		case Fail:
			s.Failed++
		case Skip:
			s.Skipped++
		}
	}
	switch {
	case rep.Checks[0].Verdict == Fail:
		s.Verdict, s.ExitCode = Fail, ExitSettings
		s.Message = "the settings are invalid; entraproxy would not start. Fix check 1 and run doctor again."
	case s.Failed > 0:
		s.Verdict, s.ExitCode = Fail, ExitFailed
		s.Message = fmt.Sprintf("%s failed; an app would not work through entraproxy with these settings.", plural(s.Failed, "check"))
	case s.Warned > 0:
		s.Verdict, s.ExitCode = Warn, ExitOK
		s.Message = fmt.Sprintf("an app would work through entraproxy, with %s worth acting on.", plural(s.Warned, "warning"))
	default:
		s.Verdict, s.ExitCode = Pass, ExitOK
		s.Message = "every check passed; an app would work through entraproxy with these settings."
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// checkConfig is check 1: config.Load, the very validation serving does.
func (d *doctor) checkConfig(_ context.Context, c *Check) {
	cfg, typos, err := config.LoadWithTypos(d.getenv, d.opts.Environ)
	typoEvidence := func() {
		for _, t := range typos {
			c.Evidence = append(c.Evidence, t.String())
		}
	}
	if err != nil {
		defer typoEvidence()
		c.Verdict = Fail
		var problems []*config.Error
		collectConfigErrors(err, &problems)
		c.Summary = fmt.Sprintf("%s invalid; serving would refuse to start", plural(max(len(problems), 1), "setting"))
		if len(problems) == 0 {
			c.Evidence = append(c.Evidence, err.Error())
		}
		for _, p := range problems {
			c.Evidence = append(c.Evidence, p.Error())
			if p.Var == "ENTRAPROXY_UPSTREAM" {
				if fix, value := upstreamFix(p.Value, d.getenv("ENTRAPROXY_RESOURCE_ID")); fix != "" {
					c.Fix = append(c.Fix, fix)
					d.recommend("ENTRAPROXY_UPSTREAM", value, "check 1: Entra ID needs the custom-domain endpoint")
					continue
				}
			}
			c.Fix = append(c.Fix, p.Var+": "+p.Problem)
		}
		c.Fix = append(c.Fix, "`entraproxy -h` lists every setting with its default and meaning")
		return
	}
	d.cfg = cfg
	d.secrets = append(d.secrets, cfg.InboundKeys...)
	d.service = d.opts.Service
	if d.service == "" || d.service == ServiceAuto {
		d.service = serviceFor(cfg.UpstreamURL().Hostname())
	}
	c.Verdict, c.Summary = Pass, "settings are valid"
	if len(typos) > 0 {
		c.Verdict, c.Summary = Warn, fmt.Sprintf("settings are valid, but %d variables are not entraproxy settings", len(typos))
		if len(typos) == 1 {
			c.Summary = "settings are valid, but " + typos[0].Var + " is not an entraproxy setting"
		}
		typoEvidence()
		for _, t := range typos {
			switch {
			case t.Setting != "" && d.getenv(t.Setting) != "":
				c.Fix = append(c.Fix, fmt.Sprintf("remove %s: %s is set as well, and only it is read", t.Var, t.Setting))
			case t.Setting != "":
				c.Fix = append(c.Fix, fmt.Sprintf("rename %s to %s (until then %s is at its default)", t.Var, t.Setting, t.Setting))
			default:
				c.Fix = append(c.Fix, fmt.Sprintf("remove %s, or set the setting you meant (entraproxy -h lists them)", t.Var))
			}
		}
	}
	c.Evidence = append(c.Evidence,
		fmt.Sprintf("upstream %s (probed as %s)", cfg.Upstream, d.service),
		fmt.Sprintf("credential %s, scope %s", cfg.Credential, cfg.Scope),
	)
	rid := "no resource id (the aad form is off)"
	if cfg.ResourceID != "" {
		rid = "resource id " + cfg.ResourceID
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("auth format %s, %s", cfg.AuthFormat, rid))
	if len(cfg.InboundKeys) > 0 {
		c.Evidence = append(c.Evidence, fmt.Sprintf("inbound keys: %d set (values not shown)", len(cfg.InboundKeys)))
	}
}

// collectConfigErrors flattens the errors.Join tree config.Load returns.
func collectConfigErrors(err error, out *[]*config.Error) {
	var ce *config.Error
	if errors.As(err, &ce) && ce == err {
		*out = append(*out, ce)
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			collectConfigErrors(e, out)
		}
		return
	}
	if errors.As(err, &ce) {
		*out = append(*out, ce)
	}
}

// checkCredential is check 2: one GetToken, bounded, as the token source
// would make it.
func (d *doctor) checkCredential(ctx context.Context, c *Check) {
	kind := d.cfg.Credential
	cred, err := d.newCredential(kind, tokens.CredentialOptions{Getenv: d.getenv, Transport: d.opts.CredentialTransport})
	if err != nil {
		c.Verdict = Fail
		c.Summary = fmt.Sprintf("the %s credential could not be built", kind)
		ce := tokens.DescribeCredentialError("", err)
		c.Evidence = append(c.Evidence, credentialEvidence(ce)...)
		c.Fix = credentialFix(kind, ce)
		return
	}
	if d.opts.ObserveAzureLog {
		azlog.SetListener(tokens.AzureLogListener(nil, cred))
	}
	cctx, cancel := context.WithTimeout(ctx, d.credTimeout)
	defer cancel()
	start := time.Now()
	tok, err := cred.GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{d.cfg.Scope}})
	took := time.Since(start)
	name := credentialName(cred)
	if err != nil {
		c.Verdict = Fail
		if cctx.Err() != nil && ctx.Err() == nil {
			c.Summary = fmt.Sprintf("%s gave no token within %s", name, d.credTimeout)
		} else {
			c.Summary = fmt.Sprintf("%s gave no token (after %s)", name, round(took))
		}
		ce := tokens.DescribeCredentialError(name, err)
		c.Evidence = append(c.Evidence, credentialEvidence(ce)...)
		c.Fix = credentialFix(kind, ce)
		return
	}
	d.token = tok
	d.secrets = append(d.secrets, tok.Token)
	c.Verdict = Pass
	c.Summary = fmt.Sprintf("%s gave a token in %s", name, round(took))
	if kind == "default" && name == "DefaultAzureCredential" {
		c.Evidence = append(c.Evidence, "DefaultAzureCredential did not say which of its sources answered")
	} else if kind == "default" {
		c.Evidence = append(c.Evidence, "DefaultAzureCredential authenticated with "+name)
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("scope %s; the credential says the token expires %s", d.cfg.Scope, d.timeAndDistance(tok.ExpiresOn)))
}

// credentialName is the azidentity type behind the token.
func credentialName(cred azcore.TokenCredential) string {
	if n, ok := cred.(tokens.Named); ok {
		return n.CredentialName()
	}
	return fmt.Sprintf("%T", cred)
}

// timeAndDistance formats t in UTC with how far it is from now.
func (d *doctor) timeAndDistance(t time.Time) string {
	delta := t.Sub(d.now())
	when := t.UTC().Format(time.RFC3339)
	if delta >= 0 {
		return fmt.Sprintf("%s (in %s)", when, round(delta))
	}
	return fmt.Sprintf("%s (%s ago)", when, round(-delta))
}

// round keeps durations readable: whole seconds above a second.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Second)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// dialer is the one used for the network checks.
func (d *doctor) dialer() *net.Dialer {
	return &net.Dialer{Timeout: d.timeout(), KeepAlive: -1}
}

// timeout is the bound of one network step or probe.
func (d *doctor) timeout() time.Duration {
	t := d.probeTimeout
	if d.cfg != nil && d.cfg.UpstreamTimeout > 0 && d.cfg.UpstreamTimeout < t {
		t = d.cfg.UpstreamTimeout
	}
	return t
}
