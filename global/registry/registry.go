// Package registry is the cell registry of livecell's global control plane:
// which cells exist and where each cell's gateway, HTTP API and services can
// be reached right now.
//
// cells.yaml is the source of truth for which cells exist, their regions,
// capacity, failover order and state. Where they can be reached comes from
// one of two places:
//
//   - without Consul: the endpoints written in cells.yaml. Health is then
//     the business of active probing (the router probes each cell's
//     /v1/status with hysteresis).
//   - with Consul (ConsulConfig.Address, from CONSUL_HTTP_ADDR): each cell
//     process registers its gateway, API and own-listener services with its
//     local Consul agent, with health checks (Consul.Register), and the
//     registry reads the passing instances with blocking queries, so a
//     change reaches it within one round trip of Consul noticing it.
//
// Consumers read immutable Snapshots and wait on Changed for the next one.
// The registry never drops a cell because Consul lost it: a cell's players
// live there, so a missing instance means "down", not "gone".
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/config"
)

// Config configures a Registry.
type Config struct {
	Cells  *config.Cells // required
	Consul ConsulConfig  // zero: no Consul
	// Services are the service roles to discover in Consul besides gateway
	// and api. The keys of every cell's services in cells.yaml are always
	// added.
	Services []string
}

// Deps are the Registry's collaborators.
type Deps struct {
	Logger  *slog.Logger          // nil discards logs
	Metrics prometheus.Registerer // nil keeps metrics private
}

// startTimeout bounds Start's first round of Consul queries.
const startTimeout = 5 * time.Second

// Registry serves Snapshots of the cells and their endpoints. Create it with
// New; with Consul, Start it to begin watching.
type Registry struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	consul *Consul // nil without Consul

	mu      sync.Mutex
	snap    *Snapshot
	changed chan struct{}                    // closed and replaced on every publish
	results map[string]map[string][]Instance // role → cell → passing instances
	indexes map[string]uint64                // role → X-Consul-Index to wait on
	watched map[string]bool

	runMu  sync.Mutex
	runCtx context.Context // of the watchers; nil when not running
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Registry for cfg. Without Consul its snapshot is final
// until SetCells.
func New(cfg Config, deps Deps) (*Registry, error) {
	if cfg.Cells == nil || len(cfg.Cells.Cells) == 0 {
		return nil, errors.New("registry: Config.Cells has no cells")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{
		cfg:     cfg,
		log:     deps.Logger,
		m:       m,
		changed: make(chan struct{}),
		results: map[string]map[string][]Instance{},
		indexes: map[string]uint64{},
		watched: map[string]bool{},
	}
	if cfg.Consul.Enabled() {
		if r.consul, err = NewConsul(cfg.Consul); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	r.publishLocked(cfg.Cells)
	r.mu.Unlock()
	return r, nil
}

// Consul returns the registry's Consul client, or nil without Consul.
func (r *Registry) Consul() *Consul { return r.consul }

// Snapshot returns the current view. It never returns nil.
func (r *Registry) Snapshot() *Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap
}

// Changed returns a channel closed when a snapshot newer than the current
// one is published. Take it before reading Snapshot to miss nothing.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// SetCells swaps in a new cells.yaml (a hot reload), keeping what Consul
// reported, and starts watching services it names for the first time.
func (r *Registry) SetCells(cells *config.Cells) {
	if cells == nil {
		return
	}
	r.mu.Lock()
	r.publishLocked(cells)
	r.mu.Unlock()
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.runCtx != nil {
		r.watchRolesLocked(r.runCtx)
	}
}

// publishLocked builds a new snapshot from cells and the Consul results.
// r.mu must be held.
func (r *Registry) publishLocked(cells *config.Cells) {
	var version uint64 = 1
	if r.snap != nil {
		version = r.snap.version + 1
	}
	consul := make(map[string]map[string][]Instance, len(r.results))
	for role, byCell := range r.results {
		consul[role] = byCell // never mutated after being stored
	}
	r.snap = &Snapshot{version: version, cells: cells, consul: consul}
	close(r.changed)
	r.changed = make(chan struct{})
	r.m.healthy.Reset() // drops the series of cells no longer in cells.yaml
	for role, byCell := range consul {
		for _, id := range cells.IDs() {
			r.m.healthy.WithLabelValues(role, id).Set(float64(len(byCell[id])))
		}
	}
}

// roles returns the roles to discover: gateway, api, Config.Services and
// every services key of cells.yaml.
func (r *Registry) roles() []string {
	set := map[string]bool{RoleGateway: true, RoleAPI: true}
	for _, s := range r.cfg.Services {
		set[s] = true
	}
	for _, c := range r.Snapshot().File().Cells {
		for s := range c.Services {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Start, with Consul, queries every role once, so that a healthy world is
// discovered when Start returns, then watches each role with blocking
// queries until Stop or ctx is done. A Consul that does not answer at
// start is not fatal: cells.yaml stands in until it does. Without Consul
// Start does nothing.
func (r *Registry) Start(ctx context.Context) error {
	if r.consul == nil {
		return nil
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.runCtx != nil {
		return errors.New("registry: already started")
	}
	// A Consul that is slow to answer must not hold up the process: the
	// watchers keep trying after Start returns.
	qctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, role := range r.roles() {
		wg.Go(func() {
			if _, err := r.query(qctx, role, 0); err != nil {
				r.log.Warn("consul discovery failed; using cells.yaml until it answers", "service", r.consul.ServiceName(role), "error", err)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("registry: start: %w", err)
	}
	// The watchers outlive this call but not ctx.
	r.runCtx, r.cancel = context.WithCancel(ctx)
	r.watchRolesLocked(r.runCtx)
	return nil
}

// Stop ends the watchers and waits for them, or for ctx.
func (r *Registry) Stop(ctx context.Context) error {
	r.runMu.Lock()
	cancel := r.cancel
	r.runCtx, r.cancel = nil, nil
	r.runMu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	// The cancelled watchers are on their way out; a later Start watches
	// every role afresh.
	r.mu.Lock()
	r.watched = map[string]bool{}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("registry: stop: %w", ctx.Err())
	}
}

// watchRolesLocked starts a watcher for each role not yet watched. r.runMu
// must be held.
func (r *Registry) watchRolesLocked(ctx context.Context) {
	for _, role := range r.roles() {
		r.mu.Lock()
		seen := r.watched[role]
		r.watched[role] = true
		r.mu.Unlock()
		if seen {
			continue
		}
		r.wg.Go(func() { r.watch(ctx, role) })
	}
}

// watch follows role with blocking queries until ctx is done, as Consul
// documents them: wait on the last X-Consul-Index, start over from 0 when
// the index goes backwards (a Consul restart or snapshot restore), never
// wait on 0 after the first answer, and back off with jitter on errors,
// keeping the last answer meanwhile.
func (r *Registry) watch(ctx context.Context, role string) {
	r.mu.Lock()
	index := r.indexes[role] // from Start's first query, if it answered
	r.mu.Unlock()
	backoff := r.consul.cfg.RetryMin
	for ctx.Err() == nil {
		next, err := r.query(ctx, role, index)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("consul discovery failed; keeping the last answer", "service", r.consul.ServiceName(role), "error", err, "retry_in", backoff)
			// Full jitter: many routers must not retry in step.
			sleep(ctx, backoff/2+rand.N(backoff/2+1))
			backoff = min(2*backoff, r.consul.cfg.RetryMax)
			continue
		}
		backoff = r.consul.cfg.RetryMin
		switch {
		case next < index:
			index = 0
		case next == 0:
			index = 1
		default:
			index = next
		}
	}
}

// query runs one (blocking, when index > 0) health query for role and
// publishes the answer if it changed. It returns the index to wait on next.
func (r *Registry) query(ctx context.Context, role string, index uint64) (uint64, error) {
	found, next, err := r.consul.Healthy(ctx, role, index)
	if err != nil {
		r.m.queries.WithLabelValues(role, "error").Inc()
		return 0, err
	}
	r.m.queries.WithLabelValues(role, "ok").Inc()
	byCell := map[string][]Instance{}
	for _, in := range found {
		byCell[in.Cell] = append(byCell[in.Cell], in)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.indexes[role] = next
	if prev, ok := r.results[role]; ok && sameInstances(prev, byCell) {
		return next, nil // a blocking query can return with nothing new
	}
	r.results[role] = byCell
	r.publishLocked(r.snap.cells)
	r.log.Info("consul discovery changed", "service", r.consul.ServiceName(role), "instances", len(found), "index", next)
	return next, nil
}

func sameInstances(a, b map[string][]Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for cell, x := range a {
		y, ok := b[cell]
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Register registers cell's endpoints with Consul (see Consul.Register).
// Without Consul it returns an error: there is nothing to register with.
func (r *Registry) Register(ctx context.Context, cellID string, addrs Addrs) (*Registration, error) {
	if r.consul == nil {
		return nil, errors.New("registry: no Consul configured (CONSUL_HTTP_ADDR is empty)")
	}
	c, ok := r.Snapshot().File().Cell(cellID)
	if !ok {
		return nil, fmt.Errorf("registry: cell %q is not in cells.yaml", cellID)
	}
	return r.consul.Register(ctx, c, addrs)
}
