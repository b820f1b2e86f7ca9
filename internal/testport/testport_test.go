package testport

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// A held port refuses connections, takes a listener, refuses again once the
// listener closes, and takes one again.
func TestHeldPortRefusesUntilListened(t *testing.T) {
	p := Reserve(t)
	wantRefused := func(when string) {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err == nil {
			c.Close()
			t.Fatalf("%s: dial %s succeeded, want connection refused", when, p.Addr())
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%s: dial %s = %v, want connection refused", when, p.Addr(), err)
		}
	}
	wantRefused("reserved")
	for i := range 2 {
		ln := p.Listen(t)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatalf("listening (%d): dial: %v", i, err)
		}
		c.Close()
		ln.Close()
		wantRefused("listener closed")
	}
}

// No listener on 127.0.0.1:0 is given a held port, however many are opened.
func TestHeldPortNotHandedOut(t *testing.T) {
	p := Reserve(t)
	for range 2000 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		ln.Close()
		if got == p.Addr() {
			t.Fatalf("a listener on 127.0.0.1:0 was given the held port %s", got)
		}
	}
}
