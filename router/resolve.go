package router

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
)

// Placement says why a cell was chosen.
type Placement string

const (
	// PlacementExisting: the player's home cell from the directory.
	PlacementExisting Placement = "existing"
	// PlacementFailover: the home cell is down or disabled; this is the first
	// healthy, active cell of its failover list (draining and disabled
	// cells are skipped, as for new players).
	PlacementFailover Placement = "failover"
	// PlacementNew: no player was given; a suggestion for a new player.
	PlacementNew Placement = "new"
)

// maxHintLen bounds region_hint: cell ids are at most 32 bytes and cloud
// region names are shorter than 64.
const maxHintLen = 64

// ResolveRequest is a question to the router. Both fields are optional.
type ResolveRequest struct {
	PlayerID   string // a UUID; empty for a player without an account
	RegionHint string // a cell id or cloud region the client prefers, for new players
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

// view is an immutable snapshot of the cells and their health.
type view struct {
	version int
	cells   []cellView     // cells.yaml order
	index   map[string]int // cell id → position in cells
}

type cellView struct {
	config.Cell
	up       bool
	sessions int
	fails    int
	version  string
	lastErr  string
	lastAt   time.Time
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

// hasRoom reports whether the cell is below its capacity.
func (c *cellView) hasRoom() bool { return c.sessions < c.Capacity }

// lessLoaded compares sessions/capacity without floating point.
func (c *cellView) lessLoaded(o *cellView) bool {
	return int64(c.sessions)*int64(o.Capacity) < int64(o.sessions)*int64(c.Capacity)
}

func (c *cellView) resolution(player string, p Placement) Resolution {
	return Resolution{PlayerID: player, HomeCell: c.ID, Region: c.Region, Gateway: c.Gateway, API: c.API, Placement: p}
}

// Resolve answers req from the directory and the last probe round. Errors
// carry an apierr code: BadRequest, UnknownPlayer, NoHealthyCell,
// Unavailable (directory down) or Internal.
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
	if err := checkHint(req.RegionHint); err != nil {
		return Resolution{}, err
	}
	if player == "" {
		return r.placeNew(r.view.Load(), req.RegionHint)
	}

	homeID, err := r.homes.Home(ctx, player)
	if err != nil {
		if _, ok := apierr.From(err); ok {
			return Resolution{}, fmt.Errorf("router: home of %s: %w", player, err)
		}
		return Resolution{}, apierr.Wrap("router.Resolve", apierr.Unavailable, "player directory unavailable, retry later", err)
	}
	v := r.view.Load()
	home, ok := v.cell(homeID)
	if !ok {
		// The directory and cells.yaml disagree: an operator's problem,
		// never guessed around, since the player's data lives in that cell.
		return Resolution{}, apierr.Wrap("router.Resolve", apierr.Internal, "",
			fmt.Errorf("home cell %q of player %s is not in cells.yaml", homeID, player))
	}
	if home.serving() {
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
	return Resolution{}, apierr.New(apierr.NoHealthyCell, "home cell %s and its failover cells are unavailable", home.ID)
}

// placeNew picks a cell for a player without a home: the hinted cell (by id,
// else the cells of the hinted region) when one can take the player, else
// the least-loaded cell that can.
func (r *Router) placeNew(v *view, hint string) (Resolution, error) {
	if hint != "" {
		var best *cellView
		byID := false
		for i := range v.cells {
			if c := &v.cells[i]; strings.EqualFold(c.ID, hint) {
				byID = true
				if c.acceptsNew() && c.hasRoom() {
					best = c
				}
				break
			}
		}
		if !byID {
			for i := range v.cells {
				c := &v.cells[i]
				if strings.EqualFold(c.Region, hint) && c.acceptsNew() && c.hasRoom() && (best == nil || c.lessLoaded(best)) {
					best = c
				}
			}
		}
		if best != nil {
			return best.resolution("", PlacementNew), nil
		}
	}
	var best *cellView
	anyUp := false
	for i := range v.cells {
		c := &v.cells[i]
		if !c.acceptsNew() {
			continue
		}
		anyUp = true
		// Strictly less: ties keep the earlier cell in cells.yaml.
		if c.hasRoom() && (best == nil || c.lessLoaded(best)) {
			best = c
		}
	}
	if best == nil {
		if anyUp {
			return Resolution{}, apierr.New(apierr.NoHealthyCell, "every cell that takes new players is full")
		}
		return Resolution{}, apierr.New(apierr.NoHealthyCell, "no healthy cell takes new players")
	}
	return best.resolution("", PlacementNew), nil
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

// checkHint allows the characters of cell ids and cloud region names only,
// so a hint can be logged and compared without escaping worries.
func checkHint(s string) error {
	if len(s) > maxHintLen {
		return apierr.New(apierr.BadRequest, "region_hint is longer than %d bytes", maxHintLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return apierr.New(apierr.BadRequest, "region_hint must be a cell id or region name (letters, digits, '-', '_', '.')")
		}
	}
	return nil
}
