package wsrelay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// dial connects to the upstream for ws://, bound to the request and the
// Relay's timeout rather than koding's background context.
func (a *attempt) dial(_ context.Context, network, addr string) (net.Conn, error) {
	conn, err := a.r.dialer.DialContext(a.ctx, network, addr)
	if err != nil {
		a.err = err
		return nil, err
	}
	return a.bind(conn), nil
}

// dialTLS connects for wss://, through the outbound proxy when one applies
// (dialVia), and makes the TLS handshake itself, so its error is known here:
// gorilla would hand it to koding, which only logs it and answers 503.
func (a *attempt) dialTLS(_ context.Context, network, addr string) (net.Conn, error) {
	conn, err := a.dialVia(network, addr)
	if err != nil {
		a.err = err
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := a.r.tlsConfig.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = nil // WebSocket needs HTTP/1.1
	tlsConn := tls.Client(conn, cfg)
	if err := tlsConn.HandshakeContext(a.ctx); err != nil {
		conn.Close()
		a.err = &TLSError{Addr: addr, Err: err}
		return nil, a.err
	}
	return a.bind(tlsConn), nil
}

// dialVia opens a TCP connection to addr, through the outbound proxy that
// the Relay's proxy function picks for it, as http.Transport does for HTTP
// traffic, so HTTPS_PROXY and NO_PROXY mean the same for both. gorilla's
// own Dialer.Proxy (websocket 1.5.3, client.go and proxy.go) cannot do it:
// it wraps the dial function it would use for the upstream, which for wss
// is NetDialTLSContext, so the TLS handshake meant for the upstream would
// be made with the proxy; it speaks http:// and socks5:// proxies only
// (https:// and socks5h:// fail with "proxy: unknown scheme"); and left to
// make the TLS handshake itself, gorilla keeps its error from the caller.
func (a *attempt) dialVia(network, addr string) (net.Conn, error) {
	proxyURL, err := a.r.proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: addr}})
	if err != nil {
		return nil, fmt.Errorf("choose proxy for %s: %w", addr, err)
	}
	if proxyURL == nil {
		return a.r.dialer.DialContext(a.ctx, network, addr)
	}
	switch proxyURL.Scheme {
	case "socks5", "socks5h":
		d, err := xproxy.FromURL(proxyURL, a.r.dialer)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxyURL.Redacted(), err)
		}
		conn, err := d.(xproxy.ContextDialer).DialContext(a.ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s via proxy %s: %w", addr, proxyURL.Host, err)
		}
		return conn, nil
	case "http", "https":
		return a.connectVia(proxyURL, network, addr)
	}
	return nil, fmt.Errorf("proxy %s: scheme %q is not supported; use http, https or socks5", proxyURL.Redacted(), proxyURL.Scheme)
}

// connectVia opens a tunnel to addr with CONNECT through the HTTP proxy at
// proxyURL (TLS to the proxy itself for https://, with the same roots as
// for the upstream), sending its user info as Basic Proxy-Authorization.
func (a *attempt) connectVia(proxyURL *url.URL, network, addr string) (net.Conn, error) {
	port := proxyURL.Port()
	if port == "" {
		port = "80"
		if proxyURL.Scheme == "https" {
			port = "443"
		}
	}
	proxyAddr := net.JoinHostPort(proxyURL.Hostname(), port)
	conn, err := a.r.dialer.DialContext(a.ctx, network, proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", proxyAddr, err)
	}
	if proxyURL.Scheme == "https" {
		cfg := a.r.tlsConfig.Clone()
		cfg.ServerName, cfg.NextProtos = proxyURL.Hostname(), nil
		conn = tls.Client(conn, cfg)
	}
	if d, ok := a.ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: make(http.Header)}
	if u := proxyURL.User; u != nil {
		p, _ := u.Password()
		connect.SetBasicAuth(u.Username(), p)
		connect.Header["Proxy-Authorization"] = connect.Header["Authorization"]
		delete(connect.Header, "Authorization")
	}
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		return nil, fmt.Errorf("connect via proxy %s: %w", proxyAddr, err)
	}
	if err := connect.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, connect)
	if err != nil {
		return fail(err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK:
		return fail(errors.New(resp.Status))
	case br.Buffered() > 0:
		return fail(errors.New("proxy sent data before the tunnel opened"))
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// bind ties the handshake on conn to the attempt's bound: when the client
// leaves or the timeout passes, the handshake is cut. Hijack detaches it
// once the session is up.
func (a *attempt) bind(conn net.Conn) net.Conn {
	a.upstream = &upstreamConn{Conn: conn, wrote: newCloseWatch()}
	a.unbind = context.AfterFunc(a.ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return a.upstream
}
