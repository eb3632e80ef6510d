// Package agent is the control plane's hand inside a cell: it runs in every
// process of the cell that holds player sessions, polls the control plane
// for the cell's orders and routing table, and carries them out on the
// process's gateway.
//
//   - Drain: while the cell drains (an operator's `livecell control drain`,
//     or `state: draining` in cells.yaml) the gateway refuses new sessions
//     and tells its players to reconnect to the failover cell the control
//     plane names, Batch at a time every Interval; players still here after
//     Config.RetellAfter are told again. Undrained, it admits sessions
//     again.
//   - Rehome: for every redirect marker of a player who moved away, the
//     player's open session is sent a reconnect to the new cell (with a
//     resume token valid there) and closed, and later sessions of the player
//     here are refused with apierr.PlayerMoved naming the new cell; a move
//     back lifts the marker.
//   - Overrides: quarantined players are refused (apierr.Quarantined) and
//     their open sessions closed; players pinned or quarantined to this cell
//     are admitted although their credentials name another home.
//
// The cell pulls; the control plane never calls it. So a cell of many
// processes, one that restarts, or one that was unreachable converges on
// the control plane's state within a poll, and while the control plane is
// down the agent keeps carrying out the last orders it got.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/background"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/telemetry"
)

// Defaults of Config.
const (
	DefaultInterval    = time.Second
	DefaultRetellAfter = 15 * time.Second
	DefaultMarkerTTL   = 24 * time.Hour
	// MaxMarkers bounds the redirect markers held; the oldest go first.
	// A marker only matters while credentials naming this cell live.
	MaxMarkers = 1_000_000
)

// Reconnect reasons the agent sends (docs/protocol.md).
const (
	ReasonDraining = "draining"
	ReasonRehome   = "rehome"
)

// Config configures an Agent. Zero durations take the defaults.
type Config struct {
	Cell string // this cell's id; required
	// Interval is how often the control plane is polled.
	Interval time.Duration
	// RetellAfter is how long a draining cell waits before telling the
	// players still connected to move again.
	RetellAfter time.Duration
	// MarkerTTL is how long a redirect marker is kept: longer than any
	// credential that names this cell lives. The control plane keeps
	// markers as long (control.Config.MoveRetention).
	MarkerTTL time.Duration
}

// controlPlane is what the agent reads; control.Client implements it.
type controlPlane interface {
	Orders(ctx context.Context, cell string, after int64) (control.Orders, error)
	RoutingTable(ctx context.Context) (control.RoutingResponse, error)
}

// sessions is what the agent does to the process's players; gateway.Gateway
// implements it.
type sessions interface {
	SetDraining(on bool)
	Redirect(ctx context.Context, batch int, pause time.Duration, where func(player, home string) (protocol.Reconnect, bool)) (int, error)
	MovePlayer(player string, r protocol.Reconnect, resumeHome string) bool
	ClosePlayer(player, reason string) bool
}

var _ controlPlane = (*control.Client)(nil)

// Deps are the agent's collaborators; Control and Sessions are required.
type Deps struct {
	Logger   *slog.Logger          // nil discards
	Metrics  prometheus.Registerer // nil keeps metrics private
	Control  controlPlane
	Sessions sessions
	Now      func() time.Time // nil means time.Now
}

// marker is where a moved player went.
type marker struct {
	to, gateway string
	at          time.Time
	seq         int64
}

// queued is a marker in arrival (sequence) order, for expiry.
type queued struct {
	player string
	seq    int64
}

// Agent carries out the control plane's orders for one cell process. Its
// Refuse and Admits answer the cell's authenticator; they are safe for
// concurrent use and cost a map lookup.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	ctl  controlPlane
	sess sessions
	now  func() time.Time
	m    *metrics

	mu       sync.RWMutex
	draining bool
	drain    control.DrainOrder
	markers  map[string]marker // player → where they moved
	order    []queued          // markers oldest first; entries may be stale
	blocked  map[string]bool   // quarantined away from this cell
	admitted map[string]bool   // pinned or quarantined to this cell
	cursor   int64             // last move applied
	pollErr  string

	drainWake chan struct{} // nudges the drain loop when its order changes

	bg background.Loop // polling and draining
}

// New returns an agent for cfg.Cell.
func New(cfg Config, deps Deps) (*Agent, error) {
	if cfg.Cell == "" {
		return nil, errors.New("agent: Config.Cell is required")
	}
	if deps.Control == nil || deps.Sessions == nil {
		return nil, errors.New("agent: Deps.Control and Deps.Sessions are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RetellAfter <= 0 {
		cfg.RetellAfter = DefaultRetellAfter
	}
	if cfg.MarkerTTL <= 0 {
		cfg.MarkerTTL = DefaultMarkerTTL
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Agent{
		cfg: cfg, log: deps.Logger.With("component", "agent"), ctl: deps.Control, sess: deps.Sessions, now: deps.Now, m: m,
		markers: map[string]marker{}, blocked: map[string]bool{}, admitted: map[string]bool{},
		drainWake: make(chan struct{}, 1),
	}, nil
}

// Refuse returns why player may not hold a session here, or nil:
// apierr.PlayerMoved after a rehome away (unless an override admits them),
// apierr.Quarantined for a quarantined player.
func (a *Agent) Refuse(player string) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.admitted[player] {
		return nil
	}
	if a.blocked[player] {
		return apierr.New(apierr.Quarantined, "this player is quarantined; contact support")
	}
	if mk, ok := a.markers[player]; ok && a.now().Sub(mk.at) < a.cfg.MarkerTTL {
		return apierr.New(apierr.PlayerMoved, "player moved to cell %s: resolve your cell again and sign in there", mk.to)
	}
	return nil
}

// Admits reports whether an override sends player to this cell, so that
// their credentials may name another home.
func (a *Agent) Admits(player string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.admitted[player]
}

// Draining reports whether the cell is draining, as last ordered.
func (a *Agent) Draining() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.draining
}

// Start polls once, so that a restarted cell refuses moved players from its
// first session on, then keeps polling and draining in the background
// until Stop or ctx ends. A control plane down at start is not an error.
func (a *Agent) Start(ctx context.Context) error {
	if a.bg.Running() {
		return fmt.Errorf("agent: %w", background.ErrRunning)
	}
	a.poll(ctx)
	if err := a.bg.Start(ctx, a.run); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// Stop ends polling and draining and waits for them, or for ctx.
func (a *Agent) Stop(ctx context.Context) error {
	if err := a.bg.Stop(ctx); err != nil {
		return fmt.Errorf("agent: stop: %w", err)
	}
	return nil
}

func (a *Agent) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.drainLoop(ctx) })
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.poll(ctx)
		}
	}
}

// poll reads the orders (every page of markers) and the routing table and
// applies them. A failure keeps the last state.
func (a *Agent) poll(ctx context.Context) {
	err := a.pollOrders(ctx)
	if err == nil {
		err = a.pollRouting(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil:
		a.m.polls.WithLabelValues("error").Inc()
		if a.pollErr == "" {
			a.log.Warn("control plane unreachable; keeping the last orders", "error", err)
		}
		a.pollErr = err.Error()
	default:
		a.m.polls.WithLabelValues("ok").Inc()
		if a.pollErr != "" {
			a.log.Info("control plane reachable again")
		}
		a.pollErr = ""
	}
}

func (a *Agent) pollOrders(ctx context.Context) error {
	for {
		a.mu.RLock()
		after := a.cursor
		a.mu.RUnlock()
		o, err := a.ctl.Orders(ctx, a.cfg.Cell, after)
		if err != nil {
			return err
		}
		a.applyState(o)
		a.applyMoves(o.Moves)
		if !o.More || len(o.Moves) == 0 {
			return nil
		}
	}
}

// applyState follows the cell's state and drain order.
func (a *Agent) applyState(o control.Orders) {
	draining := o.State == string(config.StateDraining) || o.State == string(config.StateDisabled)
	a.mu.Lock()
	was, old := a.draining, a.drain
	a.draining, a.drain = draining, o.Drain
	a.mu.Unlock()
	if draining != was {
		a.sess.SetDraining(draining)
		if draining {
			a.log.Info("cell draining: refusing new sessions", "target", o.Drain.TargetCell, "batch", o.Drain.Batch, "interval_ms", o.Drain.IntervalMS)
			a.m.draining.Set(1)
		} else {
			a.log.Info("cell undrained: admitting sessions again")
			a.m.draining.Set(0)
		}
	}
	if draining != was || o.Drain != old {
		select {
		case a.drainWake <- struct{}{}:
		default:
		}
	}
}

// applyMoves applies redirect markers in order. Only moves past the cursor
// touch sessions: the player of an old move may have moved back since.
func (a *Agent) applyMoves(moves []control.MoveEntry) {
	for _, mv := range moves {
		a.mu.Lock()
		if mv.Seq <= a.cursor {
			a.mu.Unlock()
			continue
		}
		a.cursor = mv.Seq
		away := mv.From == a.cfg.Cell && mv.To != a.cfg.Cell
		if away {
			a.markers[mv.PlayerID] = marker{to: mv.To, gateway: mv.ToGateway, at: mv.At, seq: mv.Seq}
			a.order = append(a.order, queued{player: mv.PlayerID, seq: mv.Seq})
			a.trimMarkersLocked()
		} else {
			delete(a.markers, mv.PlayerID)
		}
		a.m.markers.Set(float64(len(a.markers)))
		a.mu.Unlock()
		if away && a.now().Sub(mv.At) < a.cfg.MarkerTTL {
			r := protocol.Reconnect{Reason: ReasonRehome, Cell: mv.To, Gateway: mv.ToGateway}
			if a.sess.MovePlayer(mv.PlayerID, r, mv.To) {
				a.m.moved.Inc()
				a.log.Info("rehomed player told to reconnect to the new cell", "player", mv.PlayerID, "to", mv.To)
			}
		}
	}
}

// trimMarkersLocked drops expired markers, and the oldest beyond
// MaxMarkers, from the front of the arrival queue. a.mu must be held.
func (a *Agent) trimMarkersLocked() {
	now := a.now()
	for len(a.order) > 0 {
		q := a.order[0]
		mk, ok := a.markers[q.player]
		current := ok && mk.seq == q.seq
		if current && now.Sub(mk.at) < a.cfg.MarkerTTL && len(a.markers) <= MaxMarkers {
			break
		}
		if current {
			delete(a.markers, q.player)
		}
		a.order = a.order[1:]
	}
	// Keep the queue's backing array from growing without bound.
	if cap(a.order) > 1024 && len(a.order) < cap(a.order)/4 {
		a.order = append([]queued(nil), a.order...)
	}
}

func (a *Agent) pollRouting(ctx context.Context) error {
	rt, err := a.ctl.RoutingTable(ctx)
	if err != nil {
		return err
	}
	blocked := make(map[string]bool, len(rt.Quarantined))
	admitted := map[string]bool{}
	for _, p := range rt.Quarantined {
		blocked[p] = true
	}
	for cell, ps := range rt.QuarantineCells {
		for _, p := range ps {
			if cell == a.cfg.Cell {
				admitted[p] = true
			} else {
				blocked[p] = true
			}
		}
	}
	for _, p := range rt.Pins[a.cfg.Cell] {
		admitted[p] = true
	}
	a.mu.Lock()
	var newlyBlocked []string
	for p := range blocked {
		if !a.blocked[p] {
			newlyBlocked = append(newlyBlocked, p)
		}
	}
	a.blocked, a.admitted = blocked, admitted
	a.mu.Unlock()
	for _, p := range newlyBlocked {
		if a.sess.ClosePlayer(p, string(apierr.Quarantined)) {
			a.log.Info("quarantined player's session closed", "player", p)
		}
	}
	return nil
}

// drainLoop moves the players of a draining cell to its failover cell, in
// the batches the order sets, and tells those still here again after
// RetellAfter.
func (a *Agent) drainLoop(ctx context.Context) {
	wait := time.Duration(0)
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-a.drainWake:
			case <-t.C:
			}
			t.Stop()
		} else {
			select {
			case <-ctx.Done():
				return
			case <-a.drainWake:
			}
		}
		a.mu.RLock()
		draining, d := a.draining, a.drain
		a.mu.RUnlock()
		wait = 0
		if !draining {
			continue
		}
		if d.TargetCell == "" {
			// Nowhere to go yet: players stay; the next order may name a
			// target.
			wait = a.cfg.Interval
			continue
		}
		told, err := a.sess.Redirect(ctx, d.Batch, time.Duration(d.IntervalMS)*time.Millisecond, func(player, home string) (protocol.Reconnect, bool) {
			if home == a.cfg.Cell {
				return protocol.Reconnect{Reason: ReasonDraining, Cell: d.TargetCell, Gateway: d.TargetGateway}, true
			}
			// A guest of this cell (its own home failed over here): the
			// router knows best where it goes now.
			return protocol.Reconnect{Reason: ReasonDraining}, true
		})
		a.m.redirected.Add(float64(told))
		if err != nil && ctx.Err() == nil {
			a.log.Warn("drain: redirect", "error", err)
		}
		if told > 0 {
			a.log.Info("drain: players told to move", "told", told, "to", d.TargetCell)
		}
		wait = a.cfg.RetellAfter
	}
}

type metrics struct {
	polls      *prometheus.CounterVec
	draining   prometheus.Gauge
	redirected prometheus.Counter
	moved      prometheus.Counter
	markers    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var (
		m   metrics
		err error
	)
	if m.polls, err = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_agent_polls_total",
		Help: "Polls of the control plane for this cell's orders and routing table, by result (ok, error). On error the last orders stay in force.",
	}, []string{"result"})); err != nil {
		return nil, err
	}
	if m.draining, err = telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livecell_agent_draining",
		Help: "1 while the control plane has this cell draining: new sessions refused, players moved to the failover cell.",
	})); err != nil {
		return nil, err
	}
	if m.redirected, err = telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livecell_agent_drain_redirects_total",
		Help: "Sessions told to reconnect elsewhere because the cell drains.",
	})); err != nil {
		return nil, err
	}
	if m.moved, err = telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livecell_agent_rehome_moves_total",
		Help: "Open sessions of rehomed players sent to their new cell.",
	})); err != nil {
		return nil, err
	}
	if m.markers, err = telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livecell_agent_redirect_markers",
		Help: "Redirect markers held: players who moved away and are answered player_moved here.",
	})); err != nil {
		return nil, err
	}
	return &m, nil
}
