package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/gateway/backbone"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

const (
	// Drain tells sessions to move in batches, so the gateways and cells
	// they move to see a ramp rather than one reconnect storm.
	drainBatch      = 500
	drainBatchPause = 10 * time.Millisecond
	// maxAcceptBackoff caps the pause after a failed Accept (EMFILE: this
	// machine allows 20,000 descriptors per process).
	maxAcceptBackoff = time.Second
)

// Gateway is one cell gateway process's listener and sessions.
type Gateway struct {
	cfg        Config
	log        *slog.Logger
	auth       Authenticator
	resume     ResumeIssuer
	handlers   protocol.Handlers
	m          *metrics
	backbone   *backbone.Server // nil without Config.BackboneListen
	table      *table
	epoch      time.Time     // origin of the monotonic clock rate buckets use
	closeFlush time.Duration // time a closing connection gets to flush

	base       context.Context // parent of session contexts; cancelled by Stop
	cancelBase context.CancelFunc

	rbufs, wbufs sync.Pool // read and write buffers (*[]byte)

	draining atomic.Bool
	wg       sync.WaitGroup // accept loop, event loops, connection goroutines, handler requests
	epoll    *pollEngine    // nil with the goroutine engine

	mu       sync.Mutex
	ln       net.Listener
	lnClosed chan struct{} // closed with the listener; wakes the accept loop's backoff
	started  bool
}

// New validates cfg and returns a gateway that is not yet listening.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Auth == nil {
		return nil, errors.New("gateway: Deps.Auth is required")
	}
	for op, h := range deps.Handlers {
		if h == nil {
			return nil, fmt.Errorf("gateway: nil handler for opcode %s", op.Hex())
		}
		// 0x00xx is the gateway's own range (protocol.Opcode).
		if op < 0x0100 {
			return nil, fmt.Errorf("gateway: opcode %s is answered by the gateway itself", op.Hex())
		}
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg, deps.Handlers)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.BackboneListen != "" && deps.Edges == nil {
		return nil, errors.New("gateway: Config.BackboneListen needs Deps.Edges")
	}
	base, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:        cfg,
		log:        log,
		auth:       deps.Auth,
		resume:     deps.Resume,
		handlers:   deps.Handlers,
		m:          m,
		table:      newTable(m.sessions),
		epoch:      time.Now(),
		closeFlush: min(cfg.WriteTimeout, maxCloseFlush),
		base:       base,
		cancelBase: cancel,
		lnClosed:   make(chan struct{}),
	}
	g.rbufs.New = func() any { b := make([]byte, readBufSize); return &b }
	g.wbufs.New = func() any { b := make([]byte, 0, readBufSize); return &b }
	if cfg.BackboneListen != "" {
		bb, err := backbone.NewServer(backbone.ServerConfig{
			Cell: cfg.CellID, MaxFrame: cfg.MaxFrame, IdleTimeout: cfg.BackboneIdleTimeout, WriteTimeout: cfg.WriteTimeout,
		}, backbone.ServerDeps{Logger: log, Metrics: reg, Auth: deps.Edges, Accept: g.accept})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.backbone = bb
	}
	return g, nil
}

// Start listens on Config.Listen and accepts sessions until Drain or Stop.
// ctx bounds only the listen call.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("gateway: already started")
	}
	// Heartbeats and the idle timeout find dead peers; kernel keepalives
	// would only add timers.
	lc := net.ListenConfig{KeepAlive: -1}
	if g.cfg.ReusePort {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(ctx, "tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", g.cfg.Listen, err)
	}
	if g.backbone != nil {
		// Edge links are few and busy: the goroutine engine serves their
		// sessions whatever Config.Engine says (see accept).
		bln, err := lc.Listen(ctx, "tcp", g.cfg.BackboneListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("gateway: backbone listen %s: %w", g.cfg.BackboneListen, err)
		}
		g.backbone.Serve(bln)
		g.log.LogAttrs(ctx, slog.LevelInfo, "gateway: backbone listening", slog.String("addr", bln.Addr().String()))
	}
	if g.cfg.Engine == EngineEpoll {
		if err := g.startEpoll(ln, g.cfg.Loops); err != nil {
			_ = ln.Close()
			return err
		}
	} else {
		g.wg.Add(1)
		go g.acceptLoop(ln)
	}
	g.started, g.ln = true, ln
	g.log.LogAttrs(ctx, slog.LevelInfo, "gateway: listening",
		slog.String("addr", ln.Addr().String()), slog.String("cell", g.cfg.CellID),
		slog.Bool("reuse_port", g.cfg.ReusePort), slog.String("engine", g.cfg.Engine))
	return nil
}

// Addr is the listening address, nil before Start.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil
	}
	return g.ln.Addr()
}

// BackboneAddr is where edges connect, nil without a backbone or before
// Start.
func (g *Gateway) BackboneAddr() net.Addr {
	if g.backbone == nil {
		return nil
	}
	return g.backbone.Addr()
}

// Sessions is the number of authenticated sessions.
func (g *Gateway) Sessions() int { return g.table.sessions() }

// closeListener stops accepting; safe to call more than once.
func (g *Gateway) closeListener() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.lnClosed:
		return
	default:
	}
	close(g.lnClosed)
	if g.ln != nil {
		_ = g.ln.Close()
	}
	if g.epoll != nil {
		g.epoll.stop()
	}
}

func (g *Gateway) acceptLoop(ln net.Listener) {
	defer g.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-g.lnClosed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or a transient failure: keep the sessions
			// we hold and try again shortly.
			g.m.connections.WithLabelValues(connAcceptError).Inc()
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			g.log.LogAttrs(g.base, slog.LevelWarn, "gateway: accept failed",
				slog.String("error", err.Error()), slog.Duration("retry_in", backoff))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-g.lnClosed:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		g.accept(nc)
	}
}

// accept serves a new connection: a TCP socket from the accept loop, or a
// session an edge opened over its backbone link (a backbone.Stream), which
// takes the same path.
func (g *Gateway) accept(nc net.Conn) {
	c := newConn(g)
	ok, full := g.table.add(c, g.cfg.MaxSessions)
	if !ok {
		if !full { // stopping
			_ = nc.Close()
			return
		}
		g.m.connections.WithLabelValues(connRejected).Inc()
		g.wg.Add(1)
		go g.reject(nc, codedError(0, apierr.Unavailable, "the gateway is at capacity: try again later"))
		return
	}
	g.m.connections.WithLabelValues(connAccepted).Inc()
	g.serveConn(c, nc)
}

// reject answers a connection the gateway will not serve with one frame and
// closes it, lingering like goConn.finish so the frame is not lost to a reset.
func (g *Gateway) reject(nc net.Conn, f protocol.Frame) {
	defer g.wg.Done()
	_ = nc.SetDeadline(time.Now().Add(closeLinger))
	if protocol.WriteFrame(nc, f) == nil {
		if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			var scratch [512]byte
			for {
				if _, err := nc.Read(scratch[:]); err != nil {
					break
				}
			}
		}
	}
	_ = nc.Close()
}

// Push queues an event for a player's session. delivered is the number of
// sessions it was queued to: 0 when the player has no session here or the
// session was dropped as a slow consumer.
func (g *Gateway) Push(ctx context.Context, playerID string, p protocol.Push) (delivered int, err error) {
	return g.PushMany(ctx, []string{playerID}, p)
}

// PushMany queues one event for the sessions of many players (a fan-out):
// the event is encoded once. delivered counts the sessions it was queued
// to; players without a session here and sessions dropped as slow
// consumers are counted in pushes_total, not in delivered.
func (g *Gateway) PushMany(ctx context.Context, playerIDs []string, p protocol.Push) (delivered int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	payload, err := json.Marshal(p)
	if err != nil {
		g.m.pushes.WithLabelValues(pushError).Add(float64(len(playerIDs)))
		return 0, fmt.Errorf("gateway: push %q: %w", p.Topic, err)
	}
	if protocol.HeaderSize+len(payload) > g.cfg.MaxFrame {
		g.m.pushes.WithLabelValues(pushTooLarge).Add(float64(len(playerIDs)))
		return 0, apierr.New(apierr.PayloadTooLarge, "push of %d bytes exceeds the maximum frame size %d", len(payload), g.cfg.MaxFrame)
	}
	f := protocol.Frame{Header: protocol.Header{Opcode: protocol.OpPush}, Payload: payload}
	var none, dropped int
	for _, id := range playerIDs {
		c := g.table.lookup(id)
		switch {
		case c == nil:
			none++
		case c.send(f):
			delivered++
		default:
			dropped++
		}
	}
	if none > 0 {
		g.m.pushes.WithLabelValues(pushNoSession).Add(float64(none))
	}
	if dropped > 0 {
		g.m.pushes.WithLabelValues(pushDropped).Add(float64(dropped))
	}
	if delivered > 0 {
		g.m.pushes.WithLabelValues(pushDelivered).Add(float64(delivered))
	}
	return delivered, nil
}

// Drain moves every session elsewhere: it stops accepting, sends each
// session r (with its own resume token when the gateway has a
// ResumeIssuer) in batches, waits up to DrainGrace for clients to leave and
// closes the rest. It returns ctx's error if ctx ends first, after closing
// the sessions that are left.
func (g *Gateway) Drain(ctx context.Context, r protocol.Reconnect) error {
	g.m.drains.Inc()
	g.draining.Store(true)
	g.closeListener()
	if g.backbone != nil {
		g.backbone.GoAway("draining")
	}
	sessions := g.table.authenticated()
	g.log.LogAttrs(ctx, slog.LevelInfo, "gateway: draining",
		slog.Int("sessions", len(sessions)), slog.String("reason", r.Reason))
	var err error
	for i := 0; i < len(sessions) && err == nil; i += drainBatch {
		if i > 0 {
			err = sleep(ctx, drainBatchPause)
		}
		for _, c := range sessions[i:min(i+drainBatch, len(sessions))] {
			rc := r
			if tok := c.resumeToken(c.player, c.sessionID); tok != "" {
				rc.ResumeToken = tok
			}
			c.sendJSON(protocol.Frame{Header: protocol.Header{Opcode: protocol.OpReconnect}}, rc)
		}
	}
	if err == nil {
		t := time.NewTimer(g.cfg.DrainGrace)
		select {
		case <-g.table.waitEmpty():
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	left := g.table.all(false)
	bye := byeFrame("draining")
	for _, c := range left {
		c.closeWith(&bye, false)
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "gateway: drained", slog.Int("closed", len(left)))
	if err != nil {
		return fmt.Errorf("gateway: drain: %w", err)
	}
	return nil
}

// Stop closes the listener and every session, then waits for the gateway's
// goroutines until ctx ends. Handlers see their contexts cancelled.
func (g *Gateway) Stop(ctx context.Context) error {
	g.closeListener()
	bye := byeFrame("shutting_down")
	for _, c := range g.table.all(true) {
		c.closeWith(&bye, false)
	}
	g.cancelBase()
	if g.backbone != nil {
		// Edges hear now that this gateway is going, before their sessions
		// close with shutting_down, so they open no new ones here.
		g.backbone.GoAway("shutting_down")
	}
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("gateway: stop: %w", ctx.Err())
	}
	if g.backbone != nil {
		// After the sessions: their last frames travel on the links.
		if err := g.backbone.Shutdown(ctx); err != nil {
			return fmt.Errorf("gateway: stop: %w", err)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
