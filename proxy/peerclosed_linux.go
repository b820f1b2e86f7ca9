package proxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpEstablished is TCP_ESTABLISHED of Linux's include/net/tcp_states.h.
const tcpEstablished = 1

// peerClosed reports whether the upstream has closed conn: its TCP state has
// left ESTABLISHED (CLOSE_WAIT after the upstream's FIN, CLOSE after a
// reset). It asks the kernel (TCP_INFO), which knows at once, rather than
// http.Transport's reader goroutine, which learns it when it next runs.
func peerClosed(conn *upstreamConn) bool {
	tc, ok := conn.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	var state uint8 = tcpEstablished
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = info.State
		}
	})
	return state != tcpEstablished
}
