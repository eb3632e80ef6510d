package backbone

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Server defaults.
const (
	defaultIdleTimeout = 30 * time.Second
	// closeFlush bounds how long a closing link gets to flush.
	closeFlush = time.Second
)

// Scope is the scope a server credential (audience livecell:server) needs
// to open a backbone link.
const Scope = "edge"

// Authenticator checks an edge's credential (Hello.Token) and returns the
// edge's name. Errors should be *apierr.Error (invalid_token,
// token_expired, permission_denied); their code goes back to the edge.
type Authenticator interface {
	AuthenticateEdge(ctx context.Context, token string) (edge string, err error)
}

// ServerConfig configures the gateway's end. Zero values take defaults.
type ServerConfig struct {
	Cell     string // announced in Welcome; required
	MaxFrame int    // the gateway's maximum frame size, announced in Welcome

	HandshakeTimeout time.Duration // Hello must arrive within it; default 5s
	IdleTimeout      time.Duration // a link silent this long is dead; default 30s
	WriteTimeout     time.Duration // one socket write; default 10s
	MaxQueue         int           // bytes queued per link before session writes wait; default 4 MiB
	// Window is each session's credit: the bytes an edge may have sent on
	// it that the gateway has not read yet (flow control, announced in
	// Welcome). An edge that sends more is broken and the session is
	// reset. Default 4 × MaxFrame, at least MaxFrame.
	Window int
}

// ServerDeps are the Server's collaborators.
type ServerDeps struct {
	Logger  *slog.Logger          // nil discards
	Metrics prometheus.Registerer // nil keeps metrics private
	Auth    Authenticator         // required
	// Accept takes every session an edge opens. It must not block: the
	// gateway starts serving the stream and returns.
	Accept func(net.Conn)
}

// Server accepts edge links and the sessions they carry.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	auth   Authenticator
	accept func(net.Conn)
	m      *serverMetrics

	mu     sync.Mutex
	ln     net.Listener
	links  map[*serverLink]struct{}
	goAway string // set by GoAway: every link, present and future, is told
	closed bool
	wg     sync.WaitGroup
}

// NewServer validates cfg.
func NewServer(cfg ServerConfig, deps ServerDeps) (*Server, error) {
	if cfg.Cell == "" {
		return nil, errors.New("backbone: ServerConfig.Cell is required")
	}
	if deps.Auth == nil || deps.Accept == nil {
		return nil, errors.New("backbone: ServerDeps.Auth and Accept are required")
	}
	cfg.MaxFrame = protocol.ClampMaxFrame(cfg.MaxFrame)
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.HandshakeTimeout, defaultHandshakeTimeout)
	def(&cfg.IdleTimeout, defaultIdleTimeout)
	def(&cfg.WriteTimeout, defaultWriteTimeout)
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = defaultMaxQueue
	}
	if cfg.Window <= 0 {
		cfg.Window = 4 * cfg.MaxFrame
	}
	cfg.Window = max(cfg.Window, cfg.MaxFrame)
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newServerMetrics(reg)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, auth: deps.Auth, accept: deps.Accept, m: m, links: map[*serverLink]struct{}{}}, nil
}

// Serve accepts links on ln in the background until GoAway or Shutdown.
func (s *Server) Serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop(ln)
}

// Addr is the listening address, nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Links is the number of authenticated edge links.
func (s *Server) Links() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.links)
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or a transient failure: keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("backbone: accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		s.wg.Add(1)
		go s.serveLink(nc)
	}
}

// serverLink is one edge's link.
type serverLink struct {
	s    *Server
	l    *link
	edge string

	mu      sync.Mutex
	streams map[uint32]*Stream
}

func (s *Server) serveLink(nc net.Conn) {
	defer s.wg.Done()
	r := NewReader(nc)
	edge, err := s.handshake(nc, r)
	if err != nil {
		s.m.links.WithLabelValues(string(apierr.CodeOf(err))).Inc()
		s.log.Info("backbone: edge refused", "remote", nc.RemoteAddr().String(), "code", string(apierr.CodeOf(err)), "error", err.Error())
		body, _ := json.Marshal(protocol.ErrorBody{Code: string(apierr.CodeOf(err)), Message: apierr.MessageOf(err)})
		_ = nc.SetWriteDeadline(time.Now().Add(closeFlush))
		_, _ = nc.Write(Append(nil, Message{Kind: KindError, Body: body}))
		_ = nc.Close()
		return
	}
	sl := &serverLink{s: s, l: newLink(nc, s.cfg.MaxQueue, s.cfg.WriteTimeout), edge: edge, streams: map[uint32]*Stream{}}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.links[sl] = struct{}{}
	goAway := s.goAway
	s.mu.Unlock()
	s.m.links.WithLabelValues("ok").Inc()
	s.m.open.Inc()
	s.log.Info("backbone: edge linked", "edge", edge, "remote", nc.RemoteAddr().String())

	welcome, _ := json.Marshal(Welcome{Cell: s.cfg.Cell, MaxFrame: s.cfg.MaxFrame, IdleTimeoutMS: s.cfg.IdleTimeout.Milliseconds(), Window: s.cfg.Window})
	_ = sl.l.send(Message{Kind: KindWelcome, Body: welcome}, false, nil, nil, 0)
	if goAway != "" {
		sl.goAway(goAway)
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); sl.l.writeLoop() }()
	go func() { defer s.wg.Done(); sl.l.watch(s.cfg.IdleTimeout/4, s.cfg.IdleTimeout, false) }()

	err = sl.readLoop(r)
	sl.l.fail(err)
	sl.lost()
	s.mu.Lock()
	delete(s.links, sl)
	s.mu.Unlock()
	s.m.open.Dec()
	s.log.Info("backbone: edge link ended", "edge", edge, "error", err.Error())
}

// handshake reads the edge's Hello and checks its credential.
func (s *Server) handshake(nc net.Conn, r *Reader) (string, error) {
	_ = nc.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	m, err := r.Next()
	if err != nil {
		if _, coded := apierr.From(err); coded {
			return "", err
		}
		return "", apierr.Wrap("backbone.handshake", apierr.AuthTimeout, "no hello", err)
	}
	if m.Kind != KindHello {
		return "", apierr.New(apierr.NotAuthenticated, "the first backbone message must be hello, got %s", m.Kind)
	}
	var h Hello
	if err := json.Unmarshal(m.Body, &h); err != nil {
		return "", apierr.Wrap("backbone.handshake", apierr.BadRequest, "hello body must be a JSON object", err)
	}
	if h.Version != Version {
		return "", apierr.New(apierr.UnsupportedVersion, "backbone version %d is not supported; this gateway speaks %d", h.Version, Version)
	}
	if h.Token == "" {
		return "", apierr.New(apierr.Unauthenticated, "hello carries no token")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	defer cancel()
	edge, err := s.auth.AuthenticateEdge(ctx, h.Token)
	if err != nil {
		return "", err
	}
	_ = nc.SetReadDeadline(time.Time{})
	if edge == "" {
		edge = h.Edge
	}
	return edge, nil
}

func (sl *serverLink) readLoop(r *Reader) error {
	for {
		m, err := r.Next()
		if err != nil {
			return err
		}
		sl.l.touch()
		switch m.Kind {
		case KindOpen:
			if err := sl.open(m); err != nil {
				return err
			}
		case KindData:
			sl.mu.Lock()
			st := sl.streams[m.Session]
			sl.mu.Unlock()
			if st != nil && !st.deliver(m.Body) {
				// The edge ignored its credit: drop that session alone
				// rather than buffer without bound or stall the link.
				sl.s.m.resets.Inc()
				st.end(errOverflow)
				_ = sl.sendClose(m.Session, "overflow")
			}
		case KindClose:
			sl.mu.Lock()
			st := sl.streams[m.Session]
			sl.mu.Unlock()
			if st != nil {
				st.end(io.EOF)
			}
		case KindPing:
			_ = sl.l.send(Message{Kind: KindPong, Body: m.Body}, false, nil, nil, 0)
		case KindPong:
		default:
			return apierr.New(apierr.BadFrame, "unexpected %s from an edge", m.Kind)
		}
	}
}

// open starts a session. Reusing a live session id is a broken edge: the
// link ends.
func (sl *serverLink) open(m Message) error {
	var o Open
	if err := json.Unmarshal(m.Body, &o); err != nil {
		return apierr.Wrap("backbone.open", apierr.BadFrame, "open body must be a JSON object", err)
	}
	remote := sl.l.nc.RemoteAddr()
	if ap, err := netip.ParseAddrPort(o.Remote); err == nil {
		remote = net.TCPAddrFromAddrPort(ap)
	}
	st := newStream(sl, m.Session, remote, sl.s.cfg.Window)
	sl.mu.Lock()
	if _, dup := sl.streams[m.Session]; dup {
		sl.mu.Unlock()
		return apierr.New(apierr.BadFrame, "session %d opened twice", m.Session)
	}
	sl.streams[m.Session] = st
	sl.mu.Unlock()
	sl.s.m.streams.Inc()
	sl.s.accept(st)
	return nil
}

func (sl *serverLink) remove(st *Stream) {
	sl.mu.Lock()
	if sl.streams[st.id] == st {
		delete(sl.streams, st.id)
		sl.s.m.streams.Dec()
	}
	sl.mu.Unlock()
}

func (sl *serverLink) sendClose(id uint32, reason string) error {
	var body []byte
	if reason != "" {
		body, _ = json.Marshal(Close{Reason: reason})
	}
	return sl.l.send(Message{Kind: KindClose, Session: id, Body: body}, false, nil, nil, 0)
}

// grant gives the edge n more bytes of credit on session id.
func (sl *serverLink) grant(id uint32, n int) {
	var body [4]byte
	binary.BigEndian.PutUint32(body[:], uint32(n))
	_ = sl.l.send(Message{Kind: KindWindow, Session: id, Body: body[:]}, false, nil, nil, 0)
}

func (sl *serverLink) goAway(reason string) {
	body, _ := json.Marshal(GoAway{Reason: reason})
	_ = sl.l.send(Message{Kind: KindGoAway, Body: body}, false, nil, nil, 0)
}

// lost ends every session of a failed link.
func (sl *serverLink) lost() {
	sl.mu.Lock()
	streams := make([]*Stream, 0, len(sl.streams))
	for _, st := range sl.streams {
		streams = append(streams, st)
	}
	sl.mu.Unlock()
	for _, st := range streams {
		st.end(ErrLinkLost)
	}
}

// GoAway stops accepting links and tells every edge, now and on links that
// finish their handshake later, to open no new session here. Sessions
// already open continue.
func (s *Server) GoAway(reason string) {
	s.mu.Lock()
	if s.goAway != "" {
		s.mu.Unlock()
		return
	}
	s.goAway = reason
	ln := s.ln
	links := make([]*serverLink, 0, len(s.links))
	for sl := range s.links {
		links = append(links, sl)
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, sl := range links {
		sl.goAway(reason)
	}
}

// Shutdown tells every edge to go away, flushes and closes every link and
// waits for the server's goroutines until ctx ends. The gateway calls it
// after closing its sessions, so their last frames reach the edges first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.GoAway("shutting_down")
	s.mu.Lock()
	s.closed = true
	links := make([]*serverLink, 0, len(s.links))
	for sl := range s.links {
		links = append(links, sl)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sl := range links {
		wg.Go(func() { sl.l.closeAfterFlush(closeFlush) })
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("backbone: shutdown: %w", ctx.Err())
	}
}

type serverMetrics struct {
	links   *prometheus.CounterVec
	open    prometheus.Gauge
	streams prometheus.Gauge
	resets  prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	const ns, sub = "livecell", "gateway_backbone"
	m := &serverMetrics{
		links: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "links_total",
			Help: "Edge links by handshake result (ok, or the error code sent back)."}, []string{"result"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "links",
			Help: "Authenticated edge links."}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions",
			Help: "Player sessions open over edge links."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "session_resets_total",
			Help: "Sessions reset because an edge sent beyond their credit."}),
	}
	for _, c := range []prometheus.Collector{m.links, m.open, m.streams, m.resets} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backbone: register metrics: %w", err)
		}
	}
	return m, nil
}
