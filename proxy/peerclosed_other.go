//go:build !linux

package proxy

// peerClosed reports false: only Linux's TCP_INFO is asked (see
// peerclosed_linux.go); elsewhere a closed pooled connection is found by
// http.Transport alone.
func peerClosed(*upstreamConn) bool { return false }
