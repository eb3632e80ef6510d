package gateway

// This file is the connection I/O engine: it turns socket bytes into frames
// for session.go and drains each connection's outbound queue into the
// socket. The rest of the package talks to a connection only through
// handle (frames in), send and closeWith (frames out), so the engine can be
// replaced by an event loop without touching the protocol logic.

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
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

// conn is one client connection and, after Hello, its session.
type conn struct {
	g    *Gateway
	nc   net.Conn
	slot int32 // in g.table; guarded by the table's lock

	// Set once by table.bind under the table's lock; read-only afterwards.
	player    string
	sessionID string
	// home is the player's home cell, set before bind: resume tokens name
	// it so the session can resume at the home cell or its failover.
	home string

	ctx    context.Context // cancelled when the connection closes; parent of handler contexts
	cancel context.CancelFunc

	inflight atomic.Int32  // handler requests running
	closing  atomic.Bool   // mirrors closed, for lock-free checks
	wake     chan struct{} // capacity 1: tells the writer there is work
	readDone chan struct{} // closed when the reader returns

	// Owned by the reader goroutine.
	authed        bool
	bucket        bucket
	violations    int
	lastViolation time.Duration

	mu     sync.Mutex // guards the fields below and deadline changes
	out    *[]byte    // encoded frames for the writer; nil when empty (pooled)
	queued int        // frames in out
	closed bool
}

func newConn(g *Gateway, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(g.base)
	return &conn{g: g, nc: nc, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), readDone: make(chan struct{})}
}

func (c *conn) start() {
	c.g.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

// send queues f for the writer. It returns false when the connection is
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
	// Counted before the writer can take the frame, so a client that has
	// read it also finds it in the metrics.
	c.g.m.op(f.Opcode).out.Inc()
	c.mu.Unlock()
	c.signal()
	return true, false
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dropSlow closes a connection whose client stopped reading. Its queued
// frames are discarded so that memory is released now rather than when the
// socket gives up.
func (c *conn) dropSlow() {
	f := errorFrame(0, protocol.ErrorBody{Code: string(apierr.SlowConsumer),
		Message: "outbound queue full: the client is not reading", Retryable: true})
	if c.closeWith(&f, true) {
		c.g.m.slowConsumers.Inc()
		c.g.log.LogAttrs(c.ctx, slog.LevelWarn, "gateway: slow consumer dropped",
			slog.String("player", c.player), slog.String("remote", c.nc.RemoteAddr().String()))
	}
}

// closeWith starts closing the connection: final (if any) is queued after
// the frames already waiting (which drop discards), the writer flushes
// within maxCloseFlush, half-closes and lingers, and the session leaves the
// table at once. It reports whether this call closed the connection.
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
	// Under mu, so the writer cannot overwrite it with a longer deadline;
	// it also cuts short a write already blocked on a peer not reading.
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.closeFlush))
	c.mu.Unlock()
	c.signal()
	c.cancel()
	c.g.table.remove(c)
	return true
}

// extendRead moves the read deadline unless the connection is closing, when
// the writer owns it (see finish).
func (c *conn) extendRead(d time.Duration) {
	c.mu.Lock()
	if !c.closed {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.mu.Unlock()
}

// readLoop splits the byte stream into frames with protocol.Parse over a
// pooled buffer, so several pipelined frames cost one read, and a length
// prefix over MaxFrame is refused before any of its body is read.
func (c *conn) readLoop() {
	defer c.g.wg.Done()
	defer close(c.readDone)
	bp := c.g.rbufs.Get().(*[]byte)
	small := *bp
	buf := small
	defer func() {
		c.g.rbufs.Put(bp)
		if r := recover(); r != nil {
			c.g.log.LogAttrs(c.ctx, slog.LevelError, "gateway: session reader panic",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			f := codedError(0, apierr.Internal, "internal error")
			c.closeWith(&f, false)
		}
	}()

	c.extendRead(c.g.cfg.AuthTimeout)
	start, end := 0, 0
	for {
		got := false
		for start < end {
			f, n, err := protocol.Parse(buf[start:end], c.g.cfg.MaxFrame)
			if errors.Is(err, protocol.ErrShort) {
				break
			}
			if err != nil {
				c.brokenFraming(err)
				c.discard(small)
				return
			}
			start += n
			got = true
			c.handle(f)
			if c.closing.Load() {
				c.discard(small)
				return
			}
		}
		if got && c.authed {
			c.extendRead(c.g.cfg.IdleTimeout)
		}
		switch {
		case start == end:
			start, end = 0, 0
			if len(buf) != len(small) {
				buf = small // the large frame is done: let its buffer go
			}
		case end == len(buf):
			// The pending frame does not fit in what is left of buf.
			end = copy(buf, buf[start:end])
			start = 0
			if end == len(buf) {
				// Parse accepted the length prefix, so size <= MaxFrame.
				size := protocol.LengthSize + int(binary.BigEndian.Uint32(buf))
				big := make([]byte, size)
				copy(big, buf[:end])
				buf = big
			}
		}
		n, err := c.nc.Read(buf[end:])
		end += n
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.closing.Load() { // closed by someone else while we waited
			c.discard(small)
			return
		}
	}
}

// readFailed ends a session whose socket read failed.
func (c *conn) readFailed(err error) {
	if c.closing.Load() {
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		code, msg := apierr.IdleTimeout, "no frame within the idle timeout"
		if !c.authed {
			code, msg = apierr.AuthTimeout, "no hello within the auth timeout"
			c.g.m.authFailures.WithLabelValues(string(code)).Inc()
		} else {
			c.g.m.protocolErrors.WithLabelValues(string(code)).Inc()
		}
		f := codedError(0, code, msg)
		c.closeWith(&f, false)
		return
	}
	// EOF or a reset: the client left.
	c.closeWith(nil, false)
}

// brokenFraming answers a frame that cannot be decoded; the stream cannot
// be resynchronised, so the connection closes.
func (c *conn) brokenFraming(err error) {
	code := apierr.CodeOf(err)
	c.g.m.protocolErrors.WithLabelValues(string(code)).Inc()
	f := codedError(0, code, apierr.MessageOf(err))
	c.closeWith(&f, false)
}

// discard reads and drops input until the writer's linger deadline, EOF or
// close, so the peer's unread bytes do not turn our close into a reset.
func (c *conn) discard(buf []byte) {
	for {
		if _, err := c.nc.Read(buf); err != nil {
			return
		}
	}
}

// writeLoop hands queued frames to the socket, one write per batch: frames
// queued while a write is in progress leave together in the next one.
func (c *conn) writeLoop() {
	defer c.g.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			c.g.log.LogAttrs(c.ctx, slog.LevelError, "gateway: session writer panic",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			c.closeWith(nil, true)
			_ = c.nc.Close()
		}
	}()
	for {
		c.mu.Lock()
		for c.out == nil && !c.closed {
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		batch := c.out
		c.out, c.queued = nil, 0
		closed := c.closed
		if batch != nil && !closed {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
		}
		c.mu.Unlock()

		if batch == nil { // closed and flushed
			c.finish(true)
			return
		}
		_, err := c.nc.Write(*batch)
		c.putWriteBuf(batch)
		if err != nil {
			// A write blocked past WriteTimeout is a client that stopped
			// reading before its queue filled: a slow consumer too.
			if c.closeWith(nil, true) && errors.Is(err, os.ErrDeadlineExceeded) {
				c.g.m.slowConsumers.Inc()
				c.g.log.LogAttrs(c.ctx, slog.LevelWarn, "gateway: slow consumer dropped (write timeout)",
					slog.String("remote", c.nc.RemoteAddr().String()))
			}
			c.finish(false)
			return
		}
	}
}

func (c *conn) putWriteBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	c.g.wbufs.Put(bp)
}

// finish releases the socket. A graceful finish sends FIN after the flushed
// frames and gives the reader closeLinger to see the peer's FIN before the
// descriptor closes.
func (c *conn) finish(graceful bool) {
	if graceful {
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
			t := time.NewTimer(closeLinger)
			select {
			case <-c.readDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = c.nc.Close()
}
