package router

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
)

// Placement says why a cell was chosen.
type Placement string

const (
	// PlacementExisting: the player's home cell from the directory.
	PlacementExisting Placement = "existing"
	// PlacementFailover: the home cell is down, disabled or draining; this
	// is the first healthy, active cell of its failover list (draining and
	// disabled cells are skipped, as for new players).
	PlacementFailover Placement = "failover"
	// PlacementNew: no player was given; a suggestion for a new player.
	PlacementNew Placement = "new"
	// PlacementPinned: the override table pins the player to this cell.
	PlacementPinned Placement = "pinned"
	// PlacementQuarantine: the override table quarantines the player in
	// this cell.
	PlacementQuarantine Placement = "quarantine"
)

// ResolveRequest is a question to the router. Every field is optional.
type ResolveRequest struct {
	PlayerID   string // a UUID; empty for a player without an account
	RegionHint string // a cell id or cloud region the client prefers, for new players
	// RTTs are the round-trip times the client measured to cells or
	// regions (placement.ParseRTTs reads the query form); for new players.
	RTTs []placement.RTT
}

// Resolution is the router's answer: the cell to log in at and connect to.
type Resolution struct {
	PlayerID  string    `json:"player_id,omitempty"` // canonical form of the request's player
	HomeCell  string    `json:"home_cell"`           // cell to use now
	Region    string    `json:"region"`
	Gateway   string    `json:"gateway"` // TCP gateway address
	API       string    `json:"api"`     // HTTP API address (login)
	Placement Placement `json:"placement"`
	// FailoverFrom is the player's directory home when Placement is
	// failover, so the client can go back once it recovers.
	FailoverFrom string `json:"failover_from,omitempty"`
}

// view is an immutable snapshot of the cells, their health and the
// routing table.
type view struct {
	version   int
	cells     []cellView            // cells.yaml order
	index     map[string]int        // cell id → position in cells
	overrides map[string]Override   // shared with Router.routing: never written
	cands     []placement.Candidate // cells as placement sees them, cells.yaml order
	anyUp     bool                  // some cell accepts new players
}

type cellView struct {
	config.Cell // State is the effective state: cells.yaml's or the operator's
	configState config.CellState
	operator    config.CellState // set at run time; "" when none
	up          bool
	sessions    int
	reported    string
	fails       int
	version     string
	lastErr     string
	lastAt      time.Time
}

func (v *view) cell(id string) (*cellView, bool) {
	i, ok := v.index[id]
	if !ok {
		return nil, false
	}
	return &v.cells[i], true
}

// serving reports whether the cell can take its own players.
func (c *cellView) serving() bool { return c.up && c.State != config.StateDisabled }

// acceptsNew reports whether the cell may be given players it does not
// already hold: healthy and active. Draining and disabled cells never are.
func (c *cellView) acceptsNew() bool { return c.up && c.State == config.StateActive }

func (c *cellView) resolution(player string, p Placement) Resolution {
	return Resolution{PlayerID: player, HomeCell: c.ID, Region: c.Region, Gateway: c.Gateway, API: c.API, Placement: p}
}

// Resolve answers req from the directory, the routing table and the last
// probe round. Errors carry an apierr code: BadRequest, UnknownPlayer,
// NoHealthyCell, Quarantined, Unavailable (directory down) or Internal.
func (r *Router) Resolve(ctx context.Context, req ResolveRequest) (Resolution, error) {
	start := time.Now()
	res, err := r.resolve(ctx, req)
	r.m.observe(res.Placement, err, time.Since(start))
	return res, err
}

func (r *Router) resolve(ctx context.Context, req ResolveRequest) (Resolution, error) {
	player, err := canonicalPlayer(req.PlayerID)
	if err != nil {
		return Resolution{}, err
	}
	if req.RegionHint != "" {
		if err := placement.CheckKey(req.RegionHint); err != nil {
			return Resolution{}, apierr.New(apierr.BadRequest, "region_hint: %s", apierr.MessageOf(err))
		}
	}
	if len(req.RTTs) > placement.MaxRTTs {
		return Resolution{}, apierr.New(apierr.BadRequest, "rtt has %d entries; at most %d", len(req.RTTs), placement.MaxRTTs)
	}
	v := r.view.Load()
	if player == "" {
		return r.placeNew(v, req)
	}
	if o, ok := v.overrides[player]; ok {
		if res, err, done := overridden(v, player, o); done {
			return res, err
		}
	}

	homeID, err := r.homes.Home(ctx, player)
	if err != nil {
		if _, ok := apierr.From(err); ok {
			return Resolution{}, fmt.Errorf("router: home of %s: %w", player, err)
		}
		return Resolution{}, apierr.Wrap("router.Resolve", apierr.Unavailable, "player directory unavailable, retry later", err)
	}
	v = r.view.Load() // the lookup may have taken a while
	home, ok := v.cell(homeID)
	if !ok {
		// The directory and cells.yaml disagree: an operator's problem,
		// never guessed around, since the player's data lives in that cell.
		return Resolution{}, apierr.Wrap("router.Resolve", apierr.Internal, "",
			fmt.Errorf("home cell %q of player %s is not in cells.yaml", homeID, player))
	}
	if home.serving() && home.State != config.StateDraining {
		return home.resolution(player, PlacementExisting), nil
	}
	// Failover ignores capacity on purpose: cells keep headroom for exactly
	// this, and refusing would strand the players of a dead cell.
	for _, id := range home.Failover {
		if fc, ok := v.cell(id); ok && fc.acceptsNew() {
			res := fc.resolution(player, PlacementFailover)
			res.FailoverFrom = home.ID
			return res, nil
		}
	}
	// A draining cell still serves its own players when none of its
	// failover cells can: draining moves players, it does not strand them.
	if home.serving() {
		return home.resolution(player, PlacementExisting), nil
	}
	return Resolution{}, apierr.New(apierr.NoHealthyCell, "home cell %s and its failover cells are unavailable", home.ID)
}

// overridden applies the override table; done is false when the player is
// to be routed as if it had no entry (a pin whose cell does not serve).
func overridden(v *view, player string, o Override) (res Resolution, err error, done bool) {
	c, known := v.cell(o.Cell)
	switch o.Kind {
	case OverridePin:
		if known && c.serving() {
			return c.resolution(player, PlacementPinned), nil, true
		}
		return Resolution{}, nil, false
	case OverrideQuarantine:
		if o.Cell == "" {
			return Resolution{}, apierr.New(apierr.Quarantined, "this player is quarantined; contact support"), true
		}
		if known && c.serving() {
			return c.resolution(player, PlacementQuarantine), nil, true
		}
		// Never released into the general population because the
		// quarantine cell is out.
		return Resolution{}, apierr.New(apierr.NoHealthyCell, "quarantine cell %s is unavailable", o.Cell), true
	}
	return Resolution{}, nil, false
}

// placeNew picks a cell for a player without a home by the placement rule.
func (r *Router) placeNew(v *view, req ResolveRequest) (Resolution, error) {
	i, _ := r.cfg.Placement.Choose(v.cands, req.RTTs, req.RegionHint)
	if i < 0 {
		if v.anyUp {
			return Resolution{}, apierr.New(apierr.NoHealthyCell, "every cell that takes new players is full")
		}
		return Resolution{}, apierr.New(apierr.NoHealthyCell, "no healthy cell takes new players")
	}
	return v.cells[i].resolution("", PlacementNew), nil
}

// canonicalPlayer accepts only the 36-character UUID form (any case) and
// returns it lower-cased, the form the directory stores.
func canonicalPlayer(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if len(s) != 36 {
		return "", apierr.New(apierr.BadRequest, "player must be a UUID")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", apierr.New(apierr.BadRequest, "player must be a UUID")
	}
	return id.String(), nil
}
