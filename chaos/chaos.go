// Package chaos runs drills against a running multi-process world (see
// chaos/world) and measures how the system recovers.
//
// KillCell is the first drill: players connected to every cell, one cell's
// processes killed with SIGKILL, and three claims checked against the
// clock: every player of the dead cell is connected to its failover cell
// within a bound, no player of another cell notices, and the routers answer
// every resolve throughout. Players connected straight to a gateway find
// their way back as a game client does: on disconnect they ask the router
// again, which sends them to the failover cell of cells.yaml once its probes
// have failed the dead cell, and they resume their session there with the
// resume token of their Welcome. Players connected through the world's
// edge (over TCP, QUIC and WebSocket) must never see their connection
// close: the edge moves their sessions to the failover cell and tells them
// with a session.moved push, and only requests in flight may fail, with a
// retryable code.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/internal/config"
)

// Defaults for zero KillCellOptions fields.
const (
	DefaultPlayers         = 20
	DefaultEdgePlayers     = 9
	DefaultBound           = 15 * time.Second
	DefaultResolveInterval = 50 * time.Millisecond
)

// KillCellOptions configure a kill-cell drill.
type KillCellOptions struct {
	World *world.State  // required
	Cells *config.Cells // the world's cells.yaml; nil loads World.Config
	Cell  string        // the cell to kill; required
	// Players is how many bots connect straight to a gateway, spread
	// evenly over the running cells, so some are homed to the victim and
	// some are not.
	Players int
	// EdgePlayers is how many more bots connect through the world's edge,
	// spread over the cells the same way and rotating through its
	// transports (tcp, quic, ws). 0 means DefaultEdgePlayers when the world
	// runs an edge; negative means none.
	EdgePlayers int
	// Bound is how long an affected player may take, from the kill, to be
	// connected to the failover cell.
	Bound time.Duration
	// ResolveInterval is how often each router is asked during the drill.
	ResolveInterval time.Duration
	// Concurrency bounds bot registrations in flight (password hashing is
	// the cost); 0 means 8.
	Concurrency int
	Logger      *slog.Logger // nil discards
	// Kill ends one process; nil means world.Kill (SIGKILL). Tests of the
	// drill's own logic can substitute it.
	Kill func(world.Process) error
}

// Report is the outcome of a drill; `livecell chaos kill-cell --json`
// prints it.
type Report struct {
	Drill        string   `json:"drill"`
	Cell         string   `json:"cell"`
	FailoverCell string   `json:"failover_cell"`
	Killed       []string `json:"killed"` // "name (pid N)"
	Routers      int      `json:"routers"`
	BoundMS      float64  `json:"bound_ms"`

	Players               int `json:"players"`
	Affected              int `json:"affected"`
	Recovered             int `json:"recovered"`
	Resumed               int `json:"resumed"` // recovered with the resume token
	Unaffected            int `json:"unaffected"`
	UnaffectedDisconnects int `json:"unaffected_disconnects"`
	// The edge leg: players connected through the world's edge, counted
	// apart from the others (Players, Affected, … are direct players).
	EdgePlayers   int `json:"edge_players"`
	EdgeAffected  int `json:"edge_affected"`
	EdgeRecovered int `json:"edge_recovered"`
	// EdgeDisconnects counts edge players whose own connection closed:
	// the edge must keep every one open.
	EdgeDisconnects int `json:"edge_disconnects"`
	// EdgeInterrupted counts requests of edge players that failed with a
	// retryable code (in flight when their session moved).
	EdgeInterrupted int `json:"edge_interrupted"`
	// EdgeTransports counts the affected edge players per transport.
	EdgeTransports map[string]int `json:"edge_transports,omitempty"`
	// EdgeTimeToRecover is from the kill until each affected edge player's
	// session answered on the failover cell.
	EdgeTimeToRecover Distribution `json:"edge_time_to_recover"`

	// TimeToRecover is from the kill until each affected player was
	// connected to the failover cell again; TimeToDetect until it saw its
	// session end.
	TimeToRecover Distribution `json:"time_to_recover"`
	TimeToDetect  Distribution `json:"time_to_detect"`

	Resolves        int            `json:"resolves"`
	ResolveFailures int            `json:"resolve_failures"`
	Placements      map[string]int `json:"placements"`
	DurationMS      float64        `json:"duration_ms"` // kill to end of the drill

	Pass     bool        `json:"pass"`
	Failures []string    `json:"failures,omitempty"`
	Notes    []string    `json:"notes,omitempty"`
	Bots     []BotResult `json:"bots"`
}

// killClock tells watchers when the kill happened.
type killClock struct {
	at   time.Time // written once, before done is closed
	done chan struct{}
}

func (k *killClock) start() time.Time {
	k.at = time.Now()
	close(k.done)
	return k.at
}

// when returns the kill time, or false when the kill has not started.
func (k *killClock) when() (time.Time, bool) {
	select {
	case <-k.done:
		return k.at, true
	default:
		return time.Time{}, false
	}
}

// Distribution summarises durations in milliseconds.
type Distribution struct {
	N     int     `json:"n"`
	MinMS float64 `json:"min_ms"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// distribution uses nearest-rank percentiles: with the handful of samples a
// drill has, interpolating would report times no player saw.
func distribution(ms []float64) Distribution {
	if len(ms) == 0 {
		return Distribution{}
	}
	s := slices.Clone(ms)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Distribution{N: len(s), MinMS: s[0], P50MS: rank(0.50), P99MS: rank(0.99), MaxMS: s[len(s)-1]}
}

// KillCell runs the kill-cell drill. It returns an error when the drill
// cannot run (no such cell, bots cannot sign in); a drill that ran and
// failed returns a Report with Pass false and the reasons in Failures.
func KillCell(ctx context.Context, o KillCellOptions) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	victims := o.World.CellProcesses(o.Cell)
	var running []world.Process
	for _, p := range victims {
		if world.Alive(p) {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		return nil, fmt.Errorf("chaos: cell %s has no running process in the world in %s", o.Cell, o.World.Dir)
	}
	homes := o.homeCells()
	failover, err := o.failoverCell()
	if err != nil {
		return nil, err
	}
	if len(homes) < 2 {
		return nil, fmt.Errorf("chaos: kill-cell needs a second running cell for the unaffected players, have %v", homes)
	}
	if o.Players < len(homes) {
		return nil, fmt.Errorf("chaos: --players %d: want at least one per running cell (%d)", o.Players, len(homes))
	}
	routers := o.World.RouterURLs()
	if len(routers) == 0 {
		return nil, errors.New("chaos: the world runs no router")
	}
	log := o.Logger

	env := &botEnv{routers: routers, http: &http.Client{Timeout: 5 * time.Second}}
	if env.edge, err = worldEdge(o.World); err != nil {
		return nil, err
	}
	switch {
	case o.EdgePlayers < 0:
		o.EdgePlayers = 0
	case env.edge == nil && o.EdgePlayers > 0:
		return nil, fmt.Errorf("chaos: --edge-players %d, but the world runs no edge", o.EdgePlayers)
	case env.edge != nil && o.EdgePlayers == 0:
		o.EdgePlayers = DefaultEdgePlayers
	}
	bots, err := o.connectBots(ctx, env, homes)
	defer func() {
		for _, b := range bots {
			b.close()
		}
	}()
	if err != nil {
		return nil, err
	}
	log.Info("bots connected", "players", len(bots), "cells", homes)

	// From here on every router answer counts: registration went through
	// them too, but the claim is about the drill.
	env.stats.reset()
	kill := &killClock{done: make(chan struct{})}
	stop := make(chan struct{})
	recoverCtx, cancelRecover := context.WithCancel(ctx)
	defer cancelRecover()
	var watchers sync.WaitGroup
	for _, b := range bots {
		b.affected = b.home == o.Cell
		if b.via != "" {
			watchers.Go(func() { env.watchEdge(recoverCtx, b, failover, kill, stop) })
			continue
		}
		watchers.Go(func() { env.watch(recoverCtx, b, o.Cell, kill, stop) })
	}
	pollCtx, stopPolling := context.WithCancel(ctx)
	var pollers sync.WaitGroup
	for i, r := range routers {
		pollers.Go(func() { env.poll(pollCtx, r, bots, i, o.ResolveInterval) })
	}

	rep := &Report{Drill: "kill-cell", Cell: o.Cell, FailoverCell: failover, Routers: len(routers), BoundMS: ms(o.Bound), Players: len(bots) - o.EdgePlayers}
	// The kill time is published before the first signal, so that a
	// watcher woken by the kill always finds it.
	killAt := kill.start()
	for _, p := range running {
		if err := o.Kill(p); err != nil {
			rep.Failures = append(rep.Failures, fmt.Sprintf("kill %s: %v", p.Name, err))
		}
		rep.Killed = append(rep.Killed, fmt.Sprintf("%s (pid %d)", p.Name, p.PID))
	}
	log.Info("cell killed", "cell", o.Cell, "processes", rep.Killed)

	// Wait for every affected bot to be back, or the bound.
	boundTimer := time.AfterFunc(time.Until(killAt.Add(o.Bound)), cancelRecover)
	defer boundTimer.Stop()
	for {
		if allSettled(bots) || recoverCtx.Err() != nil {
			break
		}
		select {
		case <-recoverCtx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancelRecover()
	rep.DurationMS = ms(time.Since(killAt))
	// The unaffected players must still be connected, and serving.
	for _, b := range bots {
		if b.affected {
			continue
		}
		select {
		case <-b.conn.Done():
		default:
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := b.conn.Ping(pctx); err != nil {
				b.mu.Lock()
				b.res.Error = fmt.Sprintf("unaffected session stopped answering pings: %v", err)
				b.mu.Unlock()
			}
			cancel()
		}
	}
	close(stop)
	watchers.Wait()
	stopPolling()
	pollers.Wait()

	rep.summarise(bots, env, failover)
	if len(rep.Failures) == 0 && rep.Affected > 0 {
		rep.Pass = true
	}
	return rep, nil
}

func (o *KillCellOptions) defaults() error {
	if o.World == nil {
		return errors.New("chaos: KillCellOptions.World is required")
	}
	if o.Cell == "" {
		return errors.New("chaos: KillCellOptions.Cell is required")
	}
	if o.Cells == nil {
		cells, err := config.Load(o.World.Config)
		if err != nil {
			return fmt.Errorf("chaos: the world's cells.yaml: %w", err)
		}
		o.Cells = cells
	}
	if _, ok := o.Cells.Cell(o.Cell); !ok {
		return fmt.Errorf("chaos: cell %q is not in the world's cells.yaml (have %v)", o.Cell, o.Cells.IDs())
	}
	if o.Players <= 0 {
		o.Players = DefaultPlayers
	}
	if o.Bound <= 0 {
		o.Bound = DefaultBound
	}
	if o.ResolveInterval <= 0 {
		o.ResolveInterval = DefaultResolveInterval
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Kill == nil {
		o.Kill = world.Kill
	}
	return nil
}

// homeCells are the active cells with a running process: where new players
// can be placed.
func (o *KillCellOptions) homeCells() []string {
	var out []string
	for _, c := range o.Cells.Cells {
		if c.State != config.StateActive {
			continue
		}
		for _, p := range o.World.CellProcesses(c.ID) {
			if world.Alive(p) {
				out = append(out, c.ID)
				break
			}
		}
	}
	return out
}

// failoverCell is where the router will send the victim's players: the
// first active cell of its failover list that runs.
func (o *KillCellOptions) failoverCell() (string, error) {
	victim, _ := o.Cells.Cell(o.Cell)
	for _, id := range victim.Failover {
		c, ok := o.Cells.Cell(id)
		if !ok || c.State != config.StateActive {
			continue
		}
		for _, p := range o.World.CellProcesses(id) {
			if world.Alive(p) {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("chaos: cell %s has no running active failover cell (failover list %v): its players would have nowhere to go", o.Cell, victim.Failover)
}

// connectBots registers and connects o.Players direct bots and
// o.EdgePlayers edge bots, round-robin over homes (and edge transports),
// with bounded concurrency. On error it returns the bots it has, for the
// caller to close.
func (o *KillCellOptions) connectBots(ctx context.Context, env *botEnv, homes []string) ([]*bot, error) {
	n := o.Players + o.EdgePlayers
	bots := make([]*bot, n)
	errs := make([]error, n)
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			via := ""
			if k := i - o.Players; k >= 0 {
				via = edgeTransports[k%len(edgeTransports)]
			}
			bots[i], errs[i] = env.register(rctx, i, homes[i%len(homes)], via)
		})
	}
	wg.Wait()
	var ok []*bot
	for _, b := range bots {
		if b != nil {
			ok = append(ok, b)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ok, fmt.Errorf("chaos: connect bots: %w", err)
	}
	return ok, nil
}

// poll asks one router about the bots' players, round-robin, every
// interval, until ctx ends.
func (e *botEnv) poll(ctx context.Context, base string, bots []*bot, offset int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := offset; ; i++ {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = e.resolve(rctx, base, url.Values{"player": {bots[i%len(bots)].player}})
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// allSettled reports whether every affected bot has recovered or given up.
func allSettled(bots []*bot) bool {
	for _, b := range bots {
		if !b.affected {
			continue
		}
		r := b.result()
		if r.RecoveredMS == nil && r.Error == "" {
			return false
		}
	}
	return true
}

func (rep *Report) summarise(bots []*bot, env *botEnv, failover string) {
	var ttr, ttd, edgeTTR []float64
	for _, b := range bots {
		r := b.result()
		r.Affected = b.affected
		rep.Bots = append(rep.Bots, r)
		if b.via != "" {
			if t := rep.summariseEdge(r, failover); t != nil {
				edgeTTR = append(edgeTTR, *t)
			}
			continue
		}
		if !b.affected {
			rep.Unaffected++
			if r.DisconnectedMS != nil || r.Error != "" {
				rep.UnaffectedDisconnects++
				rep.Failures = append(rep.Failures, fmt.Sprintf("unaffected player %s (%s): %s", r.Player, r.Home, r.Error))
			}
			continue
		}
		rep.Affected++
		if r.DisconnectedMS != nil {
			ttd = append(ttd, *r.DisconnectedMS)
		}
		switch {
		case r.RecoveredMS == nil && r.DisconnectedMS == nil:
			rep.Failures = append(rep.Failures, fmt.Sprintf("player %s (%s): its session to the killed cell never ended", r.Player, r.Home))
			continue
		case r.RecoveredMS == nil:
			rep.Failures = append(rep.Failures, fmt.Sprintf("player %s (%s) did not recover within %s: %s", r.Player, r.Home, time.Duration(rep.BoundMS)*time.Millisecond, r.Error))
			continue
		case r.RecoveredCell != failover:
			rep.Failures = append(rep.Failures, fmt.Sprintf("player %s (%s) recovered on %s, want the failover cell %s", r.Player, r.Home, r.RecoveredCell, failover))
		case *r.RecoveredMS > rep.BoundMS:
			rep.Failures = append(rep.Failures, fmt.Sprintf("player %s (%s) recovered after %.0f ms, bound %.0f ms", r.Player, r.Home, *r.RecoveredMS, rep.BoundMS))
		}
		rep.Recovered++
		if r.Resumed {
			rep.Resumed++
		}
		ttr = append(ttr, *r.RecoveredMS)
	}
	rep.TimeToRecover, rep.TimeToDetect = distribution(ttr), distribution(ttd)
	rep.EdgeTimeToRecover = distribution(edgeTTR)
	if rep.EdgePlayers > 0 && rep.EdgeAffected == 0 {
		rep.Failures = append(rep.Failures, "no edge player was homed to the killed cell: the edge leg measured nothing")
	}
	if rep.Affected == 0 {
		rep.Failures = append(rep.Failures, "no player was homed to the killed cell: nothing was measured")
	}

	env.stats.mu.Lock()
	rep.Resolves, rep.ResolveFailures, rep.Placements = env.stats.total, env.stats.failed, env.stats.placement
	errs := slices.Clone(env.stats.errs)
	env.stats.mu.Unlock()
	if rep.ResolveFailures > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("routers failed %d of %d resolves during the drill, first: %v", rep.ResolveFailures, rep.Resolves, errs))
	}
	if rep.Resolves == 0 {
		rep.Failures = append(rep.Failures, "no resolve was made during the drill: router availability was not measured")
	}
	if rep.EdgePlayers == 0 {
		rep.Notes = append(rep.Notes, "no edge player: the world runs no edge, or --edge-players is negative")
	}
}

// summariseEdge counts one edge player and returns its time to recover
// when it recovered.
func (rep *Report) summariseEdge(r BotResult, failover string) *float64 {
	rep.EdgePlayers++
	rep.EdgeInterrupted += r.Interrupted
	if r.DisconnectedMS != nil {
		rep.EdgeDisconnects++
	}
	if !r.Affected {
		if r.Error != "" {
			rep.Failures = append(rep.Failures, fmt.Sprintf("unaffected edge player %s (%s, %s): %s", r.Player, r.Home, r.Transport, r.Error))
		}
		return nil
	}
	rep.EdgeAffected++
	if rep.EdgeTransports == nil {
		rep.EdgeTransports = map[string]int{}
	}
	rep.EdgeTransports[r.Transport]++
	switch {
	case r.Error != "":
		rep.Failures = append(rep.Failures, fmt.Sprintf("edge player %s (%s, %s): %s", r.Player, r.Home, r.Transport, r.Error))
		return nil
	case r.RecoveredMS == nil:
		rep.Failures = append(rep.Failures, fmt.Sprintf("edge player %s (%s, %s): its session was not moved within %s", r.Player, r.Home, r.Transport, time.Duration(rep.BoundMS)*time.Millisecond))
		return nil
	case r.RecoveredCell != failover:
		rep.Failures = append(rep.Failures, fmt.Sprintf("edge player %s (%s, %s) moved to %s, want the failover cell %s", r.Player, r.Home, r.Transport, r.RecoveredCell, failover))
	case *r.RecoveredMS > rep.BoundMS:
		rep.Failures = append(rep.Failures, fmt.Sprintf("edge player %s (%s, %s) recovered after %.0f ms, bound %.0f ms", r.Player, r.Home, r.Transport, *r.RecoveredMS, rep.BoundMS))
	}
	rep.EdgeRecovered++
	return r.RecoveredMS
}
