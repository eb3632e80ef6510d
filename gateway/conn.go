package gateway

// This file is a connection as the protocol logic sees it: frames come in
// through handle (session.go) and leave through send and closeWith. The
// socket belongs to an engine (connIO): engine_goroutine.go runs a reader
// and a writer goroutine per connection; engine_epoll_linux.go runs every
// connection on a few event loops, with no goroutine and no buffer tied to
// an idle one.

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

const (
	// readBufSize holds a burst of typical frames; larger frames get a
	// buffer of their own for as long as they are pending.
	readBufSize = 4 << 10
	// maxPooledBuf keeps one huge write batch from pinning memory in the pool.
	maxPooledBuf = 64 << 10
	// closeLinger is how long a closing connection keeps reading (and
	// discarding) after its FIN, so unread input does not turn the close into
	// a reset that destroys the final frame in flight.
	closeLinger = 500 * time.Millisecond
	// maxCloseFlush bounds the time a closing connection gets to flush its
	// final frames: a peer that does not read gets cut off.
	maxCloseFlush = time.Second
)

// connIO is the engine side of a connection: the socket, and whoever reads
// and writes it.
type connIO interface {
	// wake tells the engine that c.out holds frames or c.closed is set.
	// It never blocks and is safe from any goroutine.
	wake()
	// closed runs once, under c.mu, when closeWith marks the connection
	// closed: from then the engine has the gateway's closeFlush to write
	// what is queued.
	closed()
	// extendRead gives the peer d from now to complete its next frame.
	// Only the connection's reader calls it.
	extendRead(d time.Duration)
	// remoteAddr names the peer in logs.
	remoteAddr() string
}

// conn is one client connection and, after Hello, its session.
type conn struct {
	g    *Gateway
	io   connIO
	slot int32 // in g.table, -1 when not in it; guarded by the table's lock

	// Set once by table.bind under the table's lock; read-only afterwards.
	player    string
	sessionID string
	// home is the player's home cell, set before bind: resume tokens name
	// it so the session can resume at the home cell or its failover.
	home string

	inflight atomic.Int32 // handler requests running
	closing  atomic.Bool  // mirrors closed, for lock-free checks

	// Owned by the connection's reader (a goroutine or an event loop).
	authed        bool
	bucket        bucket
	violations    int
	lastViolation time.Duration

	mu     sync.Mutex // guards the fields below
	out    *[]byte    // encoded frames for the engine to write; nil when empty (pooled)
	queued int        // frames in out
	closed bool
	// reqCtx is the parent of the session's handler requests, cancelled
	// when the connection closes. It is made by the first request: a
	// context costs hundreds of bytes, which an idle session does not pay.
	reqCtx    context.Context
	reqCancel context.CancelFunc
}

func newConn(g *Gateway) *conn { return &conn{g: g, slot: -1} }

// requestContext is the parent context of a handler request; ok is false
// once the connection is closed.
func (c *conn) requestContext() (ctx context.Context, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	if c.reqCtx == nil {
		c.reqCtx, c.reqCancel = context.WithCancel(c.g.base)
	}
	return c.reqCtx, true
}

// send queues f for the engine. It returns false when the connection is
// closing or f made it a slow consumer (which closes it). Callers keep f
// within MaxFrame.
func (c *conn) send(f protocol.Frame) bool {
	ok, full := c.enqueue(f, false)
	if full {
		c.dropSlow()
	}
	return ok
}

// enqueue appends f to the queue; force skips the queue limit. It never
// closes the connection itself, so it is safe under the table's lock.
func (c *conn) enqueue(f protocol.Frame, force bool) (ok, full bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, false
	}
	if !force && c.queued >= c.g.cfg.OutboundQueue {
		c.mu.Unlock()
		return false, true
	}
	if c.out == nil {
		c.out = c.g.wbufs.Get().(*[]byte)
	}
	*c.out = protocol.AppendFrame(*c.out, f)
	c.queued++
	// Counted before the engine can write the frame, so a client that has
	// read it also finds it in the metrics.
	c.g.m.op(f.Opcode).out.Inc()
	c.mu.Unlock()
	c.io.wake()
	return true, false
}

// takeOut hands the queued frames to the engine's writer; nil when none.
func (c *conn) takeOut() (batch *[]byte, closed bool) {
	c.mu.Lock()
	batch, c.out, c.queued = c.out, nil, 0
	closed = c.closed
	c.mu.Unlock()
	return batch, closed
}

// dropSlow closes a connection whose client stopped reading. Its queued
// frames are discarded so that memory is released now rather than when the
// socket gives up.
func (c *conn) dropSlow() {
	f := errorFrame(0, protocol.ErrorBody{Code: string(apierr.SlowConsumer),
		Message: "outbound queue full: the client is not reading", Retryable: true})
	if c.closeWith(&f, true) {
		c.slowConsumer("outbound queue full")
	}
}

func (c *conn) slowConsumer(why string) {
	c.g.m.slowConsumers.Inc()
	c.g.log.LogAttrs(c.g.base, slog.LevelWarn, "gateway: slow consumer dropped",
		slog.String("why", why), slog.String("player", c.player), slog.String("remote", c.io.remoteAddr()))
}

// closeWith starts closing the connection: final (if any) is queued after
// the frames already waiting (which drop discards), the engine flushes
// within the gateway's closeFlush, half-closes and lingers, and the session
// leaves the table at once. It reports whether this call closed the
// connection.
func (c *conn) closeWith(final *protocol.Frame, drop bool) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	c.closing.Store(true)
	if drop && c.out != nil {
		*c.out = (*c.out)[:0]
		c.queued = 0
	}
	if final != nil {
		if c.out == nil {
			c.out = c.g.wbufs.Get().(*[]byte)
		}
		*c.out = protocol.AppendFrame(*c.out, *final)
		c.g.m.op(final.Opcode).out.Inc()
	}
	c.io.closed()
	cancel := c.reqCancel
	c.mu.Unlock()
	c.io.wake()
	if cancel != nil {
		cancel()
	}
	c.g.table.remove(c)
	return true
}

// extendRead moves the read deadline.
func (c *conn) extendRead(d time.Duration) { c.io.extendRead(d) }

// readTimedOut ends a session whose peer sent no complete frame in time.
func (c *conn) readTimedOut() {
	if c.closing.Load() {
		return
	}
	code, msg := apierr.IdleTimeout, "no frame within the idle timeout"
	if !c.authed {
		code, msg = apierr.AuthTimeout, "no hello within the auth timeout"
		c.g.m.authFailures.WithLabelValues(string(code)).Inc()
	} else {
		c.g.m.protocolErrors.WithLabelValues(string(code)).Inc()
	}
	f := codedError(0, code, msg)
	c.closeWith(&f, false)
}

// brokenFraming answers a frame that cannot be decoded; the stream cannot
// be resynchronised, so the connection closes.
func (c *conn) brokenFraming(err error) {
	code := apierr.CodeOf(err)
	c.g.m.protocolErrors.WithLabelValues(string(code)).Inc()
	f := codedError(0, code, apierr.MessageOf(err))
	c.closeWith(&f, false)
}

// putWriteBuf returns an engine's written batch to the pool.
func (g *Gateway) putWriteBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	g.wbufs.Put(bp)
}
