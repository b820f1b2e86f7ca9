//go:build !unix

package testport

import "net"

// hold, where sockets cannot be bound without listening through package
// syscall, listens and closes: the port is free again, so another process
// may take it (the race this package closes on Unix).
func hold() (addr string, release func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	return addr, func() {}, nil
}
