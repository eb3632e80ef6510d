// Package router is livecell's global router: the first thing a game client
// calls. It answers one question, "which cell should this player talk to
// now?", and nothing else.
//
// What it does:
//   - maps a known player to the home cell the player directory names
//     (placement "existing");
//   - when that cell is down or disabled, or draining, sends the player to
//     the first healthy, active cell of the home's failover list in
//     cells.yaml ("failover"), so players keep playing while their cell is
//     out; a draining home with no such cell keeps its players;
//   - applies the control plane's override table first: a pinned player
//     goes to the pinned cell ("pinned"), a quarantined one to the
//     quarantine cell ("quarantine") or nowhere (apierr.Quarantined);
//   - places a player with no account yet ("new") by the control plane's
//     placement rule (global/placement): the round-trip times the client
//     measured traded against each cell's capacity headroom, else the
//     client's region hint, else the least loaded cell;
//   - probes every cell's /v1/status to know health (with hysteresis, so one
//     slow probe does not move players) and load, and loads cell states
//     set at run time (a drain) and the override table from the control
//     plane.
//
// What it does not do: it owns no data and writes nothing. It does not
// record homes (the control plane owns the directory and records a new
// player's home when the chosen cell signs the player up), it does not move
// players between cells, and it is not on the path of a session: clients
// cache the cell they were given, so a router outage only affects players
// who are starting the game. Being stateless, any number of replicas can
// run behind one address; when the control plane is down each keeps the
// last routing table it loaded.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/background"
	"github.com/livecell/livecell/internal/config"
)

// Config configures a Router. Zero durations and thresholds take defaults.
type Config struct {
	Cells         *config.Cells
	ProbeInterval time.Duration // between probe rounds; default 2s
	ProbeTimeout  time.Duration // per probe; default 1s
	FailThreshold int           // consecutive failed probes that mark a cell down; default 3
	RiseThreshold int           // consecutive good probes that bring it back; default 2
	// RoutingInterval is how often the routing table (cell states, the
	// override table) is loaded from Deps.Routing; default 2s.
	RoutingInterval time.Duration
	// Placement tunes the choice of a new player's cell.
	Placement placement.Policy
}

func (c *Config) setDefaults() {
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 2 * time.Second
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = time.Second
	}
	if c.FailThreshold <= 0 {
		c.FailThreshold = 3
	}
	if c.RiseThreshold <= 0 {
		c.RiseThreshold = 2
	}
	if c.RoutingInterval <= 0 {
		c.RoutingInterval = 2 * time.Second
	}
}

// HomeLookup is what the router needs of the player directory. Home returns
// the id of the player's home cell, or an error carrying apierr.UnknownPlayer
// when the player has none. Any other error is treated as the directory
// being unavailable.
type HomeLookup interface {
	Home(ctx context.Context, playerID string) (string, error)
}

// StatusSource reads a cell's status. HTTPStatus is the implementation used
// in production; tests and an in-process world can answer directly.
type StatusSource interface {
	Status(ctx context.Context, c config.Cell) (cellapi.Status, error)
}

// Deps are the Router's collaborators.
type Deps struct {
	Logger  *slog.Logger          // nil discards logs
	Metrics prometheus.Registerer // nil keeps metrics private to the Router
	Homes   HomeLookup            // required
	Status  StatusSource          // nil means HTTPStatus with a default client
	Routing RoutingSource         // nil: cells.yaml's states, no overrides
}

// Router is the global router. Create it with New, then Start it.
type Router struct {
	cfg        Config
	log        *slog.Logger
	homes      HomeLookup
	status     StatusSource
	routingSrc RoutingSource
	m          *metrics

	// view is an immutable snapshot of cells and their health that Resolve
	// reads without locks; probe rounds and SetCells replace it.
	view atomic.Pointer[view]

	mu         sync.Mutex // guards the fields below, and orders publishes
	cells      *config.Cells
	health     map[string]*health // by cell id
	routing    Routing            // last loaded from routingSrc
	routingErr string             // of the last load; "" when it worked

	bg background.Loop // the probe and routing loops
}

// New returns a Router for cfg. Every cell starts down until its first
// successful probe; Start runs one round before returning.
func New(cfg Config, deps Deps) (*Router, error) {
	if cfg.Cells == nil || len(cfg.Cells.Cells) == 0 {
		return nil, errors.New("router: Config.Cells has no cells")
	}
	if deps.Homes == nil {
		return nil, errors.New("router: Deps.Homes (the player directory) is required")
	}
	cfg.setDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Status == nil {
		deps.Status = HTTPStatus{Client: &http.Client{Timeout: cfg.ProbeTimeout}}
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r := &Router{
		cfg:        cfg,
		log:        deps.Logger,
		homes:      deps.Homes,
		status:     deps.Status,
		routingSrc: deps.Routing,
		m:          m,
		cells:      cfg.Cells,
		health:     make(map[string]*health, len(cfg.Cells.Cells)),
	}
	for _, c := range cfg.Cells.Cells {
		r.health[c.ID] = &health{}
	}
	r.mu.Lock()
	r.publishLocked()
	r.mu.Unlock()
	return r, nil
}

// Start probes every cell and loads the routing table once, so that a
// healthy world resolves as soon as Start returns, then keeps doing both
// in the background (every ProbeInterval and RoutingInterval) until Stop is
// called or ctx is done. A control plane that is down at start is not an
// error: the router starts with cells.yaml's states and no overrides.
func (r *Router) Start(ctx context.Context) error {
	if r.bg.Running() {
		return fmt.Errorf("router: %w", background.ErrRunning)
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.routingRound(ctx) })
	r.probeRound(ctx)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("router: start: %w", err)
	}
	// The loop outlives this call but not ctx: a caller's cancellation
	// still stops it, and Stop cancels it explicitly.
	if err := r.bg.Start(ctx, r.probeLoop); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}

// Stop ends background probing and waits for the loop to exit, or for ctx.
// Resolve keeps answering from the last known health.
func (r *Router) Stop(ctx context.Context) error {
	if err := r.bg.Stop(ctx); err != nil {
		return fmt.Errorf("router: stop: %w", err)
	}
	return nil
}

func (r *Router) probeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ProbeInterval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.routingSrc != nil {
		// Its own loop: a slow control plane must not delay probes.
		wg.Go(func() {
			rt := time.NewTicker(r.cfg.RoutingInterval)
			defer rt.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-rt.C:
					r.routingRound(ctx)
				}
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.probeRound(ctx)
		}
	}
}

// SetCells swaps in a new cells.yaml (a hot reload). Cells that still exist
// keep their health and load, so a reload never marks a serving cell down;
// new cells start down until probed. A probe round in flight while the swap
// happens only updates cells whose API address did not change.
func (r *Router) SetCells(cells *config.Cells) {
	if cells == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]*health, len(cells.Cells))
	for _, c := range cells.Cells {
		if h, ok := r.health[c.ID]; ok {
			next[c.ID] = h
		} else {
			next[c.ID] = &health{}
		}
	}
	for id := range r.health {
		if _, ok := next[id]; !ok {
			r.m.forgetCell(id)
		}
	}
	r.cells, r.health = cells, next
	r.publishLocked()
	r.log.Info("cells reloaded", "cells", len(cells.Cells), "version", cells.Version)
}
