// Package gameclient is the Go client of livecell's wire protocol
// (docs/protocol.md). It opens a session to a cell gateway, authenticates
// with Hello, correlates requests with their responses, keeps the session
// alive with heartbeats, and delivers server pushes and reconnect
// instructions. The probe, the load tester, the chaos drills and tests use
// it; the C++ client in unreal/ implements the same state machine.
//
// A Conn is safe for concurrent use. One goroutine reads frames and one
// sends heartbeats; requests write directly under a mutex, so a request
// costs no extra goroutine hop.
package gameclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Defaults for zero Options fields.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultPushBuffer     = 256
)

// helloID is the request id of the Hello; ids of later requests follow it.
const helloID = 1

// byeTimeout bounds the best-effort Bye that Close sends, so closing a
// session whose peer stopped reading does not take a whole RequestTimeout.
const byeTimeout = time.Second

// ErrClosed is the cause of a connection ended by Close.
var ErrClosed = errors.New("gameclient: connection closed by the client")

// errRequestTimeout marks a request context that expired because of
// Options.RequestTimeout rather than the caller's own deadline.
var errRequestTimeout = errors.New("gameclient: request timeout")

// Options configure a session.
type Options struct {
	// Token is an access token (JWT) from the accounts service.
	Token string
	// ResumeToken resumes a previous session (from Welcome or Reconnect)
	// instead of authenticating with Token.
	ResumeToken string
	// Client names the client build, for the server's logs.
	Client string
	// MaxFrame is the largest frame accepted from the server, header
	// included. 0 accepts up to protocol.HardMaxFrame: the server's own
	// limit is only known from the Welcome, and the reader's buffer grows
	// only as large as the frames actually received. Frames the client
	// sends are bounded by Welcome.MaxFrame.
	MaxFrame int
	// RequestTimeout bounds each request (and each frame write) when the
	// caller's context allows longer. 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// PushBuffer is the capacity of the Pushes channel. 0 means
	// DefaultPushBuffer.
	PushBuffer int
	// Dialer dials the gateway in Dial; nil means a zero net.Dialer.
	Dialer *net.Dialer
	// Heartbeat is how often the client pings. 0 uses Welcome.HeartbeatMS
	// (no heartbeat when the server announces none); a negative value turns
	// heartbeats off, e.g. to exercise the server's idle timeout.
	Heartbeat time.Duration
}

func (o Options) withDefaults() Options {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.PushBuffer <= 0 {
		o.PushBuffer = DefaultPushBuffer
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = protocol.HardMaxFrame
	}
	return o
}

// Conn is an authenticated session with a gateway.
type Conn struct {
	nc      net.Conn
	opts    Options
	r       *protocol.Reader // used by the handshake, then only by readLoop
	welcome protocol.Welcome
	sendMax int // largest frame the server accepts (Welcome.MaxFrame)

	wmu  sync.Mutex // a frame goes out in one piece
	wbuf []byte     // encoding buffer reused under wmu

	mu        sync.Mutex
	pending   map[uint32]*call
	nextID    uint32
	closed    bool
	err       error         // why the connection ended; set once with closed
	serverErr *apierr.Error // last connection-level error frame (request id 0)

	done       chan struct{}
	pushes     chan protocol.Push
	reconnects chan protocol.Reconnect
	dropped    atomic.Uint64
	closeOnce  sync.Once
	closing    atomic.Bool    // Close has begun: no frame but its Bye goes out
	wg         sync.WaitGroup // readLoop and heartbeatLoop
}

// call is one request waiting for its response.
type call struct {
	op protocol.Opcode
	ch chan result // buffered: the reader never blocks on a slow caller
}

type result struct {
	payload []byte
	err     error
}

// Dial connects to a gateway over TCP and authenticates. ctx bounds the
// connect and the handshake only, as with net.Dialer.DialContext: once Dial
// returns, cancelling ctx does not affect the session. A refused Hello
// returns the server's error as an *apierr.Error; a Hello answered with a
// Reconnect returns a *ReconnectError.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gameclient: dial %s: %w", addr, err)
		}
		return nil, &apierr.Error{Op: "gameclient.Dial", Code: apierr.Unavailable, Msg: "cannot reach the gateway at " + addr, Err: err}
	}
	return NewConn(ctx, nc, opts)
}

// NewConn authenticates over an established connection (a TCP socket, or a
// stream relayed by an edge) and takes ownership of it: nc is closed when
// the handshake fails or the Conn ends.
func NewConn(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	c := &Conn{
		nc:         nc,
		opts:       opts,
		r:          protocol.NewReader(nc, opts.MaxFrame),
		pending:    make(map[uint32]*call),
		nextID:     helloID,
		done:       make(chan struct{}),
		pushes:     make(chan protocol.Push, opts.PushBuffer),
		reconnects: make(chan protocol.Reconnect, 1),
	}
	if err := c.handshake(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.readLoop()
	if every := c.heartbeatInterval(); every > 0 {
		c.wg.Add(1)
		go c.heartbeatLoop(every)
	}
	return c, nil
}

// handshake sends Hello and waits for the Welcome. It runs before the read
// loop starts, so it reads frames itself.
func (c *Conn) handshake(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gameclient: handshake: %w", err)
	}
	// A server that accepts but never answers must not hold the caller
	// forever when ctx has no deadline of its own.
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.RequestTimeout, errRequestTimeout)
	defer cancel()
	// net.Conn I/O takes no context: ctx reaches it as a deadline, and a
	// cancellation as a deadline in the past that unblocks the read.
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.nc.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			// ctx ended as the handshake finished: let its deadline land
			// first, so the reset below is the last word.
			<-fired
		}
		c.nc.SetDeadline(time.Time{})
	}()

	hello, err := json.Marshal(protocol.Hello{
		Protocol:    protocol.Version,
		Token:       c.opts.Token,
		ResumeToken: c.opts.ResumeToken,
		Client:      c.opts.Client,
	})
	if err != nil {
		return fmt.Errorf("gameclient: handshake: encode hello: %w", err)
	}
	if err := c.writeFrame(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpHello, RequestID: helloID}, Payload: hello}, time.Time{}); err != nil {
		return c.handshakeIOError(ctx, err)
	}
	for {
		f, err := c.r.Next()
		if err != nil {
			return c.handshakeIOError(ctx, err)
		}
		switch {
		case f.Opcode == protocol.OpHello && f.IsResponse() && f.RequestID == helloID:
			if err := json.Unmarshal(f.Payload, &c.welcome); err != nil {
				return &apierr.Error{Op: "gameclient.hello", Code: apierr.BadFrame, Msg: "malformed welcome", Err: err}
			}
			c.sendMax = protocol.ClampMaxFrame(c.welcome.MaxFrame)
			return nil
		case f.Opcode == protocol.OpError && (f.RequestID == helloID || f.RequestID == 0):
			return errorFromBody("gameclient.hello", f.Payload)
		case f.Opcode == protocol.OpReconnect:
			var rc protocol.Reconnect
			if err := json.Unmarshal(f.Payload, &rc); err != nil {
				return &apierr.Error{Op: "gameclient.hello", Code: apierr.BadFrame, Msg: "malformed reconnect", Err: err}
			}
			return &ReconnectError{Reconnect: rc}
		case f.Opcode == protocol.OpBye:
			return byeError(f.Payload)
		case f.Opcode == protocol.OpPing && !f.IsResponse():
			if err := c.writeFrame(pong(f), time.Time{}); err != nil {
				return c.handshakeIOError(ctx, err)
			}
		}
		// Anything else before the Welcome is ignored: a newer server may
		// send frames this client does not know.
	}
}

func (c *Conn) handshakeIOError(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The only deadlines on the socket come from ctx, whose timer may
		// fire a moment after the socket's: wait for it to report.
		<-ctx.Done()
	}
	if cause := context.Cause(ctx); errors.Is(cause, errRequestTimeout) {
		return &apierr.Error{Op: "gameclient.hello", Code: apierr.Timeout,
			Msg: fmt.Sprintf("no welcome within %s", c.opts.RequestTimeout), Err: context.DeadlineExceeded}
	} else if cause != nil {
		return fmt.Errorf("gameclient: handshake: %w", cause)
	}
	return &apierr.Error{Op: "gameclient.hello", Code: apierr.Unavailable, Msg: "connection lost during the handshake", Err: err}
}

func (c *Conn) heartbeatInterval() time.Duration {
	switch {
	case c.opts.Heartbeat < 0:
		return 0
	case c.opts.Heartbeat > 0:
		return c.opts.Heartbeat
	}
	return time.Duration(c.welcome.HeartbeatMS) * time.Millisecond
}

// Welcome returns the server's answer to the Hello.
func (c *Conn) Welcome() protocol.Welcome { return c.welcome }

// Pushes delivers server pushes in arrival order. When the application does
// not drain it and the buffer is full, pushes are dropped and counted
// (Dropped) rather than stalling the reader, which would also stall every
// response. It is closed when the connection ends.
func (c *Conn) Pushes() <-chan protocol.Push { return c.pushes }

// Dropped counts pushes lost to a full Pushes buffer or a malformed payload.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Reconnects delivers the server's instructions to move to another gateway
// or cell. It holds the latest unread instruction only: an older one is
// superseded. It is closed when the connection ends.
func (c *Conn) Reconnects() <-chan protocol.Reconnect { return c.reconnects }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended, nil while it is open: the server's
// connection-level error frame as an *apierr.Error, its Bye (an
// *apierr.Error whose code is the Bye reason when that is a known code,
// unavailable otherwise), a heartbeat timeout, ErrClosed, or the I/O error.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Request sends a request and waits for its response payload. An error frame
// answering it returns an *apierr.Error with the server's code, message and
// retry delay. The request fails with apierr.Timeout after
// Options.RequestTimeout, with the context's error when ctx ends first, and
// with a retryable apierr.Unavailable when the connection is lost.
func (c *Conn) Request(ctx context.Context, op protocol.Opcode, payload []byte) ([]byte, error) {
	if size := protocol.HeaderSize + len(payload); size > c.sendMax {
		// Sending it would only make the server close the session.
		return nil, &apierr.Error{Op: op.String(), Code: apierr.FrameTooLarge,
			Msg: fmt.Sprintf("a %d-byte frame exceeds the server's max_frame of %d", size, c.sendMax)}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.opts.RequestTimeout, errRequestTimeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return nil, c.contextError(ctx, op)
	}
	id, cl, err := c.register(op)
	if err != nil {
		return nil, err
	}
	f := protocol.Frame{Header: protocol.Header{Opcode: op, RequestID: id}, Payload: payload}
	if err := c.send(f); err != nil {
		c.unregister(id)
		return nil, c.lost(err)
	}
	select {
	case res := <-cl.ch:
		return res.payload, res.err
	case <-ctx.Done():
		if !c.unregister(id) {
			// The reader or shutdown claimed the call first: its result
			// is on the way and is more precise than the timeout.
			res := <-cl.ch
			return res.payload, res.err
		}
		return nil, c.contextError(ctx, op)
	}
}

func (c *Conn) contextError(ctx context.Context, op protocol.Opcode) error {
	if cause := context.Cause(ctx); errors.Is(cause, errRequestTimeout) {
		return &apierr.Error{Op: op.String(), Code: apierr.Timeout,
			Msg: fmt.Sprintf("no response within %s", c.opts.RequestTimeout), Err: context.DeadlineExceeded}
	}
	return fmt.Errorf("gameclient: %s: %w", op, context.Cause(ctx))
}

// Ping sends a ping and returns the round-trip time.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Request(ctx, protocol.OpPing, nil); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Close says Bye to the server (best effort) and closes the connection.
// In-flight requests fail with apierr.Unavailable, and Err reports
// ErrClosed. It waits for the Conn's goroutines, so Pushes and Reconnects are
// closed when it returns. Close is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// From here on only the Bye is written, and a write already stuck
		// behind a peer that stopped reading gives up within byeTimeout
		// (deadlines apply to I/O in progress), so Close cannot hang.
		c.closing.Store(true)
		deadline := time.Now().Add(byeTimeout)
		c.nc.SetWriteDeadline(deadline)
		c.wmu.Lock()
		c.mu.Lock()
		open := !c.closed
		c.mu.Unlock()
		if open {
			// Best effort: the Bye tells the server this was deliberate.
			bye, _ := json.Marshal(protocol.Bye{Reason: "client_closed"})
			_ = c.writeLocked(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpBye}, Payload: bye}, deadline)
		}
		c.wmu.Unlock()
		c.shutdown(ErrClosed)
	})
	c.wg.Wait()
	return nil
}

// register allocates a request id: unique among calls in flight, never 0
// (0 marks frames that are not requests), wrapping after 2^32-1.
func (c *Conn) register(op protocol.Opcode) (uint32, *call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, nil, c.lostLocked()
	}
	for {
		c.nextID++
		if c.nextID == 0 {
			continue
		}
		if _, busy := c.pending[c.nextID]; !busy {
			break
		}
	}
	cl := &call{op: op, ch: make(chan result, 1)}
	c.pending[c.nextID] = cl
	return c.nextID, cl, nil
}

// unregister removes a call and reports whether it was still pending.
func (c *Conn) unregister(id uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// lost is the error of a request that cannot complete because the
// connection ended.
func (c *Conn) lost(cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		cause = c.err
	}
	return lostError(cause)
}

func (c *Conn) lostLocked() error { return lostError(c.err) }

func lostError(cause error) error {
	return &apierr.Error{Op: "gameclient", Code: apierr.Unavailable, Msg: "connection lost", Err: cause}
}

// send writes one frame; a failed write ends the connection, since a
// partial frame leaves the stream unusable.
func (c *Conn) send(f protocol.Frame) error {
	err := c.writeFrame(f, time.Now().Add(c.opts.RequestTimeout))
	if err != nil && !errors.Is(err, ErrClosed) { // Close shuts down itself, after its Bye
		c.shutdown(fmt.Errorf("gameclient: write: %w", err))
	}
	return err
}

func (c *Conn) writeFrame(f protocol.Frame, deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(f, deadline)
}

func (c *Conn) writeLocked(f protocol.Frame, deadline time.Time) error {
	if !deadline.IsZero() {
		// A peer that stops reading must not block writers forever.
		if err := c.nc.SetWriteDeadline(deadline); err != nil {
			return err
		}
	}
	// Checked after setting the deadline: if Close began before this
	// check, nothing but its Bye is written; if after, Close's shorter
	// deadline replaces ours and bounds this write.
	if c.closing.Load() && f.Opcode != protocol.OpBye {
		return ErrClosed
	}
	c.wbuf = protocol.AppendFrame(c.wbuf[:0], f)
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // keep a large request's buffer no longer than it is used
	}
	return err
}

// shutdown ends the connection once: it records the cause, closes the
// socket and fails every request in flight.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	// The client's own Close explains whatever fails while it runs (a
	// write cut short by its deadline, the read of a closed socket); the
	// server's error frame explains the EOF or Bye that follows it better
	// than they do.
	switch {
	case c.closing.Load():
		cause = ErrClosed
	case c.serverErr != nil:
		cause = c.serverErr
	}
	c.err = cause
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	close(c.done)
	c.nc.Close()
	lost := lostError(cause)
	for _, cl := range pending {
		cl.ch <- result{err: lost}
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.reconnects)
	defer close(c.pushes)
	for {
		f, err := c.r.Next()
		if err != nil {
			c.shutdown(fmt.Errorf("gameclient: read: %w", err))
			return
		}
		if !c.dispatch(f) {
			return
		}
	}
}

// dispatch handles one frame from the server and reports whether to keep
// reading.
func (c *Conn) dispatch(f protocol.Frame) bool {
	switch {
	case f.Opcode == protocol.OpPing && !f.IsResponse():
		return c.send(pong(f)) == nil
	case f.Opcode == protocol.OpError && f.RequestID == 0:
		// Connection-level: the server usually closes next; keep reading
		// until it does so that Err reports this code.
		e := errorFromBody("gameclient", f.Payload)
		c.mu.Lock()
		c.serverErr = e
		c.mu.Unlock()
	case f.RequestID != 0 && (f.IsResponse() || f.Opcode == protocol.OpError):
		// Error frames correlate by id alone: a server that omits the
		// response flag on one still answers the request.
		c.complete(f)
	case f.Opcode == protocol.OpPush:
		var p protocol.Push
		if err := json.Unmarshal(f.Payload, &p); err != nil {
			c.dropped.Add(1)
			return true
		}
		select {
		case c.pushes <- p:
		default:
			c.dropped.Add(1)
		}
	case f.Opcode == protocol.OpReconnect:
		var rc protocol.Reconnect
		if err := json.Unmarshal(f.Payload, &rc); err != nil {
			return true
		}
		// Latest wins: drop an unread older instruction, then deliver.
		select {
		case <-c.reconnects:
		default:
		}
		c.reconnects <- rc // only this goroutine sends, so there is room
	case f.Opcode == protocol.OpBye:
		c.shutdown(byeError(f.Payload))
		return false
	}
	// Other frames (unknown opcodes, stray responses) are ignored so that
	// a newer server can add frames without breaking this client.
	return true
}

// complete hands a response to the request waiting for it. Responses to
// requests that already gave up are dropped.
func (c *Conn) complete(f protocol.Frame) {
	c.mu.Lock()
	cl, ok := c.pending[f.RequestID]
	delete(c.pending, f.RequestID)
	c.mu.Unlock()
	if !ok {
		return
	}
	if f.Opcode == protocol.OpError {
		cl.ch <- result{err: errorFromBody(cl.op.String(), f.Payload)}
		return
	}
	// The payload aliases the reader's buffer, reused by the next frame.
	cl.ch <- result{payload: append([]byte{}, f.Payload...)}
}

func (c *Conn) heartbeatLoop(every time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		// The loop's lifetime is the connection's, which has no context of
		// its own: done ends it, and Request's timeout bounds each ping.
		_, err := c.Ping(context.Background())
		if err != nil && apierr.CodeOf(err) == apierr.Timeout {
			// A server that does not answer pings is gone even if the
			// socket has not noticed yet.
			c.shutdown(&apierr.Error{Op: "gameclient.heartbeat", Code: apierr.Timeout,
				Msg: fmt.Sprintf("heartbeat not answered within %s", c.opts.RequestTimeout), Err: err})
			return
		}
		// Any other error either ended the connection (done is closed and
		// the next select returns) or was the server refusing one ping,
		// e.g. rate_limited, which does not make the session dead.
	}
}

// pong answers a server ping: same opcode, id and payload, response flag.
func pong(f protocol.Frame) protocol.Frame {
	return protocol.Frame{Header: protocol.Header{Flags: protocol.FlagResponse, Opcode: protocol.OpPing, RequestID: f.RequestID}, Payload: f.Payload}
}

// errorFromBody converts an error frame's payload into an *apierr.Error.
// Codes this client does not know are kept verbatim: a newer server may add
// codes, and callers can still log and compare them.
func errorFromBody(op string, payload []byte) *apierr.Error {
	var b protocol.ErrorBody
	if err := json.Unmarshal(payload, &b); err != nil {
		return &apierr.Error{Op: op, Code: apierr.Internal, Msg: "malformed error frame", Err: err}
	}
	code := apierr.Code(b.Code)
	if code == "" {
		code = apierr.Internal
	}
	return &apierr.Error{Op: op, Code: code, Msg: b.Message, RetryAfter: time.Duration(b.RetryAfterMS) * time.Millisecond}
}

// byeError is the cause of a connection the server ended with Bye.
func byeError(payload []byte) *apierr.Error {
	var b protocol.Bye
	_ = json.Unmarshal(payload, &b) // a malformed Bye still ends the session
	code := apierr.Code(b.Reason)
	if !code.Known() {
		code = apierr.Unavailable
	}
	return &apierr.Error{Op: "gameclient", Code: code, Msg: "server said bye: " + b.Reason}
}

// ReconnectError is returned by Dial and NewConn when the server answers the
// Hello with a Reconnect: it is draining, or the player lives elsewhere. It
// unwraps to a retryable apierr.Unavailable, so callers that only look at
// codes retry, and callers that follow redirects read Reconnect.
type ReconnectError struct {
	Reconnect protocol.Reconnect
}

func (e *ReconnectError) Error() string {
	return fmt.Sprintf("gameclient: server asked to reconnect (%s) to cell %q gateway %q", e.Reconnect.Reason, e.Reconnect.Cell, e.Reconnect.Gateway)
}

func (e *ReconnectError) Unwrap() error {
	return &apierr.Error{Op: "gameclient.hello", Code: apierr.Unavailable, Msg: "reconnect: " + e.Reconnect.Reason,
		RetryAfter: time.Duration(e.Reconnect.RetryAfterMS) * time.Millisecond}
}
