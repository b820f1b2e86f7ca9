package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// socks5Server is the smallest SOCKS5 proxy (RFC 1928: no authentication,
// CONNECT only) a test needs, recording the targets it was asked for.
type socks5Server struct {
	ln      net.Listener
	mu      sync.Mutex
	targets []string
	wg      sync.WaitGroup
}

func newSOCKS5Server(t *testing.T) *socks5Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socks5Server{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *socks5Server) serve(c net.Conn) {
	defer c.Close()
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 5 {
		return
	}
	if _, err := io.CopyN(io.Discard, c, int64(hdr[1])); err != nil { // offered methods
		return
	}
	c.Write([]byte{5, 0}) // no authentication
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1:
		ip := make([]byte, 4)
		io.ReadFull(c, ip)
		host = net.IP(ip).String()
	case 3:
		var n [1]byte
		io.ReadFull(c, n[:])
		name := make([]byte, n[0])
		io.ReadFull(c, name)
		host = string(name)
	default:
		return
	}
	var port [2]byte
	io.ReadFull(c, port[:])
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
	s.mu.Lock()
	s.targets = append(s.targets, target)
	s.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.Close(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

// HTTPS_PROXY=socks5://... carries WebSocket traffic as it carries HTTP
// (http.Transport supports socks5 too): the README says it does.
func TestWebSocketThroughSOCKS5Proxy(t *testing.T) {
	acceptor := newWSAcceptor(t)
	up := startTestUpstream(t, acceptor, true)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	socks := newSOCKS5Server(t)
	env := newWSFixture(t, up, func(o *Options) {
		o.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		o.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("socks5://" + socks.ln.Addr().String()) }
	})
	client := env.dial(t, wsSpeechPath, nil)
	upstream := acceptor.next(t)
	wsRoundTrip(t, client, upstream, websocket.BinaryMessage, wsUSPAudio(3200), "client to upstream")
	socks.mu.Lock()
	targets := socks.targets
	socks.mu.Unlock()
	if len(targets) != 1 || targets[0] != up.host {
		t.Errorf("SOCKS5 targets = %q, want [%q]", targets, up.host)
	}
}

// A proxy scheme neither transport speaks is an error that says so.
func TestWebSocketUnsupportedProxyScheme(t *testing.T) {
	up := startTestUpstream(t, newWSAcceptor(t), true)
	env := newWSFixture(t, up, func(o *Options) {
		o.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("ftp://127.0.0.1:1") }
	})
	resp, body := env.rawUpgrade(t, http.MethodGet, wsSpeechPath, nil)
	wsWantError(t, resp, body, http.StatusBadGateway, "upstream_unreachable")
}
