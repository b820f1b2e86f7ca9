// Package testport holds loopback TCP ports for tests, so that an address
// that refuses connections keeps refusing them until the test itself listens
// there.
//
// Closing a listener frees its port: another test, another package's test
// binary or any process on the machine may be given it by the kernel before
// the test dials it, and then "connection refused" becomes a connection to a
// stranger, or "listen again on the same port" fails. A Port is a socket
// bound to 127.0.0.1 that never listens: connecting to it is refused, the
// kernel hands its port to nobody else, and Listen opens a real listener on
// it (both sockets set SO_REUSEADDR, which Linux and the BSDs allow while
// only one of them listens). When that listener closes, the port is still
// held.
package testport

import (
	"net"
	"testing"
)

// Port is a loopback TCP port held for one test. Its zero value is not
// usable; get one from Reserve.
type Port struct {
	addr string
}

// Reserve holds a free 127.0.0.1 port until the test ends. Connections to it
// are refused until Listen is called.
func Reserve(t testing.TB) *Port {
	t.Helper()
	addr, release, err := hold()
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}
	t.Cleanup(release)
	return &Port{addr: addr}
}

// Addr is the port's address, 127.0.0.1:PORT.
func (p *Port) Addr() string { return p.addr }

// Listen opens a listener on the port. Closing it refuses connections
// again; the port stays held, so Listen may be called again.
func (p *Port) Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("listen on the held port %s: %v", p.addr, err)
	}
	return ln
}
