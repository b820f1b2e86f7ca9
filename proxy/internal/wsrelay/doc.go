// Package wsrelay relays one WebSocket session through
// github.com/koding/websocketproxy (v0.0.0-20181220232114-7ed82d81a28c) and
// corrects what koding and the gorilla/websocket 1.5.3 underneath it get
// wrong for a proxy that must answer for every byte. It knows nothing of
// tokens, Azure or policy: the caller (the proxy package) decides where to
// go, with which headers, and what to make of a refusal.
//
// What it corrects, how, and the test that pins it (tests in the proxy
// package unless named here):
//
//	koding / gorilla does                           the relay instead                                 pinned by
//	----------------------------------------------  ------------------------------------------------  -----------------------------------------------
//	dials the upstream, then lets gorilla find the  CheckUpgrade runs first, with gorilla's checks    TestWebSocketBadUpgradeRefusedBeforeDial
//	client's upgrade bad (the refusal is passed     (a 16-byte key included); the caller calls it
//	off as the upstream's answer)                   before it fetches a token
//	dials with a background context, any TLS        dial and dialTLS: bound to the client's request   TestWebSocketUpstreamHandshakeTimeout,
//	version, gorilla's proxy support (see dialVia)  and the handshake timeout, the caller's TLS       TestWebSocketTLSUpstream,
//	                                                config, HTTPS_PROXY through http, https, socks5   TestWebSocketThroughSOCKS5Proxy,
//	                                                and socks5h proxies (dialVia)                     TestWebSocketUnsupportedProxyScheme
//	answers a failed dial or a half answer with     the cause comes back as Outcome.Err: the dial     TestWebSocketUpstreamUnreachable,
//	its own text/plain 503 and logs the cause       error, *TLSError, context.DeadlineExceeded,       TestWebSocketHalfAnswerIsProxyError
//	                                                ErrNoAnswer, ErrInvalidAnswer
//	copies a refused handshake's answer to the      the attempt is koding's ResponseWriter: status,   TestWebSocketHandshakeFailurePassThrough,
//	client (3xx and 401 included), hop-by-hop       fields and 1 KiB of body come back as Outcome,    TestWebSocketRefusalHeadersPass,
//	fields too, with the upstream's Content-Length  hop-by-hop fields dropped, Content-Length         TestWebSocketHandshakeRedirect,
//	for the 1 KiB of body gorilla keeps             matching; the caller follows or retries           TestWebSocketAutoRetryLearnsAADForm
//	sends the client's Host, first Origin,          Director sends Handshake.Header as the caller      TestWebSocketHandshakeHeaders,
//	cookies and subprotocols, adds                  chose it, and the target's Host                   TestWebSocketCredentialSubprotocolRemoved
//	X-Forwarded-For/-Proto, drops the rest
//	passes only the subprotocol and the first       clientConn writes the upstream 101's end-to-end   TestWebSocket101HeadersPass
//	Set-Cookie of the upstream's 101                fields into gorilla's 101 (with101Headers)
//	reads every message whole (ReadMessage), of     clientConn withholds the client frame that takes  TestWebSocketClientMessageLimit,
//	any size                                        its message over MaxClientMessage and writes in   FuzzClientMessageLimit (here)
//	                                                a close 1009 instead
//	closes both connections at the first relay      beforeClose: the connection owed a close frame    TestWebSocketCloseCodesPassBothWays
//	error, before the frame with the peer's code    is closed once it is written, a write failed, or
//	is written (the other side sees 1006)           relayCloseGrace passed
//	sends the other side of a peer that dropped     the close koding writes after a side's drop      TestWebSocketDroppedPeer
//	1006 (not for the wire), or 1000 with a read    goes out as 1001 (ClientGoneReason,
//	error's text after a reset                      UpstreamGoneReason); Stats says 1006 by that side
//	blocks the handler until the session ends, so   Attempt runs koding on a goroutine of its own     TestWebSocketSessionLog,
//	net/http's goroutine and buffers for the        and returns once the client is hijacked;          TestWebSocketDroppedSessionsDoNotLeak,
//	hijacked connection stay for the session        Handshake.Ended reports the session's end; a      TestAttemptRecoversPanicInUpgraded,
//	                                                panic on that goroutine is recovered, logged      TestAttemptRecoversPanicInEnded (here),
//	                                                with its stack, the session cut, Ended called     TestWebSocketPanicAtSessionEndIsRecovered
//	keeps its connections to itself: no frame       clientConn and upstreamConn meter the frames as   TestWebSocketSessionLog, TestFrameMeter* (here)
//	counts, no way to end a session cleanly         they pass (Stats); GoAway writes a close 1001     TestWebSocketShutdownWaitsForFrameBoundary,
//	                                                into the client's stream at its next frame        TestWebSocketShutdownClosesLiveSessions,
//	                                                boundary; Cut closes both                         TestWebSocketShutdownTimeoutCutsSessions
//
// What it does not correct is in the README ("WebSocket: what
// koding/websocketproxy still cannot do"): its echo of a close code, pings
// answered rather than relayed, no compression, frame counts added at a
// session's end.
// koding logs through the standard logger; cmd/entraproxy routes that into
// the proxy's log.
//
// Files: relay.go is Relay.Attempt and what it returns; dial.go the
// dialer; session.go the session and the two connections koding reads and
// writes (clientConn, upstreamConn); frames.go the frame meter and the
// client message limit; headers.go the upgrade check and the 101's fields.
package wsrelay
