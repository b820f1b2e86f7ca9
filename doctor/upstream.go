package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/entraproxy/entraproxy/internal/hosts"
)

// serviceFor picks the probes for a host: Azure OpenAI's own domains get
// the OpenAI probe; everything else, including the multi-service
// cognitiveservices domain, Speech's.
func serviceFor(host string) Service {
	if hosts.IsOpenAI(host) {
		return ServiceOpenAI
	}
	return ServiceSpeech
}

// customDomainFor is the custom-domain URL to suggest instead of host, in
// host's cloud, named after the account in resourceID when there is one.
func customDomainFor(host, resourceID string) string {
	name := "NAME"
	if _, acct, ok := strings.Cut(resourceID, "/accounts/"); ok && acct != "" && !strings.Contains(acct, "/") {
		name = strings.ToLower(acct)
	}
	return hosts.Classify(host).Cloud.CustomDomainURL(name)
}

// endpointCommand prints a resource's endpoint, its custom domain.
const endpointCommand = "`az cognitiveservices account show -n NAME -g GROUP --query properties.endpoint -o tsv`"

// customDomainHowTo tells how to find, or make, a resource's custom domain.
const customDomainHowTo = endpointCommand + " prints it; " +
	"a resource without one needs a custom subdomain first (`az cognitiveservices account update -n NAME -g GROUP --custom-domain NAME`, " +
	"https://learn.microsoft.com/azure/ai-services/cognitive-services-custom-subdomains)"

// upstreamFix is the fix for an ENTRAPROXY_UPSTREAM that config refused for
// being regional: the custom-domain form, and the value to set. Both are
// empty for other problems, whose config message already says it all.
func upstreamFix(value, resourceID string) (fix, suggested string) {
	u, err := url.Parse(value)
	if err != nil || hosts.Classify(u.Host).Kind != hosts.Regional {
		return "", ""
	}
	suggested = customDomainFor(u.Hostname(), resourceID)
	fix = fmt.Sprintf("set ENTRAPROXY_UPSTREAM=%s, the resource's custom domain: regional endpoints reject Entra ID tokens; %s", suggested, customDomainHowTo)
	if !strings.Contains(suggested, "NAME") {
		fix = strings.Replace(fix, "the resource's custom domain", "the custom domain of the account in ENTRAPROXY_RESOURCE_ID (usually its name; check it)", 1)
	}
	return fix, suggested
}

// checkUpstream is check 4: can this machine reach the upstream at all,
// step by step, so a network problem is not mistaken for an auth one.
func (d *doctor) checkUpstream(ctx context.Context, c *Check) {
	u := d.cfg.UpstreamURL()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	addr := net.JoinHostPort(host, port)
	// warn and hostFix are about the host name; they follow any failure's
	// own fix, which is more urgent.
	var warn, hostFix string
	switch hosts.Classify(host).Kind {
	case hosts.CustomDomain, hosts.OpenAI:
		c.Evidence = append(c.Evidence, "host "+host+" is a custom domain, as Entra ID auth needs")
	case hosts.Loopback:
		c.Evidence = append(c.Evidence, "host "+host+" is loopback (local testing)")
	case hosts.Regional:
		warn = "host " + host + " is a regional endpoint, which rejects Entra ID tokens"
		hostFix = fmt.Sprintf("set ENTRAPROXY_UPSTREAM=%s; %s", customDomainFor(host, d.cfg.ResourceID), customDomainHowTo)
	default:
		warn = "host " + host + " is not a custom domain (NAME.cognitiveservices.azure.com or NAME.openai.azure.com)"
		hostFix = "Entra ID tokens are accepted only on the resource's custom domain; keep this host only if it forwards there (a gateway, a private alias); otherwise set ENTRAPROXY_UPSTREAM=" +
			customDomainFor(host, d.cfg.ResourceID) + "; " + customDomainHowTo
	}
	defer func() {
		if hostFix != "" {
			c.Fix = append(c.Fix, hostFix)
		}
	}()

	fail := func(summary, fix string) {
		c.Verdict, c.Summary = Fail, summary
		c.Fix = append(c.Fix, fix)
	}
	viaProxy, err := d.proxyFunc(&http.Request{URL: u})
	switch {
	case err != nil:
		fail("no outbound proxy could be chosen: "+err.Error(), "check HTTPS_PROXY and NO_PROXY")
		return
	case viaProxy != nil:
		c.Evidence = append(c.Evidence, "through the outbound proxy "+viaProxy.Redacted()+" (HTTPS_PROXY): DNS, TCP and TLS to the upstream are the proxy's; checked over HTTP only")
	default:
		if !d.checkNetwork(ctx, c, u, host, addr, fail) {
			return
		}
	}
	if !d.checkHTTP(ctx, c, u, fail) {
		return
	}
	if warn != "" {
		c.Verdict, c.Summary = Warn, warn
		return
	}
	c.Verdict = Pass
	c.Summary = host + " answers"
	if u.Scheme == "http" {
		c.Summary += " over plain HTTP (local testing)"
	} else {
		c.Summary += " over HTTPS with a trusted certificate"
	}
}

// checkNetwork runs DNS, TCP and TLS; false means one failed and c says so.
func (d *doctor) checkNetwork(ctx context.Context, c *Check, u *url.URL, host, addr string, fail func(string, string)) bool {
	if !d.checkDNS(ctx, c, host, fail) {
		return false
	}
	tctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	conn, ok := d.checkTCP(tctx, c, addr, fail)
	if !ok {
		return false
	}
	defer conn.Close()
	if u.Scheme == "http" {
		c.Evidence = append(c.Evidence, "TLS: skipped, http:// to a loopback host (local testing only)")
		return true
	}
	return d.checkTLS(tctx, c, conn, host, fail)
}

// checkDNS resolves host, as the proxy's dialer will.
func (d *doctor) checkDNS(ctx context.Context, c *Check, host string, fail func(string, string)) bool {
	if ip := net.ParseIP(host); ip != nil {
		c.Evidence = append(c.Evidence, "DNS: skipped, "+host+" is an IP address")
		return true
	}
	dctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	start := time.Now()
	addrs, err := net.DefaultResolver.LookupHost(dctx, host)
	if err != nil {
		c.Evidence = append(c.Evidence, "DNS: "+err.Error())
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			fail(host+" does not resolve (no such host)",
				"check the name in ENTRAPROXY_UPSTREAM: "+endpointCommand+" prints the resource's endpoint; behind a private endpoint, this machine's DNS must resolve the privatelink zone")
		} else {
			fail("DNS lookup of "+host+" failed", "check this machine's DNS resolver, or set HTTPS_PROXY if only an outbound proxy can reach outside names")
		}
		return false
	}
	note := ""
	if ip := net.ParseIP(addrs[0]); ip != nil && ip.IsPrivate() {
		note = " (a private address: a private endpoint or a local network)"
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf("DNS: %s resolves to %s in %s%s", host, strings.Join(addrs[:min(len(addrs), 3)], ", "), round(time.Since(start)), note))
	return true
}

// checkTCP connects to addr; the caller closes the connection.
func (d *doctor) checkTCP(ctx context.Context, c *Check, addr string, fail func(string, string)) (net.Conn, bool) {
	start := time.Now()
	conn, err := d.dialer().DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Evidence = append(c.Evidence, fmt.Sprintf("TCP: connected to %s in %s", conn.RemoteAddr(), round(time.Since(start))))
		return conn, true
	}
	c.Evidence = append(c.Evidence, "TCP: "+err.Error())
	var ne net.Error
	switch {
	case connectionRefused(err):
		fail("connection refused by "+addr,
			"nothing accepts connections at "+addr+": check the port in ENTRAPROXY_UPSTREAM (Azure listens on 443) and any firewall; if this network allows only an outbound proxy, set HTTPS_PROXY")
	case errors.As(err, &ne) && ne.Timeout():
		fail("no TCP answer from "+addr+" within "+d.timeout().String(),
			"a firewall or network rule drops the traffic to "+addr+", or this network needs an outbound proxy (HTTPS_PROXY)")
	default:
		fail("cannot connect to "+addr, "check the network path to "+addr+" (routes, firewall), or set HTTPS_PROXY")
	}
	return nil, false
}

// checkTLS makes the TLS handshake on conn and says who the certificate
// is for and from.
func (d *doctor) checkTLS(ctx context.Context, c *Check, conn net.Conn, host string, fail func(string, string)) bool {
	cfg := d.tlsConfig.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	start := time.Now()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Evidence = append(c.Evidence, "TLS: "+err.Error())
		fail(tlsFailure(err, host))
		return false
	}
	st := tc.ConnectionState()
	ev := fmt.Sprintf("TLS: %s in %s", tls.VersionName(st.Version), round(time.Since(start)))
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		name := leaf.Subject.CommonName
		if name == "" && len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
		ev += fmt.Sprintf(", certificate for %s issued by %s, valid until %s", orNone(name), orNone(leaf.Issuer.CommonName), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	c.Evidence = append(c.Evidence, ev)
	return true
}

// tlsFailure is the summary and fix of a failed TLS handshake with host.
func tlsFailure(err error, host string) (summary, fix string) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		issuer := "an unknown issuer"
		if unknown.Cert != nil {
			issuer = fmt.Sprintf("%q", unknown.Cert.Issuer.String())
		}
		return "the certificate of " + host + " is not trusted (issued by " + strings.Trim(issuer, `"`) + ")",
			"the certificate is signed by " + issuer + ", which this machine does not trust: a TLS-inspecting proxy or a private CA sits in the way; " + trustFix(runtime.GOOS)
	case errors.As(err, &hostname):
		return "the certificate is not valid for " + host,
			"ENTRAPROXY_UPSTREAM must use the name the certificate is for, the resource's custom domain, not an IP address or another alias"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the certificate of " + host + " is expired or not yet valid", "check this machine's clock; if it is right, something in the way serves an expired certificate"
	}
	return "the TLS handshake with " + host + " failed", "check that ENTRAPROXY_UPSTREAM is an https endpoint, and any proxy or firewall that intercepts TLS"
}

// checkHTTP sends one unauthenticated GET /: any HTTP answer shows the
// endpoint is reachable the way the proxy will reach it (HTTPS_PROXY
// included).
func (d *doctor) checkHTTP(ctx context.Context, c *Check, u *url.URL, fail func(string, string)) bool {
	t := d.timeout()
	tr := &http.Transport{
		Proxy:                 d.proxyFunc,
		DialContext:           d.dialer().DialContext,
		TLSClientConfig:       d.tlsConfig.Clone(),
		TLSHandshakeTimeout:   t,
		ResponseHeaderTimeout: t,
		DisableKeepAlives:     true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodGet, u.Scheme+"://"+u.Host+"/", nil)
	if err != nil {
		fail("cannot build a request for "+u.Host, "check ENTRAPROXY_UPSTREAM")
		return false
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		c.Evidence = append(c.Evidence, "HTTP: GET / failed: "+err.Error())
		fail("no HTTP answer from "+u.Host, "the network path works but no HTTP answer came within "+t.String()+"; check any outbound proxy (HTTPS_PROXY) and that ENTRAPROXY_UPSTREAM names an HTTP endpoint")
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.Evidence = append(c.Evidence, fmt.Sprintf("HTTP: GET / without a token answered %s in %s (any answer shows the endpoint is reachable)", resp.Status, round(time.Since(start))))
	return true
}

// wsaeConnRefused is Windows' "connection refused" (WSAECONNREFUSED,
// https://learn.microsoft.com/windows/win32/winsock/windows-sockets-error-codes-2),
// what a refused dial wraps there. syscall.ECONNREFUSED on Windows is a value
// Go invented for portability that no dial returns, so it alone would never
// match.
const wsaeConnRefused = syscall.Errno(10061)

// connectionRefused reports whether err is a refused TCP connection, on every
// operating system: Unix errno values are small, so 10061 cannot be mistaken
// for another error there.
func connectionRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, wsaeConnRefused)
}

// trustFix says how to make a machine running goos trust a private CA. Go
// reads SSL_CERT_FILE and SSL_CERT_DIR only on Unix systems other than macOS;
// on macOS and Windows it asks the system's verifier, which trusts what the
// keychain or the Windows certificate store trusts
// (https://pkg.go.dev/crypto/x509#SystemCertPool).
func trustFix(goos string) string {
	switch goos {
	case "windows":
		return "import its CA certificate into the Windows certificate store as a trusted root (PowerShell: Import-Certificate -FilePath CA.cer -CertStoreLocation Cert:\\CurrentUser\\Root); SSL_CERT_FILE is not read on Windows"
	case "darwin":
		return "add its CA certificate to the keychain as trusted (sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain CA.pem); SSL_CERT_FILE is not read on macOS"
	}
	return "add its CA certificate with SSL_CERT_FILE (or SSL_CERT_DIR)"
}
