package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// The epoll engine holds each connection as a small struct on one of a few
// event loops (one per core by default). An idle session owns no goroutine
// and no buffer: a loop reads every ready socket into one shared buffer,
// parses and handles the frames in place, and keeps only an incomplete
// frame's bytes. All socket I/O of a connection happens on its loop, so a
// descriptor is never written after it was closed and reused. Frames queued
// from other goroutines (handler answers, pushes) mark the connection
// dirty; the loop writes each dirty connection's queue in one write, so
// answers to pipelined requests and bursts of pushes leave together.
// Timeouts are checked by a sweep every pollTick rather than by a timer per
// connection.

const (
	pollEvents  = 256
	pollReadBuf = 64 << 10
	// maxPollTick bounds the granularity of the auth, idle, write and close
	// deadlines; pollTick is also at most a quarter of the shortest one.
	maxPollTick = 100 * time.Millisecond
	minPollTick = 2 * time.Millisecond
)

// epollAvailable reports whether this platform has the epoll engine.
const epollAvailable = true

// pollState is where a connection is in its life on the loop.
type pollState uint8

const (
	pollOpen      pollState = iota
	pollFlushing            // closed: writing its last frames until closeBy
	pollLingering           // FIN sent: reading and discarding until lingerUntil
)

// pollConn is a connection on an event loop.
type pollConn struct {
	c      *conn
	l      *loop
	remote netip.AddrPort
	fd     int // -1 once closed; loop only

	dirty atomic.Bool // queued in l.dirty

	// Loop only.
	state        pollState
	wantOut      bool   // EPOLLOUT registered
	eof          bool   // the peer sent FIN: EPOLLIN no longer registered
	pending      []byte // bytes of an incomplete frame
	wbuf         *[]byte
	woff         int
	readDeadline time.Duration // since the gateway's epoch; 0: none
	writeSince   time.Duration // when wbuf first could not be written; 0: not blocked
	closeBy      time.Duration // flushing: give up writing then
	lingerUntil  time.Duration
}

func (pc *pollConn) wake() {
	if pc.dirty.CompareAndSwap(false, true) {
		pc.l.post(pc, false)
	}
}

func (*pollConn) closed() {}

func (pc *pollConn) extendRead(d time.Duration) {
	pc.readDeadline = pc.l.g.now() + d
}

func (pc *pollConn) remoteAddr() string { return pc.remote.String() }

// pollEngine is the set of event loops of one gateway.
type pollEngine struct {
	g     *Gateway
	loops []*loop
	next  atomic.Uint32
}

// loop is one event loop: an epoll instance and the connections on it.
type loop struct {
	g    *Gateway
	e    *pollEngine
	lfd  int // listener descriptor on the accepting loop, else -1
	epfd int
	efd  int // eventfd that wakes epoll_wait
	tick time.Duration
	buf  []byte      // shared read buffer
	fds  []*pollConn // by descriptor; loop only
	live int         // connections on the loop; loop only
	evs  []unix.EpollEvent

	acceptBackoff     time.Duration
	acceptPausedUntil time.Duration // the listener is out of the epoll set until then

	mu       sync.Mutex
	incoming []*pollConn
	dirty    []*pollConn
	stopping bool
	sleeping atomic.Bool // in epoll_wait: posters must write efd
}

func (g *Gateway) now() time.Duration { return time.Since(g.epoch) }

// startEpoll starts n event loops on ln. The first loop also accepts: it
// waits on its own duplicate of the listener's descriptor, so that closing
// ln cannot hand the number to another socket under its feet.
func (g *Gateway) startEpoll(ln net.Listener, n int) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("gateway: epoll engine needs a TCP listener, not %T", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return fmt.Errorf("gateway: epoll engine: %w", err)
	}
	lfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { lfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return fmt.Errorf("gateway: epoll engine: dup listener: %w", errors.Join(err, derr))
	}
	tick := min(maxPollTick, g.cfg.AuthTimeout/4, g.cfg.IdleTimeout/4, g.cfg.WriteTimeout/4, g.closeFlush/4, closeLinger/4)
	tick = max(tick, minPollTick)
	e := &pollEngine{g: g}
	for range n {
		l, err := newLoop(g, e, tick)
		if err != nil {
			for _, l := range e.loops {
				l.closeFDs()
			}
			unix.Close(lfd)
			return err
		}
		e.loops = append(e.loops, l)
	}
	if err := e.loops[0].listen(lfd); err != nil {
		for _, l := range e.loops {
			l.closeFDs()
		}
		unix.Close(lfd)
		return err
	}
	g.epoll = e
	for _, l := range e.loops {
		g.wg.Add(1)
		go l.run()
	}
	return nil
}

func newLoop(g *Gateway, e *pollEngine, tick time.Duration) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll_create: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("gateway: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, fmt.Errorf("gateway: epoll_ctl eventfd: %w", err)
	}
	return &loop{g: g, e: e, lfd: -1, epfd: epfd, efd: efd, tick: tick, buf: make([]byte, pollReadBuf), evs: make([]unix.EpollEvent, pollEvents)}, nil
}

func (l *loop) closeFDs() {
	l.stopListening()
	unix.Close(l.efd)
	unix.Close(l.epfd)
}

// listen makes l the accepting loop for the listener descriptor lfd.
func (l *loop) listen(lfd int) error {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return fmt.Errorf("gateway: epoll_ctl listener: %w", err)
	}
	l.lfd = lfd
	return nil
}

// acceptAll accepts every pending connection and deals them to the loops
// in turn.
func (l *loop) acceptAll() {
	for {
		fd, sa, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			l.e.accept(fd, sa)
			continue
		case errors.Is(err, unix.EAGAIN):
			l.acceptBackoff = 0
			return
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		}
		// Out of descriptors (this machine allows 20,000 per process) or a
		// transient failure: keep the sessions we hold, stop listening for
		// a while (the listener would stay readable) and try again.
		l.g.m.connections.WithLabelValues(connAcceptError).Inc()
		l.acceptBackoff = min(max(2*l.acceptBackoff, 5*time.Millisecond), maxAcceptBackoff)
		l.acceptPausedUntil = l.g.now() + l.acceptBackoff
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.g.log.LogAttrs(l.g.base, slog.LevelWarn, "gateway: accept failed",
			slog.String("error", err.Error()), slog.Duration("retry_in", l.acceptBackoff))
		return
	}
}

// stopListening closes the loop's listener descriptor.
func (l *loop) stopListening() {
	if l.lfd >= 0 {
		unix.Close(l.lfd)
		l.lfd = -1
	}
}

func (e *pollEngine) accept(fd int, sa unix.Sockaddr) {
	g := e.g
	// Go sets TCP_NODELAY on its own connections; a raw descriptor needs
	// it too, or small answers wait for the peer's delayed ACK.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	l := e.loops[int(e.next.Add(1))%len(e.loops)]
	c := newConn(g)
	pc := &pollConn{c: c, l: l, fd: fd, remote: sockaddrPort(sa)}
	c.io = pc
	ok, full := g.table.add(c, g.cfg.MaxSessions)
	if !ok {
		if !full { // stopping
			unix.Close(fd)
			return
		}
		// At capacity: the loop writes the refusal and closes.
		g.m.connections.WithLabelValues(connRejected).Inc()
		f := codedError(0, apierr.Unavailable, "the gateway is at capacity: try again later")
		c.closeWith(&f, false)
	} else {
		g.m.connections.WithLabelValues(connAccepted).Inc()
	}
	pc.readDeadline = g.now() + g.cfg.AuthTimeout
	l.post(pc, true)
}

func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// stop closes the listener and tells every loop to exit once its
// connections are gone. The accepting loop goes first: it takes the
// connections already in the kernel's backlog, so they are answered rather
// than reset, then stops the others (which may still receive some of them).
func (e *pollEngine) stop() { e.loops[0].stop() }

func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.notify()
}

// post hands pc to the loop: a new connection, or one with frames to write.
func (l *loop) post(pc *pollConn, incoming bool) {
	l.mu.Lock()
	if incoming {
		l.incoming = append(l.incoming, pc)
	} else {
		l.dirty = append(l.dirty, pc)
	}
	l.mu.Unlock()
	l.notify()
}

// notify wakes the loop if it sleeps in epoll_wait; one poster writes.
func (l *loop) notify() {
	if l.sleeping.CompareAndSwap(true, false) {
		var one = [8]byte{1}
		_, _ = unix.Write(l.efd, one[:])
	}
}

func (l *loop) run() {
	defer l.g.wg.Done()
	defer l.closeFDs()
	defer func() {
		if r := recover(); r != nil {
			// A bug in the protocol logic must not leave the loop's sessions
			// hanging: log, close them all, and let clients reconnect.
			l.g.log.LogAttrs(l.g.base, slog.LevelError, "gateway: event loop panic",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			for _, pc := range l.fds {
				if pc != nil {
					pc.c.closeWith(nil, true)
					l.closeConn(pc)
				}
			}
		}
	}()
	var incoming, dirty []*pollConn
	nextSweep := l.g.now() + l.tick
	for {
		l.mu.Lock()
		incoming, l.incoming = l.incoming, incoming[:0]
		dirty, l.dirty = l.dirty, dirty[:0]
		stopping := l.stopping
		l.mu.Unlock()
		for _, pc := range incoming {
			l.add(pc)
		}
		for _, pc := range dirty {
			pc.dirty.Store(false)
			l.flush(pc)
		}
		clear(incoming)
		clear(dirty)
		if stopping {
			if l.lfd >= 0 {
				l.acceptAll()
				l.stopListening()
				for _, o := range l.e.loops[1:] {
					o.stop()
				}
				continue // add what acceptAll dealt to this loop
			}
			if l.live == 0 {
				return
			}
		}

		now := l.g.now()
		if now >= nextSweep {
			l.sweep(now)
			nextSweep = now + l.tick
			if l.lfd >= 0 && l.acceptPausedUntil != 0 && now >= l.acceptPausedUntil {
				l.acceptPausedUntil = 0
				if err := l.listen(l.lfd); err != nil {
					l.acceptPausedUntil = now + l.acceptBackoff
				}
			}
		}
		timeout := int((nextSweep - now + time.Millisecond - 1) / time.Millisecond)

		l.sleeping.Store(true)
		l.mu.Lock()
		work := len(l.incoming) > 0 || len(l.dirty) > 0 || l.stopping != stopping
		l.mu.Unlock()
		if work {
			l.sleeping.Store(false)
			continue
		}
		n, err := unix.EpollWait(l.epfd, l.evs, timeout)
		l.sleeping.Store(false)
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.g.log.LogAttrs(l.g.base, slog.LevelError, "gateway: epoll_wait", slog.String("error", err.Error()))
			time.Sleep(l.tick)
			continue
		}
		for i := range max(n, 0) {
			ev := &l.evs[i]
			fd := int(ev.Fd)
			switch fd {
			case l.efd:
				var b [8]byte
				_, _ = unix.Read(l.efd, b[:])
				continue
			case l.lfd:
				l.acceptAll()
				continue
			}
			if fd >= len(l.fds) || l.fds[fd] == nil {
				continue
			}
			pc := l.fds[fd]
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.read(pc)
			}
			if pc.fd >= 0 && ev.Events&unix.EPOLLOUT != 0 {
				l.flush(pc)
			}
		}
	}
}

// add registers a new connection's descriptor.
func (l *loop) add(pc *pollConn) {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, pc.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(pc.fd)}); err != nil {
		l.g.log.LogAttrs(l.g.base, slog.LevelError, "gateway: epoll_ctl add", slog.String("error", err.Error()))
		pc.c.closeWith(nil, true)
		unix.Close(pc.fd)
		pc.fd = -1
		return
	}
	for pc.fd >= len(l.fds) {
		l.fds = append(l.fds, make([]*pollConn, max(len(l.fds), 64))...)
	}
	l.fds[pc.fd] = pc
	l.live++
	// A refused connection arrives closed with its answer queued.
	l.flush(pc)
}

// read takes what the socket has and runs the complete frames in it.
func (l *loop) read(pc *pollConn) {
	c := pc.c
	n, err := unix.Read(pc.fd, l.buf)
	switch {
	case n > 0:
	case err == nil: // FIN
		pc.eof = true
		if pc.state == pollLingering {
			l.closeConn(pc)
			return
		}
		// The client is done sending; what is queued still goes out,
		// then our FIN.
		c.closeWith(nil, false)
		l.setEvents(pc)
		l.flush(pc)
		return
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return
	default: // a reset: nothing more can be delivered
		c.closeWith(nil, true)
		l.closeConn(pc)
		return
	}
	if pc.state != pollOpen || c.closing.Load() {
		return // discarding until the peer's FIN or the linger ends
	}
	data := l.buf[:n]
	if pc.pending != nil {
		pc.pending = append(pc.pending, data...)
		data = pc.pending
	}
	got := false
	off := 0
	for off < len(data) {
		f, k, err := protocol.Parse(data[off:], l.g.cfg.MaxFrame)
		if errors.Is(err, protocol.ErrShort) {
			break
		}
		if err != nil {
			c.brokenFraming(err)
			pc.pending = nil
			return
		}
		off += k
		got = true
		c.handle(f)
		if c.closing.Load() {
			pc.pending = nil
			return
		}
	}
	switch {
	case off == len(data):
		pc.pending = nil
	case pc.pending != nil:
		pc.pending = pc.pending[:copy(pc.pending, data[off:])]
	default:
		pc.pending = append(make([]byte, 0, len(data)-off), data[off:]...)
	}
	if got && c.authed {
		c.extendRead(l.g.cfg.IdleTimeout)
	}
}

// flush writes the connection's queued frames and moves a closed one on
// towards its FIN.
func (l *loop) flush(pc *pollConn) {
	if pc.fd < 0 || pc.fd >= len(l.fds) || l.fds[pc.fd] != pc {
		return // closed, or posted dirty before its registration
	}
	c := pc.c
	for {
		if pc.wbuf == nil {
			var closed bool
			pc.wbuf, closed = c.takeOut()
			pc.woff = 0
			if closed && pc.state == pollOpen {
				pc.state = pollFlushing
				pc.closeBy = l.g.now() + l.g.closeFlush
			}
			if pc.wbuf == nil {
				break
			}
		}
		b := *pc.wbuf
		n, err := unix.Write(pc.fd, b[pc.woff:])
		if n > 0 {
			pc.woff += n
		}
		if pc.woff == len(b) {
			l.g.putWriteBuf(pc.wbuf)
			pc.wbuf, pc.writeSince = nil, 0
			continue
		}
		if err == nil || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			// The socket is full: wait for EPOLLOUT. Frames queued meanwhile
			// stay in c.out, where OutboundQueue bounds them.
			if pc.writeSince == 0 {
				pc.writeSince = l.g.now()
			}
			l.wantWrite(pc, true)
			return
		}
		// The peer is gone.
		c.closeWith(nil, true)
		l.closeConn(pc)
		return
	}
	l.wantWrite(pc, false)
	if pc.state == pollFlushing {
		// Everything is written: FIN, then linger for the peer's.
		if unix.Shutdown(pc.fd, unix.SHUT_WR) != nil {
			l.closeConn(pc)
			return
		}
		if pc.eof {
			l.closeConn(pc) // the peer's FIN came first: nothing to wait for
			return
		}
		pc.state = pollLingering
		pc.lingerUntil = l.g.now() + closeLinger
	}
}

func (l *loop) wantWrite(pc *pollConn, on bool) {
	if pc.wantOut != on {
		pc.wantOut = on
		l.setEvents(pc)
	}
}

// setEvents registers the events pc waits for. A socket at EOF stays
// readable, so after the peer's FIN only EPOLLOUT (when wanted) is left.
func (l *loop) setEvents(pc *pollConn) {
	var ev uint32
	if !pc.eof {
		ev = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if pc.wantOut {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, pc.fd, &unix.EpollEvent{Events: ev, Fd: int32(pc.fd)})
}

// sweep enforces the deadlines of the loop's connections.
func (l *loop) sweep(now time.Duration) {
	for _, pc := range l.fds {
		if pc == nil {
			continue
		}
		c := pc.c
		switch pc.state {
		case pollLingering:
			if now >= pc.lingerUntil {
				l.closeConn(pc)
			}
			continue
		case pollFlushing:
			if now >= pc.closeBy {
				l.closeConn(pc) // a peer that does not read gets cut off
			}
			continue
		}
		if pc.writeSince != 0 && now-pc.writeSince >= l.g.cfg.WriteTimeout {
			// A client that stopped reading before its queue filled: a
			// slow consumer too.
			if c.closeWith(nil, true) {
				c.slowConsumer("write timeout")
			}
			l.closeConn(pc)
			continue
		}
		if pc.readDeadline != 0 && now >= pc.readDeadline && !c.closing.Load() {
			c.readTimedOut()
			l.flush(pc)
		}
	}
}

// closeConn releases the descriptor. The connection has left the table
// (closeWith) or never entered it.
func (l *loop) closeConn(pc *pollConn) {
	if pc.fd < 0 {
		return
	}
	l.fds[pc.fd] = nil
	unix.Close(pc.fd) // also removes it from the epoll set
	pc.fd = -1
	l.live--
	if pc.wbuf != nil {
		l.g.putWriteBuf(pc.wbuf)
		pc.wbuf = nil
	}
	pc.pending = nil
}
