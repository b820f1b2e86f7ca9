package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/entraproxy/entraproxy/admin"
	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/doctor"
	"github.com/entraproxy/entraproxy/metrics"
	"github.com/entraproxy/entraproxy/proxy"
	"github.com/entraproxy/entraproxy/tlscert"
	"github.com/entraproxy/entraproxy/tokens"
)

// Exit codes (README, Exit codes): 0 clean shutdown, 1 runtime failure, 2 bad
// configuration or usage. Only main calls os.Exit.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors the user fixes by changing settings or arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "entraproxy: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}

// run is the whole program: main only adds the process (signals, exit code).
// ctx ending means "shut down gracefully". environ is the environment,
// NAME=value entries as os.Environ returns them: run reads the settings from
// it, and the typo check needs its names too, which a getenv func cannot
// list. (azidentity still reads the process environment itself; see
// tokens.CredentialOptions.)
func run(ctx context.Context, args []string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	getenv := getenvFunc(environ)
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "", "serve":
		if err := noArguments(cmd, args); err != nil {
			return err
		}
		return serve(ctx, getenv, environ, stderr)
	case "-h", "-help", "--help", "help":
		printUsage(stdout)
		return nil
	case "version", "--version":
		if err := noArguments(cmd, args); err != nil {
			return err
		}
		ver, rev := buildStamp()
		fmt.Fprintf(stdout, "entraproxy %s (commit %s, %s)\n", ver, rev, runtime.Version())
		return nil
	case "wait":
		return waitReady(ctx, args[1:], getenv, stderr)
	case "doctor":
		return runDoctor(ctx, args[1:], getenv, environ, stdout, stderr)
	default:
		printUsage(stderr)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}

// getenvFunc returns a lookup in environ that answers as os.Getenv would in
// a process with that environment: a later entry for a name wins (as in
// exec.Cmd.Env), and on Windows names match in any letter case.
func getenvFunc(environ []string) func(string) string {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			vars[envKey(name)] = value
		}
	}
	return func(name string) string { return vars[envKey(name)] }
}

func envKey(name string) string {
	if runtime.GOOS == "windows" {
		return strings.ToUpper(name)
	}
	return name
}

// noArguments refuses anything after a command that takes none: a typo
// (entraproxy serve --debug) must not start the proxy as if all were well.
func noArguments(cmd string, args []string) error {
	if len(args) > 1 {
		return usageError{fmt.Errorf("%s: unexpected arguments %q; settings are environment variables, see entraproxy -h", cmd, args[1:])}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, `entraproxy: Entra ID authentication for apps that cannot do it themselves.

Usage:
  entraproxy            serve (the default)
  entraproxy doctor     diagnose credential, token, upstream and auth forms with these
                        settings; verdicts and fixes
                          --json             the report as JSON, for scripts
                          --service NAME     auto (the default), speech or openai
                          --timeout %-9vbound of each network step and probe
  entraproxy wait       block until the instance at ENTRAPROXY_ADMIN_LISTEN is ready
                          --timeout 30s      give up after this long (exit 1)
  entraproxy version    print version, commit and Go version

doctor -h and wait -h show their flags.

Settings (environment variables):
`, doctor.DefaultProbeTimeout)
	for _, s := range config.Settings() {
		def := s.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "  %s  default: %s\n      %s\n", s.Var, def, s.Help)
	}
	fmt.Fprint(w, `
The standard Azure variables keep their meaning: AZURE_CLIENT_ID, AZURE_TENANT_ID,
AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE,
AZURE_AUTHORITY_HOST, AZURE_TOKEN_CREDENTIALS, IDENTITY_ENDPOINT, IDENTITY_HEADER,
HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE. Go's GOGC and GOMEMLIMIT, when either is set,
replace entraproxy's garbage collection policy (README: Memory and garbage collection).
`)
}

// loadConfig reads the settings through getenv and checks the names in
// environ (the same environment's NAME=value entries) for mistyped settings.
func loadConfig(getenv func(string) string, environ []string) (*config.Config, []config.Typo, error) {
	cfg, typos, err := config.LoadWithTypos(getenv, environ)
	if err != nil {
		return nil, typos, usageError{fmt.Errorf("invalid settings:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	return cfg, typos, nil
}

// warnTypos logs one warning per variable that looks like a mistyped
// setting, before anything else: the setting it meant is at its default,
// unless getenv says it is set as well, when the look-alike only confuses.
func warnTypos(logger *slog.Logger, typos []config.Typo, getenv func(string) string) {
	for _, t := range typos {
		attrs := []any{"variable", t.Var}
		hint := "entraproxy -h lists the settings"
		if t.Setting != "" {
			attrs = append(attrs, "did_you_mean", t.Setting)
			if getenv(t.Setting) != "" {
				hint = t.Setting + " is set as well, and only it is read: remove " + t.Var
			}
		}
		logger.Warn("not an entraproxy setting", append(attrs, "hint", hint)...)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	f, isFile := w.(*os.File)
	tty := isFile && isatty.IsTerminal(f.Fd())
	if cfg.LogFormat == "text" || cfg.LogFormat == "auto" && tty {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: !tty || !enableColor(f)}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// serve runs the proxy until ctx ends or a server or the token source fails,
// in four steps that read top to bottom: build the graph (config -> logger
// -> credential -> token source -> proxy -> listeners), start the goroutines
// (each waited for before serve returns), serve until stopped (the ready
// line once the first token is held), then shutdown. Its error decides the
// exit code (exitCode).
func serve(ctx context.Context, getenv func(string) string, environ []string, stderr io.Writer) error {
	cfg, typos, err := loadConfig(getenv, environ)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	warnTypos(logger, typos, getenv)
	stopGCPolicy, gcPolicy := startGCPolicy(getenv)
	defer stopGCPolicy()
	if gcPolicy {
		logger.Debug(fmt.Sprintf("garbage collection: the heap may grow by at least %d MiB between collections (GOGC and GOMEMLIMIT are unset)", gcHeadroom>>20))
	}
	cred, err := tokens.NewCredential(cfg.Credential, tokens.CredentialOptions{Getenv: getenv})
	if err != nil {
		return usageError{err}
	}
	defer installGlobalLogging(logger, cred)()

	registry := prometheus.NewRegistry()
	ver, rev := buildStamp()
	m := metrics.New(registry, metrics.BuildInfo{Version: ver, Commit: rev, GoVersion: runtime.Version()})
	source := tokens.NewSource(tokens.Options{
		Credential: cred,
		Scope:      cfg.Scope,
		Logger:     logger,
		OnRefresh:  func(expiresOn time.Time, err error) { m.TokenRefreshed(refreshResult(err), expiresOn) },
	})
	p, err := proxy.New(proxy.Options{
		Upstream:        cfg.UpstreamURL(),
		Tokens:          source,
		AuthFormat:      proxy.AuthFormat(cfg.AuthFormat),
		ResourceID:      cfg.ResourceID,
		SpeechPaths:     cfg.SpeechPaths,
		RedirectHosts:   cfg.RedirectHosts,
		InboundKeys:     cfg.InboundKeys,
		AllowedOrigins:  cfg.AllowedOrigins,
		AllowedHosts:    cfg.HostCheck(),
		UpstreamTimeout: cfg.UpstreamTimeout,
		ResponseTimeout: cfg.ResponseTimeout,
		KeepBodyURLs:    !cfg.RewriteBodyURLs,
		Logger:          logger,
		Metrics:         m,
	})
	if err != nil {
		return err
	}
	warnExposure(cfg, logger)
	certs, err := loadTLS(cfg, logger, m)
	if err != nil {
		return err
	}
	ln, adminLn, err := listen(cfg)
	if err != nil {
		return err
	}
	adminAddr := "off"
	if adminLn != nil {
		adminAddr = adminLn.Addr().String()
	}
	// Where apps connect, before any token: the first one may take a while
	// (az takes a second; a broken credential never gives one), and the
	// ready line waits for it.
	logger.Info("listening", "listen", ln.Addr().String(), "admin", adminAddr, "tls", cfg.TLS(), "upstream", cfg.Upstream, "credential", cfg.Credential)

	errorLog := libraryLogger(logger)
	svc := &services{proxy: p, server: newProxyServer(p, errorLog)}
	if certs != nil {
		svc.server.TLSConfig = certs.TLSConfig()
	}
	if adminLn != nil {
		svc.admin = &http.Server{Handler: admin.Guard(cfg.AdminHostCheck(), admin.Handler(readiness(source, &svc.draining), registry)),
			ReadHeaderTimeout: 5 * time.Second, ErrorLog: errorLog}
	}

	// Start. The token source and the certificate reloader run until
	// shutdown is over (requests in flight still need tokens); a server or
	// the token source that ends before then reports why on failed.
	background, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	failed := make(chan error, 3) // one slot per sender: none blocks
	wg.Go(func() {
		if err := source.Run(background); err != nil {
			failed <- err
		}
	})
	if certs != nil {
		wg.Go(func() { certs.Run(background) })
	}
	wg.Go(func() {
		if certs != nil {
			failed <- fmt.Errorf("serve: %w", svc.server.ServeTLS(ln, "", ""))
		} else {
			failed <- fmt.Errorf("serve: %w", svc.server.Serve(ln))
		}
	})
	if svc.admin != nil {
		wg.Go(func() { failed <- fmt.Errorf("serve: %w", svc.admin.Serve(adminLn)) })
	}

	// Serve until the signal or a failure.
	runErr := serveUntilStopped(ctx, failed, source.Ready(), func() {
		var leaf *x509.Certificate
		if certs != nil {
			leaf = certs.Leaf()
		}
		logReady(logger, cfg, ln.Addr().String(), adminAddr, source.State(), leaf)
	})

	cutErr := shutdown(svc, cfg, logger, runErr == nil)
	stopBackground()
	wg.Wait()
	logger.Info("stopped")
	return errors.Join(runErr, cutErr)
}

// listen opens ENTRAPROXY_LISTEN and, unless it is off,
// ENTRAPROXY_ADMIN_LISTEN (adminLn nil). On an error none stays open.
func listen(cfg *config.Config) (ln, adminLn net.Listener, err error) {
	if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, nil, fmt.Errorf("listen on ENTRAPROXY_LISTEN %s: %w", cfg.Listen, err)
	}
	if cfg.AdminListen == "off" {
		return ln, nil, nil
	}
	if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("listen on ENTRAPROXY_ADMIN_LISTEN %s: %w", cfg.AdminListen, err)
	}
	return ln, adminLn, nil
}

// serveUntilStopped waits while the servers serve: for ctx to end (the
// signal: nil) or for an error on failed (a server or the token source
// ended: that error). The first time ready is closed it calls announce.
func serveUntilStopped(ctx context.Context, failed <-chan error, ready <-chan struct{}, announce func()) error {
	for {
		select {
		case <-ready:
			announce()
			ready = nil // never selected again
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		}
	}
}

// services is what shutdown stops.
type services struct {
	// server serves apps; proxy is its handler, whose WebSocket sessions
	// server.Shutdown does not see (hijacked connections).
	server *http.Server
	proxy  *proxy.Proxy
	// admin serves /healthz, /readyz and /metrics; nil when
	// ENTRAPROXY_ADMIN_LISTEN is off.
	admin *http.Server
	// draining makes /readyz answer 503 from the start of shutdown on.
	draining atomic.Bool
}

// shutdown stops svc in order: /readyz says 503; when drain, serving goes on
// for ENTRAPROXY_DRAIN_DELAY while load balancers notice (not after a
// failure); then the listener stops accepting while in-flight requests
// finish and WebSocket sessions close with 1001, both within
// ENTRAPROXY_SHUTDOWN_TIMEOUT; then the admin listener closes. Work cut at
// the timeout makes the shutdown unclean: its error (exit 1, not 0; README,
// Exit codes), so an orchestrator or a deploy script sees that clients lost
// requests.
func shutdown(svc *services, cfg *config.Config, logger *slog.Logger, drain bool) error {
	svc.draining.Store(true)
	logger.Info("shutting down", "drain_delay", cfg.DrainDelay, "shutdown_timeout", cfg.ShutdownTimeout)
	if drain && cfg.DrainDelay > 0 {
		time.Sleep(cfg.DrainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var cutRequests, cutSessions error
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := svc.server.Shutdown(ctx); err != nil {
			logger.Warn("in-flight requests cut at the shutdown timeout", "error", err)
			svc.server.Close()
			cutRequests = fmt.Errorf("shutdown timeout (ENTRAPROXY_SHUTDOWN_TIMEOUT %v): cut in-flight requests: %w", cfg.ShutdownTimeout, err)
		}
	})
	wg.Go(func() {
		if err := svc.proxy.Shutdown(ctx); err != nil {
			logger.Warn("WebSocket sessions cut at the shutdown timeout", "error", err)
			cutSessions = fmt.Errorf("shutdown timeout (ENTRAPROXY_SHUTDOWN_TIMEOUT %v): cut WebSocket sessions: %w", cfg.ShutdownTimeout, err)
		}
	})
	wg.Wait()
	if svc.admin != nil {
		svc.admin.Close()
	}
	return errors.Join(cutRequests, cutSessions)
}

// refreshResult is the metrics result of a token fetch that ended with err.
func refreshResult(err error) string {
	if err != nil {
		return metrics.ResultFailure
	}
	return metrics.ResultSuccess
}

// warnExposure logs, once at start, what valid settings still leave open
// on a listener off loopback, each with its fix: inbound keys that would
// cross a network in plain text, and a listener that asks no key and takes
// any Host, which a web page can reach by DNS rebinding (README, DNS
// rebinding). With keys, a rebound page lacks the key, so only the first
// applies.
func warnExposure(cfg *config.Config, logger *slog.Logger) {
	if cfg.ListenIsLoopback() {
		return
	}
	if len(cfg.InboundKeys) > 0 && !cfg.TLS() {
		logger.Warn("inbound keys travel in plain text: ENTRAPROXY_LISTEN is not a loopback address and TLS is off; "+
			"set ENTRAPROXY_TLS_CERT_FILE and ENTRAPROXY_TLS_KEY_FILE, or keep the network between the apps and the proxy private",
			"listen", cfg.Listen)
	}
	if len(cfg.InboundKeys) == 0 && len(cfg.AllowedHosts) == 0 {
		logger.Warn("any Host is accepted: ENTRAPROXY_LISTEN is not a loopback address and asks no inbound key, "+
			"so a web page that points its own name at this address (DNS rebinding) can use the proxy; "+
			"set ENTRAPROXY_ALLOWED_HOSTS to the names clients use",
			"listen", cfg.Listen)
	}
}

// loadTLS reads the listener's certificate pair when TLS is configured (nil
// otherwise).
func loadTLS(cfg *config.Config, logger *slog.Logger, m *metrics.Metrics) (*tlscert.Reloader, error) {
	if !cfg.TLS() {
		return nil, nil
	}
	certs, err := tlscert.Load(tlscert.Options{
		CertFile: cfg.TLSCertFile,
		KeyFile:  cfg.TLSKeyFile,
		Logger:   logger,
		OnReload: m.TLSCertificateReloaded,
	})
	if err != nil { // the files changed since the settings were checked
		return nil, usageError{fmt.Errorf("ENTRAPROXY_TLS_CERT_FILE / ENTRAPROXY_TLS_KEY_FILE: %w", err)}
	}
	m.TLSCertificateServed(certs.Leaf().NotAfter)
	return certs, nil
}

// installGlobalLogging routes the two process-global loggers that libraries
// write to into logger: Go's standard log (koding/websocketproxy logs there),
// at warn level but for the lines libraryLogLevel knows to be noise, and
// without its own date prefix, and azcore's log listener
// (tokens.AzureLogListener, which also learns the source
// DefaultAzureCredential used). restore puts the standard logger back as it
// was and removes the listener (azcore cannot tell which one was there; none
// is its default), so a later run in the same process, as in tests, starts
// as clean as the first.
func installGlobalLogging(logger *slog.Logger, cred azcore.TokenCredential) (restore func()) {
	out, flags, prefix := log.Writer(), log.Flags(), log.Prefix()
	log.SetOutput(libraryLogger(logger).Writer())
	log.SetFlags(0)
	log.SetPrefix("")
	azlog.SetListener(tokens.AzureLogListener(logger, cred))
	return func() {
		azlog.SetListener(nil)
		log.SetOutput(out)
		log.SetFlags(flags)
		log.SetPrefix(prefix)
	}
}

// newProxyServer is the listener apps talk to, with the limits that keep a
// hostile or broken client from holding the proxy's resources (README,
// Decisions; docs/RELIABILITY.md): request headers at most 64 KiB (431
// beyond), 10 s to send them (slowloris), idle keep-alive connections closed
// after 2 minutes. There is no overall read or write timeout: bodies stream
// (audio uploads, server-sent events) for as long as they take. Tests use
// this very function, shortening only the timeouts on the result.
func newProxyServer(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
}

// logReady says, once the first token is held, where the proxy listens and
// how to point an SDK at it (readyHint). leaf is the certificate served,
// nil without TLS.
func logReady(logger *slog.Logger, cfg *config.Config, addr, adminAddr string, st tokens.State, leaf *x509.Certificate) {
	logger.Info("ready", "listen", addr, "admin", adminAddr, "tls", cfg.TLS(), "upstream", cfg.Upstream, "credential", st.Credential,
		"token_expires_on", st.ExpiresOn, "auth_format", cfg.AuthFormat, "hint", readyHint(cfg, addr, leaf))
}

// waitReady implements `entraproxy wait`.
func waitReady(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (exit 1)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: entraproxy wait [--timeout 30s]\n\n"+
			"Blocks until the instance at ENTRAPROXY_ADMIN_LISTEN answers /readyz with 200 (exit 0).\n\n")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	readyz, err := readyzURL(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return admin.Wait(ctx, readyz)
}

// readyzURL is where `wait` asks: ENTRAPROXY_ADMIN_LISTEN, or its default
// when unset, as serve would listen.
func readyzURL(getenv func(string) string) (string, error) {
	addr := getenv("ENTRAPROXY_ADMIN_LISTEN")
	if addr == "" {
		addr = settingDefault("ENTRAPROXY_ADMIN_LISTEN")
	}
	if addr == "off" {
		return "", usageError{errors.New("wait needs the admin listener; ENTRAPROXY_ADMIN_LISTEN is off")}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError{fmt.Errorf("ENTRAPROXY_ADMIN_LISTEN %q: want host:port", addr)}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on all interfaces: ask over loopback
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// settingDefault is the default of variable, from config's struct tags.
func settingDefault(variable string) string {
	for _, s := range config.Settings() {
		if s.Var == variable {
			return s.Default
		}
	}
	panic("entraproxy: no setting " + variable)
}

// parseFlags parses a subcommand's flags. help reports that -h was asked
// for (its usage is printed; the command exits 0); a bad flag or a stray
// argument is a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageError{err}
	}
	if fs.NArg() > 0 {
		return false, usageError{fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	return false, nil
}
