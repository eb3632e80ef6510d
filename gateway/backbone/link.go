package backbone

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults shared by both ends.
const (
	defaultHandshakeTimeout = 5 * time.Second
	defaultWriteTimeout     = 10 * time.Second
	// defaultMaxQueue bounds the bytes queued for one link's writer. Session
	// data beyond it waits (back-pressure on the player's own connection);
	// control messages never do, and are small.
	defaultMaxQueue = 4 << 20
	// maxSpare keeps one huge batch from pinning memory as the next buffer.
	maxSpare = 1 << 20
)

// ErrLinkLost is what a session sees when its link fails under it.
var ErrLinkLost = errors.New("backbone: link lost")

// errLinkClosed ends a link closed on purpose.
var errLinkClosed = errors.New("backbone: link closed")

// link is one backbone connection, either end: a bounded outbound queue
// that one writer goroutine drains, so messages queued while a write is in
// progress leave together in the next one.
type link struct {
	nc           net.Conn
	maxQueue     int
	writeTimeout time.Duration

	mu       sync.Mutex
	out      []byte        // encoded messages for the writer
	spare    []byte        // the writer's previous batch, reused as out
	space    chan struct{} // closed (and replaced) each time the writer takes out
	closing  bool          // flush what is queued, then close
	err      error         // why the link ended; set once, with done closed
	wake     chan struct{} // capacity 1: there is work for the writer
	done     chan struct{}
	lastRecv atomic.Int64 // UnixNano of the last message received
}

func newLink(nc net.Conn, maxQueue int, writeTimeout time.Duration) *link {
	l := &link{
		nc: nc, maxQueue: maxQueue, writeTimeout: writeTimeout,
		space: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	l.touch()
	return l
}

func (l *link) touch() { l.lastRecv.Store(time.Now().UnixNano()) }

// silent is how long nothing has arrived.
func (l *link) silent() time.Duration {
	return time.Duration(time.Now().UnixNano() - l.lastRecv.Load())
}

// Err is why the link ended, nil while it runs.
func (l *link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// send queues m. A blocking send waits while the queue is over its bound:
// until the writer makes room, the link fails, deadline or abort is
// closed (os.ErrDeadlineExceeded, net.ErrClosed), or timeout passes when
// it is positive. A non-blocking send always queues.
func (l *link) send(m Message, block bool, deadline, abort <-chan struct{}, timeout time.Duration) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		l.mu.Lock()
		if l.err != nil || l.closing {
			err := l.err
			l.mu.Unlock()
			if err == nil {
				err = errLinkClosed
			}
			return err
		}
		if !block || len(l.out) < l.maxQueue {
			l.out = Append(l.out, m)
			l.mu.Unlock()
			l.signal()
			return nil
		}
		space := l.space
		l.mu.Unlock()
		var expired <-chan time.Time
		if timeout > 0 {
			if timer == nil {
				timer = time.NewTimer(timeout)
			}
			expired = timer.C
		}
		select {
		case <-space:
		case <-l.done:
		case <-deadline:
			return os.ErrDeadlineExceeded
		case <-expired:
			return os.ErrDeadlineExceeded
		case <-abort:
			return net.ErrClosed
		}
	}
}

// sendData queues p as DATA messages of session sid, split at MaxData. It
// returns how many bytes of p were queued.
func (l *link) sendData(sid uint32, p []byte, deadline, abort <-chan struct{}, timeout time.Duration) (int, error) {
	n := 0
	for n < len(p) {
		end := min(len(p), n+MaxData)
		if err := l.send(Message{Kind: KindData, Session: sid, Body: p[n:end]}, true, deadline, abort, timeout); err != nil {
			return n, err
		}
		n = end
	}
	return n, nil
}

// writeLoop hands queued messages to the socket until the link fails, or
// until it is closing and everything queued is written.
func (l *link) writeLoop() {
	for {
		l.mu.Lock()
		for len(l.out) == 0 && l.err == nil && !l.closing {
			l.mu.Unlock()
			select {
			case <-l.wake:
			case <-l.done:
			}
			l.mu.Lock()
		}
		if l.err != nil || len(l.out) == 0 { // failed, or closing and flushed
			l.mu.Unlock()
			l.fail(errLinkClosed)
			return
		}
		batch := l.out
		l.out, l.spare = l.spare[:0], nil
		close(l.space)
		l.space = make(chan struct{})
		l.mu.Unlock()

		_ = l.nc.SetWriteDeadline(time.Now().Add(l.writeTimeout))
		if _, err := l.nc.Write(batch); err != nil {
			l.fail(err)
			return
		}
		if cap(batch) <= maxSpare {
			l.mu.Lock()
			l.spare = batch[:0]
			l.mu.Unlock()
		}
	}
}

// fail ends the link with err (the first cause wins) and closes the socket,
// which ends the reader too.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	l.out = nil
	close(l.done)
	l.mu.Unlock()
	_ = l.nc.Close()
}

// closeAfterFlush stops accepting messages, lets the writer flush what is
// queued, and closes the link; after timeout it closes anyway.
func (l *link) closeAfterFlush(timeout time.Duration) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.signal()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		l.fail(errLinkClosed)
	}
}

// watch fails the link once nothing has arrived for deadAfter, checking
// every interval; with ping set it also sends a Ping each interval, which
// the peer answers, so a healthy link is never silent.
func (l *link) watch(interval, deadAfter time.Duration, ping bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		if l.silent() > deadAfter {
			l.fail(ErrLinkLost)
			return
		}
		if ping {
			var body [8]byte
			_ = l.send(Message{Kind: KindPing, Body: body[:]}, false, nil, nil, 0)
		}
	}
}
