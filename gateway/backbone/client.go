package backbone

import (
	"context"
	"encoding/binary"
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

// Client defaults.
const defaultKeepalive = time.Second

// ClientConfig configures the edge's end of a link. Zero values take
// defaults.
type ClientConfig struct {
	Edge  string // the edge's id, for the gateway's logs
	Token string // server credential with scope "edge"; required

	HandshakeTimeout time.Duration // default 5s
	// Keepalive is how often the client pings; DeadAfter is the silence
	// after which it declares the link dead, so a gateway that vanished
	// without a reset (a host lost, a partition) is noticed quickly.
	// Defaults 1s and 3 × Keepalive; Keepalive is capped at a third of the
	// gateway's idle timeout.
	Keepalive    time.Duration
	DeadAfter    time.Duration
	WriteTimeout time.Duration // one socket write, and how long Send waits for room; default 10s
	MaxQueue     int           // bytes queued before Send waits; default 4 MiB
}

// Handler receives one session's traffic from the gateway.
type Handler interface {
	// Data delivers bytes of the session's frame stream, in order. It runs
	// on the link's reader goroutine, so it must not block, and b is valid
	// only during the call.
	Data(b []byte)
	// Closed says the session ended, once: lost is false when the gateway
	// closed it (after its last Data), true when the link failed under it.
	// It is not called after ClientStream.Close.
	Closed(lost bool)
}

// Client is the edge's end of one link to a gateway.
type Client struct {
	cfg     ClientConfig
	l       *link
	welcome Welcome
	goAway  atomic.Pointer[string]

	mu      sync.Mutex
	streams map[uint32]*ClientStream
	next    uint32
	ended   bool

	readDone chan struct{}
}

// Dial connects to a gateway's backbone address and authenticates. ctx
// bounds the connect and the handshake.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("backbone: ClientConfig.Token is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.HandshakeTimeout, defaultHandshakeTimeout)
	def(&cfg.Keepalive, defaultKeepalive)
	def(&cfg.WriteTimeout, defaultWriteTimeout)
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = defaultMaxQueue
	}
	// Heartbeats find dead gateways; kernel keepalives would only add timers.
	d := net.Dialer{KeepAlive: -1}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, apierr.Wrap("backbone.Dial", apierr.Unavailable, "cannot reach the gateway backbone at "+addr, err)
	}
	deadline := time.Now().Add(cfg.HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	r := NewReader(nc)
	w, err := handshake(nc, r, cfg)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("backbone: dial %s: %w", addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	if w.IdleTimeoutMS > 0 {
		cfg.Keepalive = min(cfg.Keepalive, time.Duration(w.IdleTimeoutMS)*time.Millisecond/3)
	}
	def(&cfg.DeadAfter, 3*cfg.Keepalive)
	c := &Client{
		cfg: cfg, l: newLink(nc, cfg.MaxQueue, cfg.WriteTimeout), welcome: w,
		streams: map[uint32]*ClientStream{}, readDone: make(chan struct{}),
	}
	go c.l.writeLoop()
	go c.l.watch(cfg.Keepalive, cfg.DeadAfter, true)
	go c.readLoop(r)
	return c, nil
}

func handshake(nc net.Conn, r *Reader, cfg ClientConfig) (Welcome, error) {
	hello, _ := json.Marshal(Hello{Version: Version, Token: cfg.Token, Edge: cfg.Edge})
	if _, err := nc.Write(Append(nil, Message{Kind: KindHello, Body: hello})); err != nil {
		return Welcome{}, apierr.Wrap("backbone.Dial", apierr.Unavailable, "send hello", err)
	}
	m, err := r.Next()
	if err != nil {
		return Welcome{}, apierr.Wrap("backbone.Dial", apierr.Unavailable, "no welcome from the gateway", err)
	}
	switch m.Kind {
	case KindWelcome:
		var w Welcome
		if err := json.Unmarshal(m.Body, &w); err != nil {
			return Welcome{}, apierr.Wrap("backbone.Dial", apierr.Internal, "malformed welcome", err)
		}
		return w, nil
	case KindError:
		return Welcome{}, errorFrom(m.Body)
	default:
		return Welcome{}, apierr.New(apierr.Internal, "unexpected %s instead of welcome", m.Kind)
	}
}

// errorFrom turns an ERROR body into an *apierr.Error with its code.
func errorFrom(body []byte) error {
	var eb protocol.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || !apierr.Code(eb.Code).Known() {
		return apierr.New(apierr.Internal, "the gateway refused the link: %q", body)
	}
	return apierr.New(apierr.Code(eb.Code), "the gateway refused the link: %s", eb.Message)
}

// Welcome is the gateway's answer to the handshake.
func (c *Client) Welcome() Welcome { return c.welcome }

// Done is closed when the link has ended.
func (c *Client) Done() <-chan struct{} { return c.l.done }

// Err is why the link ended, nil while it runs.
func (c *Client) Err() error { return c.l.Err() }

// GoAway returns the reason the gateway gave for wanting no new sessions,
// "" when it has not.
func (c *Client) GoAway() string {
	if p := c.goAway.Load(); p != nil {
		return *p
	}
	return ""
}

// Usable reports whether new sessions may be opened on the link.
func (c *Client) Usable() bool {
	select {
	case <-c.l.done:
		return false
	default:
		return c.GoAway() == ""
	}
}

// Sessions is the number of open sessions.
func (c *Client) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// Close ends the link; every open session's Handler sees Closed(true).
func (c *Client) Close() error {
	c.l.fail(errLinkClosed)
	<-c.readDone
	return nil
}

// ClientStream is one session on a link.
type ClientStream struct {
	c      *Client
	id     uint32
	h      Handler
	closed atomic.Bool

	mu     sync.Mutex
	credit int           // bytes the gateway still accepts (flow control)
	more   chan struct{} // capacity 1: credit grew, or the stream ended
}

func (s *ClientStream) wake() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// Open starts a session whose traffic from the gateway goes to h.
func (c *Client) Open(o Open, h Handler) (*ClientStream, error) {
	if reason := c.GoAway(); reason != "" {
		return nil, apierr.New(apierr.Draining, "the gateway takes no new sessions on this link (%s)", reason)
	}
	body, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("backbone: open: %w", err)
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return nil, apierr.Wrap("backbone.Open", apierr.Unavailable, "the backbone link is down", c.l.Err())
	}
	// Ids count up per link; one still in use after a wrap is skipped.
	for {
		c.next++
		if _, used := c.streams[c.next]; c.next != 0 && !used {
			break
		}
	}
	s := &ClientStream{c: c, id: c.next, h: h, credit: c.welcome.Window, more: make(chan struct{}, 1)}
	c.streams[s.id] = s
	c.mu.Unlock()
	if err := c.l.send(Message{Kind: KindOpen, Session: s.id, Body: body}, false, nil, nil, 0); err != nil {
		c.forget(s)
		return nil, apierr.Wrap("backbone.Open", apierr.Unavailable, "the backbone link is down", err)
	}
	return s, nil
}

// ID is the session's id on its link.
func (s *ClientStream) ID() uint32 { return s.id }

// Send queues bytes of the session's frame stream for the gateway. It
// waits while the session has no credit left (the gateway has not read
// what it has) or the link's queue is full, up to the write timeout, so a
// player who sends faster than its gateway reads is slowed down, not
// buffered without bound.
func (s *ClientStream) Send(p []byte) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for len(p) > 0 {
		if s.closed.Load() {
			return net.ErrClosed
		}
		s.mu.Lock()
		n := min(len(p), s.credit)
		s.credit -= n
		s.mu.Unlock()
		if n == 0 {
			if timer == nil {
				timer = time.NewTimer(s.c.cfg.WriteTimeout)
			}
			select {
			case <-s.more:
			case <-s.c.l.done:
				return apierr.Wrap("backbone.Send", apierr.Unavailable, "the backbone link is down", s.c.l.Err())
			case <-timer.C:
				return os.ErrDeadlineExceeded
			}
			continue
		}
		if _, err := s.c.l.sendData(s.id, p[:n], nil, nil, s.c.cfg.WriteTimeout); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Close ends the session from the edge's side (CLOSE) and forgets it:
// nothing more reaches its Handler.
func (s *ClientStream) Close(reason string) {
	if s.closed.Swap(true) {
		return
	}
	s.wake()
	s.c.forget(s)
	var body []byte
	if reason != "" {
		body, _ = json.Marshal(Close{Reason: reason})
	}
	_ = s.c.l.send(Message{Kind: KindClose, Session: s.id, Body: body}, false, nil, nil, 0)
}

func (c *Client) forget(s *ClientStream) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	c.mu.Unlock()
}

func (c *Client) stream(id uint32) *ClientStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *Client) readLoop(r *Reader) {
	defer close(c.readDone)
	err := c.read(r)
	c.l.fail(err)
	c.mu.Lock()
	c.ended = true
	streams := make([]*ClientStream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	clear(c.streams)
	c.mu.Unlock()
	for _, s := range streams {
		if !s.closed.Swap(true) {
			s.h.Closed(true)
		}
	}
}

func (c *Client) read(r *Reader) error {
	for {
		m, err := r.Next()
		if err != nil {
			return err
		}
		c.l.touch()
		switch m.Kind {
		case KindData:
			if s := c.stream(m.Session); s != nil && !s.closed.Load() {
				s.h.Data(m.Body)
			}
		case KindClose:
			if s := c.stream(m.Session); s != nil {
				c.forget(s)
				if !s.closed.Swap(true) {
					s.wake()
					s.h.Closed(false)
				}
			}
		case KindWindow:
			if len(m.Body) != 4 {
				return apierr.New(apierr.BadFrame, "window body of %d bytes, want 4", len(m.Body))
			}
			if s := c.stream(m.Session); s != nil {
				s.mu.Lock()
				s.credit += int(binary.BigEndian.Uint32(m.Body))
				s.mu.Unlock()
				s.wake()
			}
		case KindPing:
			_ = c.l.send(Message{Kind: KindPong, Body: m.Body}, false, nil, nil, 0)
		case KindPong:
		case KindGoAway:
			var g GoAway
			_ = json.Unmarshal(m.Body, &g)
			if g.Reason == "" {
				g.Reason = "unspecified"
			}
			c.goAway.Store(&g.Reason)
		case KindError:
			return errorFrom(m.Body)
		default:
			return apierr.New(apierr.BadFrame, "unexpected %s from a gateway", m.Kind)
		}
	}
}
