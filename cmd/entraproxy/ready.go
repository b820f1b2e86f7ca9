package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/entraproxy/entraproxy/config"
	"github.com/entraproxy/entraproxy/tokens"
)

// readiness is what /readyz reports: ready (nil) only while source holds a
// valid token and the proxy is not draining; otherwise the reason, for the
// orchestrator and for whoever reads its events.
func readiness(source *tokens.Source, draining *atomic.Bool) func() error {
	return func() error {
		if draining.Load() {
			return errors.New("draining: shutting down")
		}
		st := source.State()
		switch {
		case st.Valid:
			return nil
		case st.LastError != nil:
			return fmt.Errorf("token_unavailable: %v", st.LastError)
		case !st.ExpiresOn.IsZero():
			// The last call succeeded, but its token is too close to expiry
			// to hand out and the refresh is still running (a slow or stuck
			// credential).
			return fmt.Errorf("token_unavailable: the token expires at %s and its refresh has not finished", st.ExpiresOn.UTC().Format(time.RFC3339))
		default:
			return errors.New("starting: no token yet")
		}
	}
}

// readyHint is the ready line's advice: the endpoints an SDK on this
// machine would use, and which key it needs. addr is where the listener
// listens (ln.Addr); leaf is the certificate served, nil without TLS.
//
//   - A listener on all interfaces (0.0.0.0, [::]) is no address a client
//     can dial: the hint names 127.0.0.1 (Go's wildcard listeners take IPv4
//     too) and says that other machines use this host's address.
//   - With TLS, a client checks the certificate's names: when the address
//     is none of them, the hint names the certificate's first DNS name.
//   - In gateway mode the SDK's key setting carries the user's
//     ENTRAPROXY_INBOUND_KEYS key (never written here); otherwise any dummy
//     value, which the proxy removes.
func readyHint(cfg *config.Config, addr string, leaf *x509.Certificate) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, ""
	}
	allInterfaces := false
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host, allInterfaces = "127.0.0.1", true
	}
	if leaf != nil && leaf.VerifyHostname(host) != nil && len(leaf.DNSNames) > 0 {
		host, allInterfaces = leaf.DNSNames[0], false
	}
	endpoint := net.JoinHostPort(host, port)
	ws, http := "ws://", "http://"
	if cfg.TLS() {
		ws, http = "wss://", "https://"
	}
	hint := "point the SDK at the proxy: Speech SpeechConfig(host=\"" + ws + endpoint + "\"), OpenAI azure_endpoint " + http + endpoint
	if len(cfg.InboundKeys) > 0 {
		hint += "; as the key, your ENTRAPROXY_INBOUND_KEYS key"
	} else {
		hint += "; as the key, any dummy value (the proxy removes it)"
	}
	if allInterfaces {
		hint += "; from other machines, this host's address instead of 127.0.0.1"
	}
	return hint
}
