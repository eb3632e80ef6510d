package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

const (
	// maxViolations rate-limit violations within violationWindow of each
	// other close the session: the client is ignoring retry_after_ms.
	maxViolations   = 100
	violationWindow = 10 * time.Second
	// maxErrorMessage keeps a handler's long message from making an error
	// frame exceed the client's maximum frame size.
	maxErrorMessage = 1 << 10
)

// handle runs the protocol state machine on one frame. It runs on the
// reader goroutine and must not keep f.Payload, which aliases the read
// buffer.
func (c *conn) handle(f protocol.Frame) {
	om := c.g.m.op(f.Opcode)
	om.in.Inc()
	if !c.authed {
		c.handleHello(f)
		return
	}
	if f.IsResponse() {
		return // a client's answer to a ping: it only keeps the session alive
	}
	received := time.Now()
	binary := f.Flags&protocol.FlagBinary != 0
	// Heartbeats are exempt from the request budget (docs/protocol.md), so
	// a client backing off after rate_limited still keeps its session.
	if f.Opcode != protocol.OpPing || binary {
		if c.g.cfg.RateLimit > 0 {
			if ok, retry := c.bucket.take(time.Since(c.g.epoch), c.g.cfg.RateLimit, float64(c.g.cfg.RateBurst)); !ok {
				c.rateLimited(f, om, retry)
				return
			}
		}
	}
	if binary {
		c.requestFailed(f, om, apierr.UnsupportedEncoding, "binary payloads are not supported by protocol version 1", received)
		return
	}
	switch f.Opcode {
	case protocol.OpPing, protocol.OpEcho:
		c.g.m.answered(om, "", time.Since(received).Seconds())
		c.send(protocol.Frame{Header: respond(f.Header), Payload: f.Payload})
	case protocol.OpHello:
		c.requestFailed(f, om, apierr.AlreadyAuth, "the session is already authenticated", received)
	case protocol.OpResume:
		tok := c.resumeToken(c.player, c.sessionID)
		if tok == "" {
			c.requestFailed(f, om, apierr.UnknownOpcode, "this gateway issues no resume tokens", received)
			return
		}
		c.g.m.answered(om, "", time.Since(received).Seconds())
		c.sendJSON(protocol.Frame{Header: respond(f.Header)}, protocol.ResumeGrant{ResumeToken: tok})
	case protocol.OpBye:
		c.closeWith(nil, false)
	default:
		h, ok := c.g.handlers[f.Opcode]
		if !ok {
			c.requestFailed(f, om, apierr.UnknownOpcode, "unknown opcode "+f.Opcode.Hex(), received)
			return
		}
		if int(c.inflight.Load()) >= c.g.cfg.MaxInFlight {
			c.g.m.rateLimited.Inc()
			c.g.m.answered(om, apierr.RateLimited, time.Since(received).Seconds())
			c.send(errorFrame(f.RequestID, protocol.ErrorBody{Code: string(apierr.RateLimited),
				Message: "too many requests in flight", Retryable: true}))
			return
		}
		c.inflight.Add(1)
		c.g.wg.Add(1)
		go c.serve(h, f.Header, bytes.Clone(f.Payload), om, received)
	}
}

// respond is the header of the answer to a request.
func respond(h protocol.Header) protocol.Header {
	return protocol.Header{Flags: protocol.FlagResponse, Opcode: h.Opcode, RequestID: h.RequestID}
}

// requestFailed answers a request the gateway refuses itself; the session
// continues.
func (c *conn) requestFailed(f protocol.Frame, om *opMetrics, code apierr.Code, msg string, received time.Time) {
	c.g.m.protocolErrors.WithLabelValues(string(code)).Inc()
	c.g.m.answered(om, code, time.Since(received).Seconds())
	c.send(codedError(f.RequestID, code, msg))
}

func (c *conn) rateLimited(f protocol.Frame, om *opMetrics, retry time.Duration) {
	c.g.m.rateLimited.Inc()
	c.g.m.answered(om, apierr.RateLimited, 0)
	now := time.Since(c.g.epoch)
	if now-c.lastViolation > violationWindow {
		c.violations = 0
	}
	c.violations++
	c.lastViolation = now
	body := protocol.ErrorBody{Code: string(apierr.RateLimited), Message: "too many requests",
		Retryable: true, RetryAfterMS: max(1, retry.Milliseconds())}
	if c.violations >= maxViolations {
		body.Message = "too many requests: closing the session"
		f := errorFrame(f.RequestID, body)
		c.closeWith(&f, false)
		c.g.log.LogAttrs(c.g.base, slog.LevelWarn, "gateway: session closed for exceeding the rate limit",
			slog.String("player", c.player))
		return
	}
	c.send(errorFrame(f.RequestID, body))
}

// handleHello authenticates the session; every other first frame ends it.
func (c *conn) handleHello(f protocol.Frame) {
	if f.Opcode != protocol.OpHello || f.IsResponse() {
		c.authFailed(f.RequestID, apierr.NotAuthenticated, "the first frame must be hello")
		return
	}
	if f.Flags&protocol.FlagBinary != 0 {
		c.g.m.protocolErrors.WithLabelValues(string(apierr.UnsupportedEncoding)).Inc()
		c.send(codedError(f.RequestID, apierr.UnsupportedEncoding, "hello must be JSON"))
		return
	}
	if c.g.draining.Load() {
		c.authFailed(f.RequestID, apierr.Draining, "the gateway is draining: resolve your cell again")
		return
	}
	var h protocol.Hello
	if err := json.Unmarshal(f.Payload, &h); err != nil {
		c.authFailed(f.RequestID, apierr.BadRequest, "hello payload must be a JSON object")
		return
	}
	if h.Protocol != protocol.Version {
		c.authFailed(f.RequestID, apierr.UnsupportedVersion,
			fmt.Sprintf("protocol %d is not supported; this gateway speaks %d", h.Protocol, protocol.Version))
		return
	}
	ctx, cancel := context.WithTimeout(c.g.base, c.g.cfg.AuthTimeout)
	id, err := c.g.auth.Authenticate(ctx, h)
	cancel()
	if err == nil && id.PlayerID == "" {
		err = apierr.Wrap("gateway.Authenticate", apierr.InvalidToken, "", errors.New("authenticator returned no player id"))
	}
	if err != nil {
		code := apierr.CodeOf(err)
		c.g.log.LogAttrs(c.g.base, slog.LevelInfo, "gateway: authentication failed",
			slog.String("code", string(code)), slog.String("error", err.Error()),
			slog.String("client", h.Client), slog.String("remote", c.io.remoteAddr()))
		c.authFailed(f.RequestID, code, apierr.MessageOf(err))
		return
	}

	sessionID := rand.Text()
	c.home = id.HomeCell
	if c.home == "" {
		c.home = c.g.cfg.CellID
	}
	welcome, _ := json.Marshal(protocol.Welcome{ // strings and numbers only: cannot fail
		SessionID:     sessionID,
		PlayerID:      id.PlayerID,
		Cell:          c.g.cfg.CellID,
		HeartbeatMS:   c.g.cfg.HeartbeatInterval.Milliseconds(),
		IdleTimeoutMS: c.g.cfg.IdleTimeout.Milliseconds(),
		MaxFrame:      c.g.cfg.MaxFrame,
		ResumeToken:   c.resumeToken(id.PlayerID, sessionID),
		ServerTimeMS:  time.Now().UnixMilli(),
	})
	old, ok := c.g.table.bind(c, id.PlayerID, sessionID, protocol.Frame{Header: respond(f.Header), Payload: welcome})
	if !ok {
		return // closed while authenticating
	}
	c.authed = true
	if old != nil {
		bye := byeFrame("session_replaced")
		old.closeWith(&bye, false)
	}
	c.extendRead(c.g.cfg.IdleTimeout)
}

func (c *conn) authFailed(reqID uint32, code apierr.Code, msg string) {
	c.g.m.authFailures.WithLabelValues(string(code)).Inc()
	f := codedError(reqID, code, msg)
	c.closeWith(&f, false)
}

// resumeToken mints a resume token for this session, or returns "" when
// the gateway has no issuer or it fails: a session without one still works,
// the client just logs in again after a disconnect.
func (c *conn) resumeToken(player, sessionID string) string {
	if c.g.resume == nil {
		return ""
	}
	tok, err := c.g.resume.IssueResume(player, sessionID, c.home)
	if err != nil {
		c.g.log.LogAttrs(c.g.base, slog.LevelWarn, "gateway: issue resume token",
			slog.String("player", player), slog.String("error", err.Error()))
		return ""
	}
	return tok
}

// serve runs one handler request on its own goroutine.
func (c *conn) serve(h protocol.Handler, req protocol.Header, payload []byte, om *opMetrics, received time.Time) {
	defer c.g.wg.Done()
	defer c.inflight.Add(-1)
	parent, ok := c.requestContext()
	if !ok {
		return // closed: nobody is left to answer
	}
	ctx, cancel := context.WithTimeout(parent, c.g.cfg.RequestTimeout)
	resp, err := c.call(ctx, h, payload)
	cancel()
	if err == nil && protocol.HeaderSize+len(resp) > c.g.cfg.MaxFrame {
		err = apierr.Wrap("gateway.serve", apierr.Internal, "",
			fmt.Errorf("%s response of %d bytes exceeds the maximum frame size %d", om.name, len(resp), c.g.cfg.MaxFrame))
	}
	if err != nil {
		code := apierr.CodeOf(err)
		if _, coded := apierr.From(err); !coded && errors.Is(err, context.DeadlineExceeded) {
			code = apierr.Timeout
			err = apierr.Wrap("gateway.serve", code, "the request timed out", err)
		}
		if code == apierr.Internal {
			c.g.log.LogAttrs(ctx, slog.LevelError, "gateway: request failed",
				slog.String("opcode", req.Opcode.Hex()), slog.String("player", c.player), slog.String("error", err.Error()))
		}
		body := protocol.ErrorBody{Code: string(code), Message: truncate(apierr.MessageOf(err), maxErrorMessage), Retryable: code.Retryable()}
		if e, ok := apierr.From(err); ok && e.RetryAfter > 0 {
			body.RetryAfterMS = max(1, e.RetryAfter.Milliseconds())
		}
		c.g.m.answered(om, code, time.Since(received).Seconds())
		c.send(errorFrame(req.RequestID, body))
		return
	}
	// Counted before the answer is queued, so a client that has its answer
	// also finds it in the metrics.
	c.g.m.answered(om, "", time.Since(received).Seconds())
	c.send(protocol.Frame{Header: respond(req), Payload: resp})
}

// call runs a handler, turning a panic into an internal error so one bad
// request cannot take the process down.
func (c *conn) call(ctx context.Context, h protocol.Handler, payload []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.g.log.LogAttrs(ctx, slog.LevelError, "gateway: handler panic",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			resp, err = nil, apierr.Wrap("gateway.handler", apierr.Internal, "", fmt.Errorf("panic: %v", r))
		}
	}()
	return h(ctx, protocol.Caller{PlayerID: c.player, SessionID: c.sessionID, Cell: c.g.cfg.CellID}, payload)
}

// sendJSON sends f with v encoded as its payload.
func (c *conn) sendJSON(f protocol.Frame, v any) bool {
	p, err := json.Marshal(v)
	if err != nil { // only for types that cannot be encoded: a bug
		c.g.log.LogAttrs(c.g.base, slog.LevelError, "gateway: encode frame", slog.String("error", err.Error()))
		return false
	}
	f.Payload = p
	return c.send(f)
}

// errorFrame builds an error frame. One that answers a request carries the
// request's id and the response flag; a connection-level one has id 0 and
// no flag (docs/protocol.md, Errors).
func errorFrame(reqID uint32, body protocol.ErrorBody) protocol.Frame {
	p, _ := json.Marshal(body) // strings and numbers only: cannot fail
	h := protocol.Header{Opcode: protocol.OpError, RequestID: reqID}
	if reqID != 0 {
		h.Flags = protocol.FlagResponse
	}
	return protocol.Frame{Header: h, Payload: p}
}

func codedError(reqID uint32, code apierr.Code, msg string) protocol.Frame {
	return errorFrame(reqID, protocol.ErrorBody{Code: string(code), Message: msg, Retryable: code.Retryable()})
}

func byeFrame(reason string) protocol.Frame {
	p, _ := json.Marshal(protocol.Bye{Reason: reason})
	return protocol.Frame{Header: protocol.Header{Opcode: protocol.OpBye}, Payload: p}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
