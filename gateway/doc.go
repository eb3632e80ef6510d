// Package gateway is a cell's TCP front door. Game clients open one session
// to their home cell's gateway, authenticate in the first frame, send
// requests that the gateway routes by opcode to the cell's services, and
// receive server pushes. The frame format is internal/protocol's; this
// package is the normative description of how a gateway behaves on a
// session, and docs/protocol.md follows it.
//
// # Handshake
//
//   - The first frame must be OpHello, within Config.AuthTimeout of the
//     connection's accept. Silence gets an auth_timeout error frame, then
//     the connection closes.
//   - Any other frame before Hello gets not_authenticated, then close.
//   - A Hello payload that is not a JSON object gets bad_request, then close;
//     Hello.Protocol other than protocol.Version gets unsupported_version,
//     then close. A Hello with FlagBinary set gets unsupported_encoding and
//     the client may send a proper Hello before the auth deadline.
//   - The Authenticator decides (an access token with the player audience,
//     or a resume token). Its error goes back as an error frame with its
//     apierr code (invalid_token, token_expired, ...), then close.
//   - While the gateway drains, a Hello gets draining, then close.
//   - Success is answered with OpHello|FlagResponse and the Hello's request
//     id, carrying protocol.Welcome: a random session id, the player id, the
//     cell, the heartbeat interval and idle timeout the client must honour,
//     the maximum frame size, a resume token (when the gateway has a
//     ResumeIssuer) and the server time.
//   - A player holds at most one session per gateway: a newer session for
//     the same player closes the older one with OpBye{"session_replaced"}.
//
// # Frames after the handshake
//
// An error frame that answers a request carries its request id and
// FlagResponse; a connection-level one (the gateway closes right after it)
// has request id 0 and no flag.
//
//   - A second Hello gets already_authenticated; the session continues.
//   - OpPing is answered with OpPing|FlagResponse echoing the payload;
//     OpEcho is answered with OpEcho|FlagResponse and the payload verbatim
//     (load tests use it to measure the gateway alone). OpBye closes.
//   - OpResume is answered with a fresh resume token (protocol.ResumeGrant)
//     for the session, or unknown_opcode when the gateway has no
//     ResumeIssuer; an edge keeps the token it would re-attach the player
//     with fresh this way.
//   - Frames with FlagResponse (answers to server pings) are accepted and
//     otherwise ignored.
//   - FlagBinary gets unsupported_encoding for that request id; the session
//     continues. An opcode with no handler (including server-to-client
//     opcodes sent by a client) gets unknown_opcode with the request id; the
//     session continues.
//   - An opcode in Deps.Handlers runs its handler with Config.RequestTimeout
//     and the caller's identity. The answer is the same opcode with
//     FlagResponse and the same request id, or an OpError frame with that
//     request id and the error's apierr code and public message (a cause
//     without a code is reported as internal, never shown). A handler that
//     panics is answered with internal. At most Config.MaxInFlight handler
//     requests run at once per session; beyond that a request gets
//     rate_limited at once.
//   - Every request except a ping takes a token from a per-session bucket
//     (Config.RateLimit per second, Config.RateBurst deep); heartbeats are
//     exempt so a client that backs off keeps its session. A request over
//     the limit gets rate_limited with retry_after_ms and is dropped; a
//     session that keeps going over (100 violations, each within 10s of
//     the previous) gets rate_limited and is closed.
//   - Any complete frame resets the idle timer; a session silent for longer
//     than Config.IdleTimeout gets idle_timeout, then close.
//
// # Broken framing
//
// A frame that cannot be decoded (bad_frame, frame_too_large, an unknown
// header version as unsupported_version, reserved flag bits as bad_frame)
// gets an error frame with that code and request id 0, then close: after
// it the byte stream can no longer be split into frames. A length prefix
// over the maximum frame size is rejected as soon as its four bytes arrive,
// so a peer can never make the gateway buffer more than MaxFrame bytes.
//
// # Outbound queue and fairness
//
// Responses, pushes and control frames go through a bounded per-session
// queue (Config.OutboundQueue frames not yet handed to the socket). A
// client that stops reading fills it; the session is then dropped: its
// queued frames are discarded, a slow_consumer error frame is attempted,
// the connection closes and the drop is counted. A socket write blocked
// past Config.WriteTimeout ends the session the same way. Memory per
// session never grows without bound, and whatever one connection does, the
// gateway keeps serving the others: a panic in one session's goroutine is
// recovered and closes only that session.
//
// # Closing
//
// The gateway closes a connection by flushing its queue and final frame,
// half-closing the socket (FIN), and reading and discarding input for a
// short linger. Closing a socket that still holds unread input would send a
// TCP reset and could destroy the final frame before the client reads it.
//
// # Edges
//
// With Config.BackboneListen the gateway also accepts edge relays, each on
// one authenticated link that multiplexes many player sessions (package
// backbone). Every session an edge opens is a backbone.Stream, a net.Conn,
// and takes the very path of a TCP connection: the handshake, limits,
// pushes and drain above apply unchanged, and the player authenticates
// with the gateway itself, whatever the edge checked before.
//
// # Drain and stop
//
// Drain stops accepting, tells edges to open no new session here (GOAWAY),
// sends OpReconnect to every session in batches (each with a fresh resume
// token when a ResumeIssuer is set), waits up to Config.DrainGrace for
// clients to leave and closes the rest with OpBye{"draining"}. Stop closes
// the listener and every session with OpBye{"shutting_down"}, waits for the
// gateway's goroutines, then flushes and closes the edge links.
//
// # Metrics
//
// Registered on Deps.Metrics with the prefix livecell_gateway_: sessions,
// connections_total{result}, frames_received_total{opcode},
// frames_sent_total{opcode} (queued to the client), requests_total{opcode,
// code} (code "ok" on success), request_duration_seconds{opcode},
// protocol_errors_total{code}, auth_failures_total{code},
// pushes_total{result}, slow_consumer_drops_total, rate_limited_total and
// drains_total. Opcode labels use protocol.Opcode.String, so opcodes
// outside the protocol table share the label "unknown".
//
// # Processes and I/O
//
// With Config.ReusePort several gateway processes share one port
// (SO_REUSEPORT), because a process holds fewer than 20,000 sockets on these
// machines. conn.go is a connection as the protocol logic sees it (frames
// in through handle, out through send and closeWith); the socket belongs to
// an engine (Config.Engine):
//
//   - epoll (the default on Linux, engine_epoll_linux.go): Config.Loops
//     event loops per process, level-triggered. An idle session owns no
//     goroutine and no buffer: a loop reads every ready socket into one
//     shared 64 KiB buffer, handles the complete frames in place and keeps
//     only an incomplete frame's bytes. Frames queued from other goroutines
//     (handler answers, pushes) mark the connection dirty; the loop writes
//     each dirty connection's queue with one write, and only a loop ever
//     touches a descriptor, so none is written after it was closed and
//     reused. Deadlines (auth, idle, write, close flush, linger) are
//     checked by a sweep of the loop's connections a few times per shortest
//     timeout rather than by a timer per connection. The first loop also
//     accepts, on its own duplicate of the listener's descriptor.
//   - goroutine (engine_goroutine.go): a reader and a writer goroutine per
//     net.Conn with pooled buffers. It serves every other platform and the
//     edge sessions, which arrive as backbone.Streams rather than
//     descriptors.
//
// Both engines pass the same test suite (make test runs it twice), and a
// handler request runs on a goroutine of its own under either, with a
// context made on the first request and cancelled when the session closes.
// `livecell bench-gateway` (package benchrig) measures the gateway at scale.
package gateway
