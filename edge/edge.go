// Package edge is livecell's edge relay: a stateless process near players
// that accepts their sessions over TCP, QUIC and WebSocket and relays the
// frames to their cell's gateway over backbone links (package
// gateway/backbone), one per cell, each carrying many sessions.
//
// # Authentication first
//
// An edge reads nothing but the player's first frame until it has checked
// it: a Hello whose access or resume token verifies offline against the
// public keys. Any other first frame, a bad token or silence past the auth
// deadline ends the connection with the gateway's error codes, and not one
// byte reaches a gateway. The gateway then authenticates the relayed Hello
// again: the edge is a filter, not the authority.
//
// # Where a session goes
//
// The home cell comes from the router (Deps.Homes) when one is
// configured, else from the token's cell claim; the session attaches to it
// or, when its backbone cannot be reached, to the first reachable cell of
// its failover list in cells.yaml (active cells only, as the router does).
//
// # Request ids
//
// The edge renumbers the player's requests on their way to the gateway and
// restores the player's ids on the answers. The edge can then speak on the
// session itself (a Hello that re-attaches it elsewhere, an OpResume that
// keeps its resume token fresh) without ever colliding with the player's
// ids, and knows exactly which requests are in flight.
//
// # Failover with the player connected
//
// When a session's backbone link dies (the cell was killed, or went
// silent past the link's keepalive), or its gateway sends Reconnect, or
// closes it with shutting_down, the edge keeps the player's connection
// open and attaches the session elsewhere: it sends the gateway of the
// next cell a Hello with the session's latest resume token (from the
// Welcome, a Reconnect, or a renewal), holds the player's new frames
// meanwhile (up to Config.PendingFrames, then answering unavailable), and
// on the new Welcome releases them and pushes "session.moved" to the
// player. Requests that were in flight on the lost cell are answered with
// session_moved (retryable): they may or may not have run. A resume token
// the new cell refuses, or no cell within Config.AttachTimeout, ends the
// player's connection with a Reconnect telling it to log in again.
//
// # Metrics
//
// Registered with the prefix livecell_edge_: sessions{transport},
// connections_total{transport,result}, auth_failures_total{code},
// frames_relayed_total{direction}, reattaches_total{reason,result},
// reattach_seconds, interrupted_requests_total, closes_total{reason},
// backbone_links{cell}, backbone_dials_total{cell,result},
// resume_renewals_total{result}.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
)

// Edge is one edge relay process.
type Edge struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	cells  *config.Cells
	tokens TokenVerifier
	homes  HomeResolver
	pool   *pool

	base   context.Context // cancelled by Stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops, session goroutines, re-attaches
	ids    atomic.Uint64

	mu        sync.Mutex
	listeners map[string]net.Listener // by transport
	sessions  map[*session]struct{}
	draining  bool
	stopped   bool
	started   bool
}

// New validates cfg and deps; Start makes the edge listen.
func New(cfg Config, deps Deps) (*Edge, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Cells == nil || deps.Tokens == nil || deps.Credential == nil {
		return nil, errors.New("edge: Deps.Cells, Deps.Tokens and Deps.Credential are required")
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Edge{
		cfg: cfg, log: log, m: m, cells: deps.Cells, tokens: deps.Tokens, homes: deps.Homes,
		base: base, cancel: cancel,
		listeners: map[string]net.Listener{}, sessions: map[*session]struct{}{},
	}
	e.pool = newPool(e, deps.Credential)
	return e, nil
}

// Start opens the configured listeners, accepts players on each and links
// to every cell's gateway in the background. ctx bounds only the listens.
func (e *Edge) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("edge: already started")
	}
	e.started = true
	open := func(tr string, listen func() (net.Listener, error)) error {
		ln, err := listen()
		if err != nil {
			return err
		}
		e.listeners[tr] = ln
		e.log.LogAttrs(ctx, slog.LevelInfo, "edge: listening", slog.String("transport", tr), slog.String("addr", ln.Addr().String()))
		return nil
	}
	var err error
	if e.cfg.TCPListen != "" {
		err = open(TransportTCP, func() (net.Listener, error) {
			lc := net.ListenConfig{KeepAlive: -1} // heartbeats find dead players
			return lc.Listen(ctx, "tcp", e.cfg.TCPListen)
		})
	}
	if err == nil && e.cfg.QUICListen != "" {
		err = open(TransportQUIC, func() (net.Listener, error) {
			return transport.ListenQUIC(e.cfg.QUICListen, e.cfg.TLS, e.cfg.AuthTimeout)
		})
	}
	if err == nil && e.cfg.WSListen != "" {
		err = open(TransportWS, func() (net.Listener, error) {
			var tc = e.cfg.TLS
			if !e.cfg.WSTLS {
				tc = nil
			}
			return transport.ListenWS(e.cfg.WSListen, tc, e.cfg.MaxFrame, e.log)
		})
	}
	if err != nil {
		for _, ln := range e.listeners {
			_ = ln.Close()
		}
		return fmt.Errorf("edge: %w", err)
	}
	for tr, ln := range e.listeners {
		e.wg.Add(1)
		go e.acceptLoop(tr, ln)
	}
	e.pool.warm()
	return nil
}

// Addrs returns the bound address of each listener, by transport.
func (e *Edge) Addrs() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for tr, ln := range e.listeners {
		out[tr] = ln.Addr().String()
	}
	return out
}

// Status is what an edge reports about itself (GET /v1/status of
// `livecell edge`).
type Status struct {
	Edge     string            `json:"edge"`
	Sessions int               `json:"sessions"`
	Listen   map[string]string `json:"listen"` // bound address by transport
	// Links says, for every cell with a backbone, whether the edge holds a
	// usable link to it now.
	Links map[string]bool `json:"links"`
}

// Status reports the edge's listeners, sessions and backbone links.
func (e *Edge) Status() Status {
	return Status{Edge: e.cfg.ID, Sessions: e.Sessions(), Listen: e.Addrs(), Links: e.pool.status()}
}

// Sessions is the number of player connections held.
func (e *Edge) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

func (e *Edge) acceptLoop(tr string, ln net.Listener) {
	defer e.wg.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or a transient failure: keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			e.log.Warn("edge: accept failed", "transport", tr, "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-e.base.Done():
				return
			}
			continue
		}
		backoff = 0
		e.accept(tr, nc)
	}
}

func (e *Edge) accept(tr string, nc net.Conn) {
	s := newSession(e, nc, tr)
	e.mu.Lock()
	full := e.cfg.MaxSessions > 0 && len(e.sessions) >= e.cfg.MaxSessions
	if e.stopped || e.draining || full {
		e.mu.Unlock()
		e.m.connections.WithLabelValues(tr, "rejected_full").Inc()
		s.start()
		f := codedError(0, apierr.Unavailable, "the edge takes no new sessions: try again later")
		s.close(&f, endStopped)
		return
	}
	e.sessions[s] = struct{}{}
	e.mu.Unlock()
	e.m.connections.WithLabelValues(tr, "accepted").Inc()
	e.m.sessions.WithLabelValues(tr).Inc()
	s.start()
}

func (e *Edge) remove(s *session) {
	e.mu.Lock()
	_, ok := e.sessions[s]
	delete(e.sessions, s)
	e.mu.Unlock()
	if ok {
		e.m.sessions.WithLabelValues(s.tr).Dec()
	}
}

func (e *Edge) snapshot() []*session {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*session, 0, len(e.sessions))
	for s := range e.sessions {
		out = append(out, s)
	}
	return out
}

func (e *Edge) closeListeners() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for tr, ln := range e.listeners {
		_ = ln.Close()
		delete(e.listeners, tr)
	}
}

// Drain stops accepting and tells every player to reconnect (through
// another edge or straight to its cell: the Reconnect names no gateway, so
// the client resolves again) with its latest resume token; after
// Config.DrainGrace the remaining sessions close.
func (e *Edge) Drain(ctx context.Context) error {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	e.closeListeners()
	for _, s := range e.snapshot() {
		s.tellReconnect("draining")
	}
	t := time.NewTimer(e.cfg.DrainGrace)
	defer t.Stop()
	for e.Sessions() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("edge: drain: %w", ctx.Err())
		case <-t.C:
			bye := byeFrame("draining")
			for _, s := range e.snapshot() {
				s.close(&bye, endDrained)
			}
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Stop closes the listeners, every session (Bye shutting_down) and every
// backbone link, and waits for the edge's goroutines until ctx ends.
func (e *Edge) Stop(ctx context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.closeListeners()
	bye := byeFrame("shutting_down")
	for _, s := range e.snapshot() {
		s.close(&bye, endStopped)
	}
	e.cancel()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("edge: stop: %w", ctx.Err())
	}
	e.pool.close()
	return err
}

// route lists where a session of a player served by cell should attach, in
// order: the cell itself when it can be, then the cells of its failover
// list that take failover (active, as the router chooses them).
func (e *Edge) route(cell string) []string {
	var out []string
	if c, ok := e.cells.Cell(cell); ok && c.State != config.StateDisabled {
		out = append(out, cell)
	}
	out = append(out, e.failover(cell)...)
	return out
}

// failover lists the active cells of cell's failover list.
func (e *Edge) failover(cell string) []string {
	c, ok := e.cells.Cell(cell)
	if !ok {
		return nil
	}
	var out []string
	for _, id := range c.Failover {
		if f, ok := e.cells.Cell(id); ok && f.State == config.StateActive && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// homeOf is where a player is served now: the router's answer, else the
// token's claim.
func (e *Edge) homeOf(ctx context.Context, player, claimed string) string {
	if e.homes == nil {
		return claimed
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	home, err := e.homes.Home(rctx, player)
	if err != nil || home == "" {
		e.log.LogAttrs(ctx, slog.LevelDebug, "edge: router unavailable, using the token's cell",
			slog.String("player", player), slog.String("cell", claimed), slog.Any("error", err))
		return claimed
	}
	return home
}
