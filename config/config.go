// Package config owns entraproxy's settings: their names, defaults, meaning,
// loading from the environment and validation.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/entraproxy/entraproxy/internal/hosts"
	"github.com/entraproxy/entraproxy/tlscert"
	"github.com/entraproxy/entraproxy/tokens"
)

// Config is every ENTRAPROXY_* setting. The struct tags are the single source
// of the variable names, defaults and help text: Load reads them through
// caarlos0/env, and Settings (used by -h and the README table) reflects them.
// The one default a tag cannot hold, Azure's host names for
// ENTRAPROXY_REDIRECT_HOSTS, comes from internal/hosts (derivedDefaults).
type Config struct {
	Upstream             string        `env:"ENTRAPROXY_UPSTREAM" help:"scheme://host[:port] of the Azure resource, e.g. https://NAME.cognitiveservices.azure.com; no path, query or user info. https required, except http to a loopback host (local testing)" default:"(required)"`
	Listen               string        `env:"ENTRAPROXY_LISTEN" envDefault:"127.0.0.1:8080" help:"host:port where apps connect"`
	AdminListen          string        `env:"ENTRAPROXY_ADMIN_LISTEN" envDefault:"127.0.0.1:9090" help:"host:port for /healthz, /readyz, /metrics; off disables"`
	Credential           string        `env:"ENTRAPROXY_CREDENTIAL" envDefault:"default" help:"default (azidentity DefaultAzureCredential), azure-cli, azure-developer-cli, managed-identity, workload-identity, environment (client secret / certificate from AZURE_* variables)"`
	Scope                string        `env:"ENTRAPROXY_SCOPE" envDefault:"https://cognitiveservices.azure.com/.default" help:"token scope"`
	AuthFormat           string        `env:"ENTRAPROXY_AUTH_FORMAT" envDefault:"auto" help:"bearer: Authorization: Bearer <token>; aad: Bearer aad#<resource id>#<token> (Speech only: refused with an Azure OpenAI upstream); auto: bearer first, on an upstream 401 retry once with a fresh token and, where a resource id is set, the aad form, remembered per upstream host"`
	ResourceID           string        `env:"ENTRAPROXY_RESOURCE_ID" help:"ARM id /subscriptions/SUBSCRIPTION-UUID/resourceGroups/G/providers/Microsoft.CognitiveServices/accounts/A (az cognitiveservices account show --query id); required for aad"`
	SpeechPaths          bool          `env:"ENTRAPROXY_SPEECH_PATHS" envDefault:"true" help:"rewrite regional / container style Speech paths to the custom-domain form (/cognitiveservices/websocket/v1 -> /tts/cognitiveservices/websocket/v1 ...)"`
	RedirectHosts        []string      `env:"ENTRAPROXY_REDIRECT_HOSTS" help:"comma-separated hosts an upstream redirect may lead to; *.domain matches one or more labels before a domain of at least two labels, on any port; exact hosts and host:port allowed; none: never follow redirects"`
	InboundKeys          []string      `env:"ENTRAPROXY_INBOUND_KEYS" help:"comma-separated secrets; when set, every request must present one (Ocp-Apim-Subscription-Key, api-key, Authorization: Bearer, or the same in the query; on a WebSocket also the subprotocol openai-insecure-api-key.<key>)"`
	AllowUnauthenticated bool          `env:"ENTRAPROXY_ALLOW_UNAUTHENTICATED" envDefault:"false" help:"must be true to listen on a non-loopback address without inbound keys"`
	TLSCertFile          string        `env:"ENTRAPROXY_TLS_CERT_FILE" help:"PEM certificate (leaf first, then intermediates): serve HTTPS and WSS on ENTRAPROXY_LISTEN; needs ENTRAPROXY_TLS_KEY_FILE. Both files are read again when they change (a renewal), without dropping connections"`
	TLSKeyFile           string        `env:"ENTRAPROXY_TLS_KEY_FILE" help:"PEM private key of ENTRAPROXY_TLS_CERT_FILE"`
	AllowedOrigins       []string      `env:"ENTRAPROXY_ALLOWED_ORIGINS" help:"comma-separated browser origins allowed to call the proxy, each exactly as a browser sends it: http or https, a host without wildcards, an optional port (http://localhost:3000,https://app.example.com); requests with any other Origin, and cross-site browser requests without one (Sec-Fetch-Site), get 403"`
	AllowedHosts         []string      `env:"ENTRAPROXY_ALLOWED_HOSTS" help:"comma-separated Host header values accepted (DNS rebinding protection): host, host:port or *.domain; any other Host gets 403. Empty: on a loopback listener localhost, 127.0.0.1, [::1] and the listener's own address, any port; on other listeners any Host"`
	UpstreamTimeout      time.Duration `env:"ENTRAPROXY_UPSTREAM_TIMEOUT" envDefault:"30s" help:"connect + TLS (HTTP), or the whole handshake (WebSocket)"`
	ResponseTimeout      time.Duration `env:"ENTRAPROXY_RESPONSE_TIMEOUT" envDefault:"10m" help:"after an HTTP request is sent, how long to wait for the answer's headers; 0 = no limit. Non-streaming completions of reasoning models take minutes; the OpenAI SDKs wait 10 minutes"`
	RewriteBodyURLs      bool          `env:"ENTRAPROXY_REWRITE_BODY_URLS" envDefault:"true" help:"in JSON answers, links to the upstream (or to a host it redirected to: a string value that is, whole, such a URL) are pointed at the proxy, as Location already is: batch transcription self, links, nextLink; text that mentions a URL is never changed ... false passes bodies unchanged"`
	DrainDelay           time.Duration `env:"ENTRAPROXY_DRAIN_DELAY" envDefault:"0s" help:"after SIGTERM, keep serving this long while /readyz says 503"`
	ShutdownTimeout      time.Duration `env:"ENTRAPROXY_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"then wait at most this long for in-flight work"`
	LogLevel             string        `env:"ENTRAPROXY_LOG_LEVEL" envDefault:"info" help:"debug, info, warn, error"`
	LogFormat            string        `env:"ENTRAPROXY_LOG_FORMAT" envDefault:"auto" help:"auto (colour text on a terminal, JSON otherwise), text, json"`
}

// Setting describes one environment variable for -h and the README.
type Setting struct {
	Var     string
	Default string
	Help    string
}

// Settings lists every variable Config reads, in declaration order.
func Settings() []Setting {
	t := reflect.TypeFor[Config]()
	out := make([]Setting, 0, t.NumField())
	derived := derivedDefaults()
	for f := range t.Fields() {
		def, ok := f.Tag.Lookup("envDefault")
		if !ok {
			def = f.Tag.Get("default")
		}
		if d, ok := derived[envVar(f)]; ok {
			def = d
		}
		out = append(out, Setting{Var: envVar(f), Default: def, Help: f.Tag.Get("help")})
	}
	return out
}

// derivedDefaults are the defaults, by variable, that live with the
// knowledge they come from rather than in a struct tag.
func derivedDefaults() map[string]string {
	return map[string]string{"ENTRAPROXY_REDIRECT_HOSTS": strings.Join(hosts.DefaultRedirectHosts(), ",")}
}

func envVar(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// Error is one bad setting. Its message names the variable, quotes the value
// (unless secret) and says what would be accepted.
type Error struct {
	Var string
	// Value is the value as the user wrote it, with any secret part
	// replaced (a URL's user info, query values and fragment: redactURL).
	Value string
	// Secret hides Value from the message (inbound keys).
	Secret  bool
	Problem string
}

func (e *Error) Error() string {
	if e.Secret {
		return fmt.Sprintf("%s: %s", e.Var, e.Problem)
	}
	return fmt.Sprintf("%s %q: %s", e.Var, e.Value, e.Problem)
}

// Load reads every setting through getenv and validates the result. The error,
// if any, joins one *Error per bad variable, so a user fixes everything in one go.
// A bad value with spaces around it says so: a value copied with a space, or
// a line ending in \r, looks right when printed.
//
// List entries are trimmed of spaces ("k1, k2" is the keys k1 and k2: net/http
// trims header values, so a key with a leading space could never match), and
// allowed origins are put in the form browsers send them.
func Load(getenv func(string) string) (*Config, error) {
	return load(getenv, nil)
}

// LoadWithTypos is Load plus the check of environ's names (NAME=value
// entries, as os.Environ returns them) for settings mistyped (FindTypos). A
// problem with a setting that is unset while a look-alike is set names the
// look-alike: ENTRAPROXY_UPSTREAM "": required; ENTRAPROXY_UPSTREM is set:
// did you mean ENTRAPROXY_UPSTREAM? Every other typo follows the problems
// in the error, one line each (Typo.String, which never quotes a value):
// a mistyped name is often why the settings are invalid. The typos come
// back too, also when the settings are valid, for a warning.
func LoadWithTypos(getenv func(string) string, environ []string) (*Config, []Typo, error) {
	typos := FindTypos(environ)
	c, err := load(getenv, typos)
	return c, typos, err
}

func load(getenv func(string) string, typos []Typo) (*Config, error) {
	environ := make(map[string]string)
	for _, s := range Settings() {
		if v := getenv(s.Var); v != "" {
			environ[s.Var] = v
		}
	}
	c, problems, err := parse(environ)
	if err != nil {
		return nil, err
	}
	c.trimLists()
	// A variable that did not parse is reported once, not again for the
	// zero value it left behind.
	failed := make(map[string]bool)
	for _, p := range problems {
		failed[p.Var] = true
	}
	for _, p := range c.problems(environ) {
		if !failed[p.Var] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		named := make(map[string]bool) // typos a problem names
		for i, p := range problems {
			explain(p, environ, typos, named)
			errs[i] = p
		}
		for _, t := range typos {
			switch _, set := environ[t.Setting]; {
			case named[t.Var]:
			case t.Setting != "" && set:
				errs = append(errs, fmt.Errorf("%s is not an entraproxy setting; %s is set as well, and only it is read: remove %s", t.Var, t.Setting, t.Var))
			default:
				errs = append(errs, errors.New(t.String()))
			}
		}
		return nil, errors.Join(errs...)
	}
	for i, o := range c.AllowedOrigins {
		c.AllowedOrigins[i] = normalizeOrigin(o)
	}
	return c, nil
}

// parse reads environ (the variables set, by name) into a Config, unset
// variables at their defaults. problems are the values that did not parse,
// one per variable.
func parse(environ map[string]string) (c *Config, problems []*Error, err error) {
	withDefaults := maps.Clone(environ)
	for v, d := range derivedDefaults() {
		if _, set := withDefaults[v]; !set {
			withDefaults[v] = d
		}
	}
	c = new(Config)
	err = env.ParseWithOptions(c, env.Options{Environment: withDefaults})
	var agg env.AggregateError
	if err != nil && !errors.As(err, &agg) {
		return nil, nil, fmt.Errorf("load settings: %w", err)
	}
	for _, e := range agg.Errors {
		p, err := describeParseError(e, environ)
		if err != nil {
			return nil, nil, fmt.Errorf("load settings: %w", err)
		}
		problems = append(problems, p)
	}
	return c, problems, nil
}

// trimLists trims the entries of list settings of spaces ("k1, k2" is the
// keys k1 and k2: net/http trims header values, so a key with a leading
// space could never match), and makes ENTRAPROXY_REDIRECT_HOSTS=none the
// empty list. An empty variable gets the default list, so "none" is the way
// to say "never follow redirects".
func (c *Config) trimLists() {
	for _, list := range []*[]string{&c.RedirectHosts, &c.InboundKeys, &c.AllowedOrigins, &c.AllowedHosts} {
		for i, v := range *list {
			(*list)[i] = strings.TrimSpace(v)
		}
	}
	if len(c.RedirectHosts) == 1 && strings.EqualFold(c.RedirectHosts[0], redirectNone) {
		c.RedirectHosts = []string{}
	}
}

// explain adds to e what the user may not see: a carriage return at the
// end of the value or spaces around it, and a look-alike variable set
// instead of a setting e is about (recorded in named, by the look-alike's
// name).
func explain(e *Error, environ map[string]string, typos []Typo, named map[string]bool) {
	if v, ok := environ[e.Var]; ok {
		e.Problem = whitespaceFix(v) + e.Problem
	}
	for _, t := range typos {
		if _, set := environ[t.Setting]; t.Setting == "" || set {
			continue
		}
		if e.Var == t.Setting || strings.Contains(e.Problem, t.Setting) {
			e.Problem += "; " + t.Var + " is set: did you mean " + t.Setting + "?"
			named[t.Var] = true
		}
	}
}

// whitespaceFix is the start of a problem's text for a value with
// invisible characters around it, or "" for one without. A carriage return
// at the end is named for what it usually is: a line of an env file or a
// script saved with Windows line endings (CRLF), whose CR the shell or
// Docker's --env-file keeps in the value.
func whitespaceFix(v string) string {
	trimmed := strings.TrimSpace(v)
	if trimmed == v {
		return ""
	}
	if !strings.HasSuffix(v, "\r") {
		return "remove the spaces around the value; "
	}
	const cr = "remove the carriage return at the end (a file saved with Windows line endings?)"
	if strings.TrimSpace(strings.TrimRight(v, "\r")) == strings.TrimRight(v, "\r") {
		return cr + "; "
	}
	return cr + " and the spaces around the value; "
}

// redirectNone is the ENTRAPROXY_REDIRECT_HOSTS value that turns redirects off.
const redirectNone = "none"

// describeParseError turns caarlos0/env's error for one variable into the
// problem to report. The settings are durations, booleans, strings and
// lists of strings, which fail only as ParseError; any other error is
// returned as it is.
func describeParseError(err error, environ map[string]string) (*Error, error) {
	var pe env.ParseError
	if !errors.As(err, &pe) {
		return nil, err
	}
	f, _ := reflect.TypeFor[Config]().FieldByName(pe.Name)
	name := envVar(f)
	problem := "not a valid value"
	switch pe.Type {
	case reflect.TypeFor[time.Duration]():
		problem = "not a duration; use a number with a unit, e.g. 30s, 2m, 1m30s"
	case reflect.TypeFor[bool]():
		problem = "not a boolean; use true or false"
	}
	return &Error{Var: name, Value: environ[name], Problem: problem}, nil
}

// problems reports every problem of c, in the order of the settings table.
// environ holds the values as written, which the messages quote (a
// duration of "0" is shown as "0", not "0s").
func (c *Config) problems(environ map[string]string) []*Error {
	r := &report{environ: environ}
	c.upstreamProblems(r)
	c.listenerProblems(r)
	c.authProblems(r)
	c.hostListProblems(r)
	c.inboundProblems(r)
	r.errs = append(r.errs, c.tlsProblems()...)
	for _, o := range c.AllowedOrigins {
		if p := originProblem(o); p != "" {
			r.add("ENTRAPROXY_ALLOWED_ORIGINS", o, "%s", p)
		}
	}
	c.timeoutProblems(r)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		r.add("ENTRAPROXY_LOG_LEVEL", c.LogLevel, "use debug, info, warn or error")
	}
	if !slices.Contains([]string{"auto", "text", "json"}, c.LogFormat) {
		r.add("ENTRAPROXY_LOG_FORMAT", c.LogFormat, "use auto, text or json")
	}
	return r.errs
}

// report collects the problems of one Config.
type report struct {
	environ map[string]string
	errs    []*Error
}

func (r *report) add(variable, value, format string, args ...any) {
	r.errs = append(r.errs, &Error{Var: variable, Value: value, Problem: fmt.Sprintf(format, args...)})
}

// duration is a duration setting's value as written, or parsed's when it
// is unset.
func (r *report) duration(variable string, parsed time.Duration) string {
	if v, ok := r.environ[variable]; ok {
		return v
	}
	return parsed.String()
}

func (c *Config) upstreamProblems(r *report) {
	if p := upstreamProblem(c.Upstream); p != "" {
		r.add("ENTRAPROXY_UPSTREAM", redactURL(c.Upstream), "%s", p)
	}
}

func (c *Config) listenerProblems(r *report) {
	if p := listenProblem(c.Listen); p != "" {
		r.add("ENTRAPROXY_LISTEN", c.Listen, "%s", p)
	}
	if c.AdminListen == "off" {
		return
	}
	if p := listenProblem(c.AdminListen); p != "" {
		r.add("ENTRAPROXY_ADMIN_LISTEN", c.AdminListen, "%s; or off to disable the admin listener", p)
	} else if c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		r.add("ENTRAPROXY_ADMIN_LISTEN", c.AdminListen, "same address as ENTRAPROXY_LISTEN; pick another port, e.g. 127.0.0.1:9090")
	}
}

// authProblems checks how tokens are got and written: the credential, the
// scope, the form and the resource id the aad form carries.
func (c *Config) authProblems(r *report) {
	if kinds := tokens.Kinds(); !slices.Contains(kinds, c.Credential) {
		r.add("ENTRAPROXY_CREDENTIAL", c.Credential, "unknown credential; use one of %s", strings.Join(kinds, ", "))
	}
	if c.Scope == "" || strings.ContainsAny(c.Scope, " \t\r\n") {
		r.add("ENTRAPROXY_SCOPE", c.Scope, "want one scope such as https://cognitiveservices.azure.com/.default")
	}
	switch c.AuthFormat {
	case "bearer", "auto":
	case "aad":
		if c.ResourceID == "" {
			r.add("ENTRAPROXY_AUTH_FORMAT", c.AuthFormat, "the aad form needs ENTRAPROXY_RESOURCE_ID (the Speech resource's ARM id, shown under Properties in the portal or by az cognitiveservices account show --query id)")
		}
		if host := c.upstreamHost(); hosts.IsOpenAI(host) {
			r.add("ENTRAPROXY_AUTH_FORMAT", c.AuthFormat, "the aad form is Speech's, and Azure OpenAI (%s) refuses it; set ENTRAPROXY_AUTH_FORMAT=bearer (auto never sends aad to Azure OpenAI either)", host)
		}
	default:
		r.add("ENTRAPROXY_AUTH_FORMAT", c.AuthFormat, "use bearer, aad or auto")
	}
	if c.ResourceID != "" {
		if err := tokens.CheckResourceID(c.ResourceID); err != nil {
			r.add("ENTRAPROXY_RESOURCE_ID", c.ResourceID, "%v", err)
		}
	}
}

// upstreamHost is ENTRAPROXY_UPSTREAM's host name, or "" when it is not a
// valid upstream.
func (c *Config) upstreamHost() string {
	if upstreamProblem(c.Upstream) != "" {
		return ""
	}
	return c.UpstreamURL().Hostname()
}

func (c *Config) hostListProblems(r *report) {
	for _, h := range c.RedirectHosts {
		if strings.EqualFold(h, redirectNone) {
			r.add("ENTRAPROXY_REDIRECT_HOSTS", h, "none turns redirects off and must be the only entry")
		} else if p := hosts.PatternProblem(h); p != "" {
			r.add("ENTRAPROXY_REDIRECT_HOSTS", h, "%s", p)
		}
	}
	for _, h := range c.AllowedHosts {
		if p := hosts.PatternProblem(h); p != "" {
			r.add("ENTRAPROXY_ALLOWED_HOSTS", h, "%s", p)
		}
	}
}

// inboundProblems checks who may use the proxy: the inbound keys, and a
// listener others can reach without one.
func (c *Config) inboundProblems(r *report) {
	for i, k := range c.InboundKeys {
		if strings.TrimSpace(k) == "" {
			r.errs = append(r.errs, &Error{Var: "ENTRAPROXY_INBOUND_KEYS", Secret: true, Problem: fmt.Sprintf("entry %d is empty; remove the extra comma", i+1)})
		}
	}
	if listenProblem(c.Listen) == "" && !c.ListenIsLoopback() && len(c.InboundKeys) == 0 && !c.AllowUnauthenticated {
		r.add("ENTRAPROXY_LISTEN", c.Listen, "not a loopback address, so anyone who can reach it would spend this proxy's Azure identity; "+
			"set ENTRAPROXY_INBOUND_KEYS to require a key from clients, or ENTRAPROXY_ALLOW_UNAUTHENTICATED=true if the network already restricts who connects")
	}
}

func (c *Config) timeoutProblems(r *report) {
	if c.UpstreamTimeout <= 0 {
		r.add("ENTRAPROXY_UPSTREAM_TIMEOUT", r.duration("ENTRAPROXY_UPSTREAM_TIMEOUT", c.UpstreamTimeout), "must be more than 0, e.g. 30s")
	}
	if c.ResponseTimeout < 0 {
		r.add("ENTRAPROXY_RESPONSE_TIMEOUT", r.duration("ENTRAPROXY_RESPONSE_TIMEOUT", c.ResponseTimeout), "must not be negative; 0 means no limit")
	}
	if c.DrainDelay < 0 {
		r.add("ENTRAPROXY_DRAIN_DELAY", r.duration("ENTRAPROXY_DRAIN_DELAY", c.DrainDelay), "must not be negative")
	}
	if c.ShutdownTimeout <= 0 {
		r.add("ENTRAPROXY_SHUTDOWN_TIMEOUT", r.duration("ENTRAPROXY_SHUTDOWN_TIMEOUT", c.ShutdownTimeout), "must be more than 0, e.g. 30s")
	}
}

// tlsProblems checks the TLS pair: both files or neither, readable, a
// certificate and the key that belongs to it.
func (c *Config) tlsProblems() []*Error {
	const certVar, keyVar = "ENTRAPROXY_TLS_CERT_FILE", "ENTRAPROXY_TLS_KEY_FILE"
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
		return nil
	case c.TLSKeyFile == "":
		return []*Error{{Var: certVar, Value: c.TLSCertFile, Problem: "set " + keyVar + " too, to the certificate's private key"}}
	case c.TLSCertFile == "":
		return []*Error{{Var: keyVar, Value: c.TLSKeyFile, Problem: "set " + certVar + " too, to the certificate of this key"}}
	}
	_, err := tlscert.ReadPair(c.TLSCertFile, c.TLSKeyFile)
	var fe *tlscert.FileError
	if !errors.As(err, &fe) {
		return nil
	}
	if fe.Key {
		return []*Error{{Var: keyVar, Value: fe.Path, Problem: fe.Problem}}
	}
	return []*Error{{Var: certVar, Value: fe.Path, Problem: fe.Problem}}
}

// TLS reports whether the proxy serves HTTPS and WSS.
func (c *Config) TLS() bool { return c.TLSCertFile != "" }

// ListenIsLoopback reports whether ENTRAPROXY_LISTEN is a loopback address
// (hosts.IsLoopback: localhost, 127.0.0.0/8, ::1), where the proxy may run
// without inbound keys.
func (c *Config) ListenIsLoopback() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	return err == nil && hosts.IsLoopback(host)
}

// HostCheck is which Host header values ENTRAPROXY_LISTEN accepts:
// ENTRAPROXY_ALLOWED_HOSTS, or by default the loopback names on a loopback
// listener and any Host elsewhere (hosts.ForListener).
func (c *Config) HostCheck() hosts.HostCheck {
	return hosts.ForListener(c.Listen, c.AllowedHosts)
}

// AdminHostCheck is which Host header values ENTRAPROXY_ADMIN_LISTEN
// accepts: on a loopback address the loopback names and its own address,
// like the main listener's default; elsewhere any Host, so that kubelet
// probes and Prometheus scrapes, which name the pod's address, keep
// working. ENTRAPROXY_ALLOWED_HOSTS names the main listener's hosts and
// does not apply here.
func (c *Config) AdminHostCheck() hosts.HostCheck {
	return hosts.ForListener(c.AdminListen, nil)
}

// UpstreamURL is the parsed ENTRAPROXY_UPSTREAM of a validated Config.
func (c *Config) UpstreamURL() *url.URL {
	u, err := url.Parse(c.Upstream)
	if err != nil {
		panic(fmt.Sprintf("config: UpstreamURL on an unvalidated Config: %v", err))
	}
	u.Path, u.RawPath = "", ""
	return u
}

func upstreamProblem(s string) string {
	if s == "" {
		return "required; set it to your resource's endpoint, e.g. https://NAME.cognitiveservices.azure.com"
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "want https://NAME.cognitiveservices.azure.com (scheme and host)"
	}
	if p := portProblem(u); p != "" {
		return p + ", or none for " + map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	switch {
	case u.User != nil:
		return "must not contain user info; entraproxy adds the credential itself"
	case u.Path != "" && u.Path != "/":
		return fmt.Sprintf("must not have a path (%s); the client's path is forwarded as it is", u.Path)
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query"
	case u.Fragment != "":
		return "must not have a fragment"
	}
	host := hosts.Classify(u.Host)
	if host.Kind == hosts.Regional {
		return "a regional endpoint; Entra ID needs the resource's custom subdomain, " + host.Cloud.CustomDomainURL("NAME")
	}
	if u.Scheme == "http" && host.Kind != hosts.Loopback {
		return "http is allowed only to a loopback host (local testing); use https"
	}
	return ""
}

// portProblem says what is wrong with the port of u, a URL that parsed
// with a host, or returns "" when it has none or a valid one (1 to 65535).
// url.Parse checks only that a port is digits.
func portProblem(u *url.URL) string {
	if !strings.HasSuffix(u.Host, ":") && u.Port() == "" {
		return ""
	}
	if u.Port() == "" {
		return "empty port; want a number from 1 to 65535"
	}
	if n, ok := hosts.ParsePort(u.Port()); !ok || n == 0 {
		return fmt.Sprintf("bad port %s; want a number from 1 to 65535", u.Port())
	}
	return ""
}

// redactURL replaces the parts of a URL-like value that may hold a secret,
// so that an error message can quote the rest: the user info (a password,
// or a token written as the user name), every query value (a copied
// endpoint URL with ?api-key=..., a SAS ?sig=...; the names stay, so the
// user sees what was pasted) and the fragment. It works on the text, so a
// value url.Parse refuses is covered too; the user info is taken to run up
// to the last @ before the first /, which errs on the side of hiding.
func redactURL(s string) string {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		rest = s
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		start := len(s) - len(rest)
		s = s[:start] + "REDACTED" + s[start+at:]
	}
	s, _, fragment := strings.Cut(s, "#")
	s, query, hasQuery := strings.Cut(s, "?")
	if hasQuery {
		pairs := strings.Split(query, "&")
		for i, pair := range pairs {
			if name, _, ok := strings.Cut(pair, "="); ok {
				pairs[i] = name + "=REDACTED"
			} else if pair != "" {
				pairs[i] = "REDACTED"
			}
		}
		s += "?" + strings.Join(pairs, "&")
	}
	if fragment {
		s += "#REDACTED"
	}
	return s
}

func listenProblem(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "want host:port, e.g. 127.0.0.1:8080"
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "bad port; want host:port, e.g. 127.0.0.1:8080"
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return "host must be an IP address, localhost, or empty for all interfaces"
	}
	return ""
}

// originProblem says what is wrong with one ENTRAPROXY_ALLOWED_ORIGINS
// entry, or returns "" when it is an origin a browser can send
// (https://html.spec.whatwg.org/multipage/browsers.html#ascii-serialisation-of-an-origin):
// http or https, a host without wildcards, a port from 1 to 65535 or none,
// nothing else. An entry no browser sends would never match, silently.
func originProblem(o string) string {
	const want = "want an origin such as http://localhost:3000 (scheme, host and optional port, nothing else)"
	u, err := url.Parse(o)
	switch {
	case err != nil || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || u.User != nil:
		return want
	case u.Scheme != "http" && u.Scheme != "https":
		return "the scheme must be http or https, as in http://localhost:3000"
	case strings.Contains(u.Host, "*"):
		return "a browser sends one exact origin and * matches nothing; list each origin, e.g. https://app.example.com,https://admin.example.com"
	}
	return portProblem(u)
}

// normalizeOrigin writes a valid origin the way browsers send it in the
// Origin header (https://html.spec.whatwg.org/multipage/browsers.html#ascii-serialisation-of-an-origin):
// scheme and host in lower case, the port only when it is not the scheme's
// default, no trailing slash.
func normalizeOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil {
		return o // validated before; unreachable
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	return scheme + "://" + host
}
