// Package opsrpc carries opcode requests over HTTP, so the services behind
// the gateway can run in the gateway's process or in their own: a service's
// protocol.Handlers are served by NewHandler, and Client.Handlers gives the
// gateway handlers with the same contract that forward to it.
//
// The wire is deliberately thin: POST /internal/v1/ops/{opcode} (opcode as
// four hex digits) with the raw payload as the body and the caller in
// headers; the answer is 200 with the raw response payload, or the
// httpapi error JSON whose apierr code the client turns back into the same
// *apierr.Error the in-process handler would have returned. A service that
// cannot be reached becomes unavailable, which clients may retry.
package opsrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

// PathPrefix is where opcode requests are served.
const PathPrefix = "/internal/v1/ops/"

// Headers of a forwarded request.
const (
	HeaderPlayer  = "X-Livecell-Player"
	HeaderSession = "X-Livecell-Session"
	HeaderCell    = "X-Livecell-Cell"
	// HeaderTimeout carries the caller's remaining time in milliseconds, so
	// the service gives up when the gateway does instead of working on for
	// an answer nobody waits for.
	HeaderTimeout = "X-Livecell-Timeout-Ms"
)

// maxTimeout bounds a propagated deadline: a forged header must not make a
// handler run unbounded.
const maxTimeout = time.Minute

// NewHandler serves h over HTTP. authorize runs before anything else (the
// wiring checks a bearer token with the server audience); its error is
// answered with its apierr code. It must not be nil: these endpoints act on
// behalf of any player.
func NewHandler(h protocol.Handlers, authorize func(r *http.Request) error, log *slog.Logger) http.Handler {
	if authorize == nil {
		panic("opsrpc: NewHandler needs an authorize func")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{handlers: h, authorize: authorize, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc(PathPrefix+"{opcode}", s.serveOp)
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

type server struct {
	handlers  protocol.Handlers
	authorize func(r *http.Request) error
	log       *slog.Logger
}

func (s *server) serveOp(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpapi.WriteError(w, r, s.log, apierr.New(apierr.MethodNotAllowed, "use POST"))
		return
	}
	if err := s.authorize(r); err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	op, err := parseOpcode(r.PathValue("opcode"))
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	h, ok := s.handlers[op]
	if !ok {
		httpapi.WriteError(w, r, s.log, apierr.New(apierr.UnknownOpcode, "unknown opcode %s", op.Hex()))
		return
	}
	caller := protocol.Caller{
		PlayerID:  r.Header.Get(HeaderPlayer),
		SessionID: r.Header.Get(HeaderSession),
		Cell:      r.Header.Get(HeaderCell),
	}
	if caller.PlayerID == "" {
		httpapi.WriteError(w, r, s.log, apierr.New(apierr.BadRequest, "missing %s header", HeaderPlayer))
		return
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.HardMaxFrame))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = apierr.New(apierr.PayloadTooLarge, "payload exceeds %d bytes", protocol.HardMaxFrame)
		} else {
			err = apierr.Wrap("opsrpc.read", apierr.BadRequest, "could not read the payload", err)
		}
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	ctx := r.Context()
	if ms, err := strconv.ParseInt(r.Header.Get(HeaderTimeout), 10, 64); err == nil && ms > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, min(time.Duration(ms)*time.Millisecond, maxTimeout))
		defer cancel()
	}
	resp, err := call(ctx, h, caller, payload)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// call runs a handler, answering a panic with internal rather than a
// dropped connection the client would report as unavailable.
func call(ctx context.Context, h protocol.Handler, c protocol.Caller, payload []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = apierr.Wrap("opsrpc.handler", apierr.Internal, "",
				fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return h(ctx, c, payload)
}

func parseOpcode(s string) (protocol.Opcode, error) {
	if len(s) != 4 {
		return 0, apierr.New(apierr.BadRequest, "opcode must be 4 hex digits, got %q", s)
	}
	n, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return 0, apierr.New(apierr.BadRequest, "opcode must be 4 hex digits, got %q", s)
	}
	return protocol.Opcode(n), nil
}

// Client forwards opcode requests to a service's NewHandler.
type Client struct {
	BaseURL string       // the service's HTTP API, e.g. http://127.0.0.1:4111
	HTTP    *http.Client // nil means http.DefaultClient
	// Token returns the bearer token the service's authorize checks (a
	// server-audience token). Nil sends no Authorization header.
	Token func(ctx context.Context) (string, error)
}

// Handlers returns, for each op, a handler that forwards to the service.
func (c *Client) Handlers(ops ...protocol.Opcode) protocol.Handlers {
	hs := make(protocol.Handlers, len(ops))
	for _, op := range ops {
		hs[op] = func(ctx context.Context, caller protocol.Caller, payload []byte) ([]byte, error) {
			return c.do(ctx, op, caller, payload)
		}
	}
	return hs
}

func (c *Client) do(ctx context.Context, op protocol.Opcode, caller protocol.Caller, payload []byte) ([]byte, error) {
	name := "opsrpc " + op.Hex()
	url := strings.TrimSuffix(c.BaseURL, "/") + PathPrefix + fmt.Sprintf("%04x", uint16(op))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, apierr.Wrap(name, apierr.Internal, "", fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderPlayer, caller.PlayerID)
	if caller.SessionID != "" {
		req.Header.Set(HeaderSession, caller.SessionID)
	}
	if caller.Cell != "" {
		req.Header.Set(HeaderCell, caller.Cell)
	}
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set(HeaderTimeout, strconv.FormatInt(max(1, time.Until(dl).Milliseconds()), 10))
	}
	if c.Token != nil {
		tok, err := c.Token(ctx)
		if err != nil {
			return nil, apierr.Wrap(name, apierr.Internal, "", fmt.Errorf("server token: %w", err))
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, apierr.Wrap(name, apierr.Timeout, "the request timed out", err)
		}
		return nil, apierr.Wrap(name, apierr.Unavailable, "", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, protocol.HardMaxFrame+1))
	if err != nil {
		return nil, apierr.Wrap(name, apierr.Unavailable, "", fmt.Errorf("read response: %w", err))
	}
	if resp.StatusCode == http.StatusOK {
		if len(body) > protocol.HardMaxFrame {
			return nil, apierr.Wrap(name, apierr.Internal, "", fmt.Errorf("response exceeds %d bytes", protocol.HardMaxFrame))
		}
		if len(body) == 0 {
			return nil, nil
		}
		return body, nil
	}
	return nil, responseError(name, resp, body)
}

// responseError turns an error response back into the *apierr.Error the
// service returned. A body that is not the service's error JSON came from
// something in between (a proxy, a restarting pod): 5xx and 429 are then
// reported as retryable, the rest as internal.
func responseError(name string, resp *http.Response, body []byte) error {
	var eb httpapi.ErrorBody
	e := &apierr.Error{Op: name}
	if json.Unmarshal(body, &eb) == nil && eb.Code.Known() {
		e.Code, e.Msg = eb.Code, eb.Message
		if resp.StatusCode == http.StatusUnauthorized {
			// The player was authenticated by the gateway; a 401 here is the
			// gateway's own server credential being refused. Telling the
			// player "invalid_token" would send them to log in again for
			// nothing, so report a retryable outage and keep the cause.
			e.Code, e.Msg = apierr.Unavailable, ""
			e.Err = fmt.Errorf("service refused the gateway's server credential: %s: %s", eb.Code, eb.Message)
		}
	} else {
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			e.Code = apierr.RateLimited
		case resp.StatusCode >= 500:
			e.Code = apierr.Unavailable
		default:
			e.Code = apierr.Internal
		}
		e.Err = fmt.Errorf("unexpected response %s: %.200q", resp.Status, body)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}
