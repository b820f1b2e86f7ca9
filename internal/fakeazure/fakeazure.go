// Package fakeazure is a strict local stand-in for the Azure endpoints entraproxy talks to, for tests and the demo.
//
// One Azure value runs two plain-HTTP listeners on 127.0.0.1:
//
//   - the custom-domain listener (URL) plays https://NAME.cognitiveservices.azure.com:
//     Speech under its custom-domain paths (/tts/..., /stt/...), Azure OpenAI
//     (/openai/...), Translator (/translator/text/v3.0/translate), Language
//     (/language/:analyze-text), the App Service style managed identity
//     endpoint (/msi/token) and the test controls under /_fake/;
//   - the regional listener (RegionalHost) plays eastus.tts.speech.microsoft.com:
//     Speech under its regional paths, reached only through the redirect mode.
//
// Every service request is checked as strictly as Azure would (and a little
// more): exactly one Authorization header carrying a token this fake issued,
// unexpired, in the configured form, and no subscription key anywhere. The
// facts behind each rule are in docs/SPEECH-SDK-WIRE.md.
package fakeazure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// AuthMode is which Authorization forms the Speech endpoints accept.
// Azure OpenAI accepts only the bearer form whatever the mode (the aad form is
// Speech's alone: docs/SPEECH-SDK-WIRE.md, "Entra ID forms and redirects").
type AuthMode string

const (
	// AuthBearer accepts only "Authorization: Bearer <jwt>".
	AuthBearer AuthMode = "bearer"
	// AuthAAD accepts only "Authorization: Bearer aad#<resource id>#<jwt>",
	// with the configured resource id.
	AuthAAD AuthMode = "aad"
	// AuthBoth accepts either form.
	AuthBoth AuthMode = "both"
)

// Defaults applied to zero Settings fields.
const (
	// DefaultResourceID is the ARM id the aad form must carry when
	// Settings.ResourceID is empty.
	DefaultResourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-fake/providers/Microsoft.CognitiveServices/accounts/fake-speech"
	// DefaultPhrase is what speech recognition "hears" when Settings.Phrase is empty.
	DefaultPhrase = "Hello from the fake Azure."
	// DefaultTokenLifetime is the lifetime of issued tokens when
	// Settings.TokenLifetime is zero; Entra access tokens live 60-90 minutes.
	DefaultTokenLifetime = 60 * time.Minute
	// DefaultSSEGap is the pause between server-sent events when Settings.SSEGap is zero.
	DefaultSSEGap = 200 * time.Millisecond
	// Audience is the only token audience the services accept: the resource of
	// the scope https://cognitiveservices.azure.com/.default.
	Audience = "https://cognitiveservices.azure.com"
)

// Settings are the knobs a test may change while the fake runs (Set, or
// POST /_fake/config). Each zero value means the default named on the field.
type Settings struct {
	// Auth is the accepted Authorization form for Speech; "" means AuthBoth.
	Auth AuthMode
	// TTSAuth, when set, replaces Auth for text to speech (WebSocket, REST,
	// voices list): a service whose recognition takes the bearer form while
	// synthesis wants the aad form answers as in the report this project
	// started from (recognition works, synthesis gets 401). "" means Auth.
	TTSAuth AuthMode
	// ResourceID is the ARM id the aad form must carry, compared exactly;
	// "" means DefaultResourceID.
	ResourceID string
	// Phrase is the DisplayText of every recognition; "" means DefaultPhrase.
	Phrase string
	// TokenLifetime is the lifetime of tokens issued from now on; 0 means
	// DefaultTokenLifetime.
	TokenLifetime time.Duration
	// Redirect makes the custom-domain TTS WebSocket upgrade answer
	// RedirectStatus to the regional listener, as the Speech service may
	// (docs/SPEECH-SDK-WIRE.md, "Redirects").
	Redirect bool
	// RedirectStatus is the status of that redirect: 301, 307 or 308, the
	// ones the native Speech SDK follows; 0 means 301.
	RedirectStatus int
	// RedirectREST makes custom-domain REST TTS answer 307 to the regional
	// listener (307 so that the SSML body is sent again).
	RedirectREST bool
	// SSEGap is the pause before each server-sent event after the first; 0
	// means DefaultSSEGap.
	SSEGap time.Duration
	// ChatDelay is how long a non-streaming chat completion thinks before
	// it answers, as reasoning models do for minutes; 0 means at once.
	ChatDelay time.Duration
}

// withDefaults returns s with every zero field replaced by its default.
func (s Settings) withDefaults() Settings {
	if s.Auth == "" {
		s.Auth = AuthBoth
	}
	if s.ResourceID == "" {
		s.ResourceID = DefaultResourceID
	}
	if s.Phrase == "" {
		s.Phrase = DefaultPhrase
	}
	if s.TokenLifetime == 0 {
		s.TokenLifetime = DefaultTokenLifetime
	}
	if s.SSEGap == 0 {
		s.SSEGap = DefaultSSEGap
	}
	if s.RedirectStatus == 0 {
		s.RedirectStatus = http.StatusMovedPermanently
	}
	return s
}

// Validate reports every invalid field of s.
func (s Settings) Validate() error {
	var errs []error
	for _, m := range []AuthMode{s.Auth, s.TTSAuth} {
		switch m {
		case "", AuthBearer, AuthAAD, AuthBoth:
		default:
			errs = append(errs, fmt.Errorf("auth %q: want bearer, aad or both", m))
		}
	}
	if s.ResourceID != "" && (!strings.HasPrefix(s.ResourceID, "/subscriptions/") || strings.Contains(s.ResourceID, "#")) {
		errs = append(errs, fmt.Errorf("resource id %q: want /subscriptions/S/resourceGroups/G/providers/Microsoft.CognitiveServices/accounts/A", s.ResourceID))
	}
	if s.TokenLifetime < 0 {
		errs = append(errs, fmt.Errorf("token lifetime %s: must not be negative", s.TokenLifetime))
	}
	if s.SSEGap < 0 {
		errs = append(errs, fmt.Errorf("sse gap %s: must not be negative", s.SSEGap))
	}
	if s.ChatDelay < 0 {
		errs = append(errs, fmt.Errorf("chat delay %s: must not be negative", s.ChatDelay))
	}
	switch s.RedirectStatus {
	case 0, http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		errs = append(errs, fmt.Errorf("redirect status %d: want 301, 302, 307 or 308", s.RedirectStatus))
	}
	return errors.Join(errs...)
}

// Options configure Start.
type Options struct {
	Settings
	// Logger receives one debug line per request and the errors of the
	// servers; nil discards.
	Logger *slog.Logger
	// TLS adds a third listener: the custom domain again, over TLS with a
	// certificate for 127.0.0.1 and localhost from a CA made for this fake
	// (CACertPEM), for clients that insist on https and wss. False: none.
	TLS bool
}

// Azure is a running fake. Its methods are safe for concurrent use.
type Azure struct {
	log      *slog.Logger
	initial  Settings
	custom   *http.Server
	regional *http.Server
	// customHost and regionalHost are the listeners' host:port, which is what
	// the Host header must say (Azure routes by host name).
	customHost     string
	regionalHost   string
	tlsHost        string // "" without Options.TLS
	caPEM          []byte
	crlDER         []byte // the CA's CRL, served at /_fake/ca.crl
	tlsServer      *http.Server
	identitySecret string
	upgrader       websocket.Upgrader

	serving sync.WaitGroup // the two Serve loops
	done    chan struct{}  // closed by Close: stops streams

	mu         sync.Mutex
	closed     bool
	handlers   sync.WaitGroup // in-flight requests, including WebSocket sessions
	conns      map[*websocket.Conn]struct{}
	settings   Settings
	tokens     map[string]tokenInfo
	tokenSeq   int
	issuedMSI  int
	issuedAZ   int
	requests   []Request
	rejections map[string]int
	streams    []*Stream
	streamDone chan time.Time
	// transcriptions are the batch transcriptions created, oldest first.
	transcriptions []transcription
}

// maxRequests bounds the request log; older entries are dropped first.
const maxRequests = 10000

// Start validates opts, listens on two 127.0.0.1 ports and serves until Close.
func Start(opts Options) (*Azure, error) {
	if err := opts.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("fakeazure options: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	customLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen custom domain: %w", err)
	}
	regionalLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		customLn.Close()
		return nil, fmt.Errorf("listen regional: %w", err)
	}
	a := &Azure{
		log:            logger,
		initial:        opts.Settings.withDefaults(),
		customHost:     customLn.Addr().String(),
		regionalHost:   regionalLn.Addr().String(),
		identitySecret: randomHex(16),
		done:           make(chan struct{}),
		conns:          map[*websocket.Conn]struct{}{},
		tokens:         map[string]tokenInfo{},
		rejections:     map[string]int{},
		streamDone:     make(chan time.Time, 64),
		upgrader: websocket.Upgrader{
			// The native Speech SDK asks for subprotocol USP (docs/SPEECH-SDK-WIRE.md,
			// "Handshake headers"), the realtime clients for "realtime";
			// gorilla echoes one only when asked.
			Subprotocols:     []string{"USP", "realtime"},
			HandshakeTimeout: 10 * time.Second,
			// Origin is the proxy's business (README, "Browser protection").
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	a.settings = a.initial
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelError)
	a.custom = &http.Server{Handler: a.guard(http.HandlerFunc(a.serveCustom)), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	a.regional = &http.Server{Handler: a.guard(http.HandlerFunc(a.serveRegional)), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	a.serving.Add(2)
	go a.serve(a.custom, customLn)
	go a.serve(a.regional, regionalLn)
	if opts.TLS {
		if err := a.startTLS(errLog); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

func (a *Azure) serve(srv *http.Server, ln net.Listener) {
	defer a.serving.Done()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("fakeazure serve", "addr", ln.Addr().String(), "err", err)
	}
}

// guard counts in-flight requests so that Close can wait for them, and turns
// requests that arrive while closing away.
func (a *Azure) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			writeAzureError(w, http.StatusServiceUnavailable, "503", "fake azure is closing")
			return
		}
		a.handlers.Add(1)
		a.mu.Unlock()
		defer a.handlers.Done()
		next.ServeHTTP(w, r)
	})
}

// Close stops both listeners, closes live WebSocket sessions with 1001 and
// streams, and waits for every handler to return. It is safe to call twice.
func (a *Azure) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	conns := make([]*websocket.Conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()

	close(a.done)
	// http.Server.Close neither closes hijacked (WebSocket) connections nor
	// waits for handlers, so both are done here.
	a.custom.Close()
	a.regional.Close()
	if a.tlsServer != nil {
		a.tlsServer.Close()
	}
	for _, c := range conns {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "fake azure closing")
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	}
	a.handlers.Wait()
	a.serving.Wait()
}

// CloseIdleConnections closes the keep-alive connections on both listeners
// that carry no request now, so that a test counting goroutines or open
// files before and after some work does not count a client's connection
// pool, whose size depends on timing.
func (a *Azure) CloseIdleConnections() {
	for _, srv := range []*http.Server{a.custom, a.regional} {
		srv.SetKeepAlivesEnabled(false) // closes the idle ones
		srv.SetKeepAlivesEnabled(true)
	}
}

// URL is the custom-domain listener's base URL, http://127.0.0.1:P: what
// ENTRAPROXY_UPSTREAM points at.
func (a *Azure) URL() string { return "http://" + a.customHost }

// TLSURL is the custom domain's TLS listener, https://localhost:P, or ""
// without Options.TLS. Its certificate is also valid for 127.0.0.1.
func (a *Azure) TLSURL() string {
	if a.tlsHost == "" {
		return ""
	}
	_, port, _ := net.SplitHostPort(a.tlsHost)
	return "https://localhost:" + port
}

// CACertPEM is the CA certificate that signed the TLS listener's
// certificate, PEM encoded; nil without Options.TLS.
func (a *Azure) CACertPEM() []byte { return a.caPEM }

// isCustomHost reports whether host names the custom domain: its plain or
// its TLS listener, the latter also as localhost (the native Speech SDK 1.45
// verifies a certificate against DNS names only, so its clients must use one).
func (a *Azure) isCustomHost(host string) bool {
	if strings.EqualFold(host, a.customHost) {
		return true
	}
	if a.tlsHost == "" {
		return false
	}
	_, port, _ := net.SplitHostPort(a.tlsHost)
	return strings.EqualFold(host, a.tlsHost) || strings.EqualFold(host, "localhost:"+port)
}

// CustomHost is the custom-domain listener's host:port, the value the
// regional listener wants in Ocp-Apim-Custom-Domain-Name.
func (a *Azure) CustomHost() string { return a.customHost }

// RegionalHost is the regional listener's host:port, where redirects lead:
// add it to ENTRAPROXY_REDIRECT_HOSTS.
func (a *Azure) RegionalHost() string { return a.regionalHost }

// IdentityEndpoint is the value for IDENTITY_ENDPOINT (App Service managed identity).
func (a *Azure) IdentityEndpoint() string { return a.URL() + "/msi/token" }

// IdentityHeader is the value for IDENTITY_HEADER: the secret the identity
// endpoint wants in X-IDENTITY-HEADER.
func (a *Azure) IdentityHeader() string { return a.identitySecret }

// Settings returns the current settings, defaults filled in.
func (a *Azure) Settings() Settings {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.settings
}

// Set replaces the settings (zero fields take their defaults). Tokens already
// issued keep their expiry; WebSocket sessions already open are not re-checked,
// as on Azure, where the token matters only at the handshake.
func (a *Azure) Set(s Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("fakeazure settings: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settings = s.withDefaults()
	return nil
}

// Reset restores the settings given to Start and forgets requests,
// rejections, streams, batch transcriptions and issue counts. Issued tokens
// stay valid, so a proxy holding one is not disturbed.
func (a *Azure) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settings = a.initial
	a.requests = nil
	a.rejections = map[string]int{}
	a.streams = nil
	a.transcriptions = nil
	a.issuedMSI, a.issuedAZ = 0, 0
drain:
	for {
		select {
		case <-a.streamDone:
		default:
			break drain
		}
	}
}

// trackConn registers a live WebSocket so that Close can end it; the returned
// func unregisters it. It reports false when the fake is closing.
func (a *Azure) trackConn(c *websocket.Conn) (untrack func(), ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, false
	}
	a.conns[c] = struct{}{}
	return func() {
		a.mu.Lock()
		delete(a.conns, c)
		a.mu.Unlock()
	}, true
}

// sleep waits d, or less when ctx ends or the fake closes; it reports whether
// the whole pause passed.
func (a *Azure) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-a.done:
		return false
	}
}
