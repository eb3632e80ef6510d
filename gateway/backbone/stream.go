package backbone

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// streamKeepBuf is the inbound buffer a drained stream keeps; a larger one
// (a big frame passed through) is let go, so idle sessions hold no memory
// beyond it.
const streamKeepBuf = 4 << 10

// errOverflow ends a stream whose reader fell behind its inbound bound.
var errOverflow = errors.New("backbone: session input overflowed its buffer")

// Stream is one player session opened by an edge, as the gateway sees it:
// a net.Conn whose bytes are the session's frame stream. Reads return what
// the edge relayed from the player; writes go to the edge as DATA; Close
// and CloseWrite send CLOSE. Deadlines behave as on a TCP connection, so
// the gateway's auth and idle timeouts and its write timeout work
// unchanged.
type Stream struct {
	sl     *serverLink
	id     uint32
	remote net.Addr

	mu       sync.Mutex
	buf      []byte // inbound bytes buf[r:w]
	r, w     int
	window   int           // credit granted to the edge; also the most it may have buffered here
	consumed int           // bytes read since the last WINDOW grant
	rerr     error         // what Read returns once buf is drained
	readable chan struct{} // capacity 1: buf grew or rerr was set
	wclosed  bool          // CLOSE sent
	closed   bool
	closedCh chan struct{} // closed by Close: wakes a blocked Write
	rdl, wdl deadline
}

var _ net.Conn = (*Stream)(nil)

func newStream(sl *serverLink, id uint32, remote net.Addr, window int) *Stream {
	return &Stream{
		sl: sl, id: id, remote: remote, window: window,
		readable: make(chan struct{}, 1), closedCh: make(chan struct{}),
		rdl: makeDeadline(), wdl: makeDeadline(),
	}
}

func (s *Stream) signal() {
	select {
	case s.readable <- struct{}{}:
	default:
	}
}

// deliver appends DATA from the edge. It reports false when the edge sent
// more than its credit allows.
func (s *Stream) deliver(p []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.rerr != nil {
		return true // late data for a session that is ending: dropped
	}
	if s.w-s.r+len(p) > s.window {
		return false
	}
	if s.w+len(p) > len(s.buf) {
		n := copy(s.buf, s.buf[s.r:s.w])
		s.r, s.w = 0, n
		if n+len(p) > len(s.buf) {
			nb := make([]byte, max(2*len(s.buf), n+len(p), 512))
			copy(nb, s.buf[:n])
			s.buf = nb
		}
	}
	s.w += copy(s.buf[s.w:], p)
	s.signal()
	return true
}

// end sets what Read returns after the buffered bytes: io.EOF after the
// edge's CLOSE, ErrLinkLost or errOverflow otherwise. The first cause wins.
func (s *Stream) end(err error) {
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	if !errors.Is(err, io.EOF) {
		s.wclosed = true // nothing more can or should reach the edge
	}
	s.mu.Unlock()
	s.signal()
}

// Read reads the session's bytes from the player.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if s.w > s.r {
			n := copy(p, s.buf[s.r:s.w])
			s.r += n
			if s.r == s.w {
				s.r, s.w = 0, 0
				if len(s.buf) > streamKeepBuf {
					s.buf = nil
				}
			}
			// Credit goes back in batches of half the window: one small
			// message per half window read, and the edge never stalls
			// while the reader keeps up.
			var grant int
			if s.consumed += n; s.consumed >= s.window/2 && s.rerr == nil {
				grant, s.consumed = s.consumed, 0
			}
			s.mu.Unlock()
			if grant > 0 {
				s.sl.grant(s.id, grant)
			}
			return n, nil
		}
		if s.rerr != nil {
			err := s.rerr
			s.mu.Unlock()
			return 0, err
		}
		expired := s.rdl.wait()
		s.mu.Unlock()
		select {
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		default:
		}
		select {
		case <-s.readable:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write sends p to the edge. It waits while the link's queue is full, up
// to the write deadline.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed || s.wclosed {
		s.mu.Unlock()
		return 0, net.ErrClosed
	}
	expired := s.wdl.wait()
	s.mu.Unlock()
	select {
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	default:
	}
	return s.sl.l.sendData(s.id, p, expired, s.closedCh, 0)
}

// CloseWrite tells the edge the gateway sends nothing more on this session
// (CLOSE). Reads continue until the edge's own CLOSE, which is its answer.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.wclosed || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.wclosed = true
	s.mu.Unlock()
	return s.sl.sendClose(s.id, "")
}

// Close ends the session: CLOSE if not yet sent, and the stream is
// forgotten, so anything the edge still sends for it is dropped.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sendClose := !s.wclosed
	s.wclosed = true
	close(s.closedCh)
	s.buf = nil
	s.mu.Unlock()
	s.signal()
	s.sl.remove(s)
	if sendClose {
		_ = s.sl.sendClose(s.id, "")
	}
	return nil
}

// LocalAddr is the gateway's end of the link.
func (s *Stream) LocalAddr() net.Addr { return s.sl.l.nc.LocalAddr() }

// RemoteAddr is the player's address as the edge reported it, else the
// edge's.
func (s *Stream) RemoteAddr() net.Addr { return s.remote }

func (s *Stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

func (s *Stream) SetReadDeadline(t time.Time) error  { s.rdl.set(t); return nil }
func (s *Stream) SetWriteDeadline(t time.Time) error { s.wdl.set(t); return nil }

// deadline is a settable deadline whose channel closes when it passes,
// the way net.Pipe implements deadlines.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set moves the deadline; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until it closed cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed once the deadline has passed.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
