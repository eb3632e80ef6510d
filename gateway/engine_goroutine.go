package gateway

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// goConn is the goroutine engine: a reader and a writer goroutine per
// connection on a net.Conn. It serves any net.Conn (the edge backbone's
// streams as well as TCP) and every platform; on Linux the epoll engine
// holds idle TCP sessions for a fraction of its memory.
type goConn struct {
	c        *conn
	nc       net.Conn
	wakeCh   chan struct{} // capacity 1: tells the writer there is work
	readDone chan struct{} // closed when the reader returns
}

// serveConn starts the goroutine engine on nc for c.
func (g *Gateway) serveConn(c *conn, nc net.Conn) {
	gc := &goConn{c: c, nc: nc, wakeCh: make(chan struct{}, 1), readDone: make(chan struct{})}
	c.io = gc
	g.wg.Add(2)
	go gc.readLoop()
	go gc.writeLoop()
}

func (gc *goConn) wake() {
	select {
	case gc.wakeCh <- struct{}{}:
	default:
	}
}

// closed sets the flush deadline: under c.mu, so the writer cannot
// overwrite it with a longer one, and it also cuts short a write already
// blocked on a peer not reading.
func (gc *goConn) closed() {
	_ = gc.nc.SetWriteDeadline(time.Now().Add(gc.c.g.closeFlush))
}

// extendRead moves the read deadline unless the connection is closing,
// when the writer owns it (see finish).
func (gc *goConn) extendRead(d time.Duration) {
	c := gc.c
	c.mu.Lock()
	if !c.closed {
		_ = gc.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.mu.Unlock()
}

func (gc *goConn) remoteAddr() string { return gc.nc.RemoteAddr().String() }

// readLoop splits the byte stream into frames with protocol.Parse over a
// pooled buffer, so several pipelined frames cost one read, and a length
// prefix over MaxFrame is refused before any of its body is read.
func (gc *goConn) readLoop() {
	c := gc.c
	defer c.g.wg.Done()
	defer close(gc.readDone)
	bp := c.g.rbufs.Get().(*[]byte)
	small := *bp
	buf := small
	defer func() {
		c.g.rbufs.Put(bp)
		if r := recover(); r != nil {
			c.g.log.LogAttrs(c.g.base, slog.LevelError, "gateway: session reader panic",
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
				gc.discard(small)
				return
			}
			start += n
			got = true
			c.handle(f)
			if c.closing.Load() {
				gc.discard(small)
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
		n, err := gc.nc.Read(buf[end:])
		end += n
		if err != nil {
			gc.readFailed(err)
			return
		}
		if c.closing.Load() { // closed by someone else while we waited
			gc.discard(small)
			return
		}
	}
}

// readFailed ends a session whose socket read failed.
func (gc *goConn) readFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		gc.c.readTimedOut()
		return
	}
	// EOF or a reset: the client left.
	gc.c.closeWith(nil, false)
}

// discard reads and drops input until the writer's linger deadline, EOF or
// close, so the peer's unread bytes do not turn our close into a reset.
func (gc *goConn) discard(buf []byte) {
	for {
		if _, err := gc.nc.Read(buf); err != nil {
			return
		}
	}
}

// writeLoop hands queued frames to the socket, one write per batch: frames
// queued while a write is in progress leave together in the next one.
func (gc *goConn) writeLoop() {
	c := gc.c
	defer c.g.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			c.g.log.LogAttrs(c.g.base, slog.LevelError, "gateway: session writer panic",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			c.closeWith(nil, true)
			_ = gc.nc.Close()
		}
	}()
	for {
		c.mu.Lock()
		for c.out == nil && !c.closed {
			c.mu.Unlock()
			<-gc.wakeCh
			c.mu.Lock()
		}
		batch := c.out
		c.out, c.queued = nil, 0
		closed := c.closed
		if batch != nil && !closed {
			_ = gc.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
		}
		c.mu.Unlock()

		if batch == nil { // closed and flushed
			gc.finish(true)
			return
		}
		_, err := gc.nc.Write(*batch)
		c.g.putWriteBuf(batch)
		if err != nil {
			// A write blocked past WriteTimeout is a client that stopped
			// reading before its queue filled: a slow consumer too.
			if c.closeWith(nil, true) && errors.Is(err, os.ErrDeadlineExceeded) {
				c.slowConsumer("write timeout")
			}
			gc.finish(false)
			return
		}
	}
}

// finish releases the socket. A graceful finish sends FIN after the flushed
// frames and gives the reader closeLinger to see the peer's FIN before the
// descriptor closes.
func (gc *goConn) finish(graceful bool) {
	if graceful {
		if cw, ok := gc.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			_ = gc.nc.SetReadDeadline(time.Now().Add(closeLinger))
			t := time.NewTimer(closeLinger)
			select {
			case <-gc.readDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = gc.nc.Close()
}
