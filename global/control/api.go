package control

import (
	"time"

	"github.com/livecell/livecell/router"
)

// HTTP paths of the control plane.
const (
	// PathDirectory + "{player}": GET → Entry; PUT SetHomeRequest → Entry.
	PathDirectory = "/v1/directory/"
	// PathCells: GET → CellsResponse.
	PathCells = "/v1/cells"
	// PathRouting: GET → RoutingResponse (routers and cells poll it; it
	// answers 304 to a matching If-None-Match).
	PathRouting = "/v1/routing"
	// PathOverrides: GET → OverridesResponse; + "{player}": PUT
	// OverrideRequest → OverrideEntry, DELETE → 204.
	PathOverrides = "/v1/overrides"
	// PathPlayers + "{player}/rehome": POST RehomeRequest → RehomeResult.
	PathPlayers = "/v1/players/"
	// PathMoves: GET ?after=N → MovesResponse, every rehome after the
	// cursor; without after, the cursor to follow from now on.
	PathMoves = "/v1/moves"
	// PathCells + "/{cell}/drain": PUT DrainRequest → DrainState, DELETE
	// → 204. PathCells + "/{cell}/orders": GET → Orders.
)

// Scopes a server credential needs on top of the server audience.
const (
	// ScopeDirectoryWrite lets a cell record a new player's home. A
	// dedicated server's credential (scope match.results, say) must not
	// be able to place players.
	ScopeDirectoryWrite = "directory.write"
	// ScopeAdmin lets an operator drain cells, rehome players and edit
	// the override table.
	ScopeAdmin = "control.admin"
)

// Entry is one player's directory entry.
type Entry struct {
	PlayerID string `json:"player_id"`
	Cell     string `json:"cell"`
}

// SetHomeRequest is the body of PUT PathDirectory{player}.
type SetHomeRequest struct {
	Cell string `json:"cell"`
}

// CellsResponse is the body of GET PathCells: the same view the routers
// serve on their own /v1/cells, so one decoder reads both.
type CellsResponse = router.CellsResponse

// RoutingResponse is the body of GET PathRouting: what the control plane
// adds to cells.yaml and the directory at run time. Player ids are grouped
// by cell so that a full override table stays well under a megabyte.
type RoutingResponse struct {
	CellStates []CellStateEntry `json:"cell_states"`
	// Pins maps a cell to the players pinned to it.
	Pins map[string][]string `json:"pins"`
	// Quarantined players are refused everywhere; QuarantineCells maps a
	// quarantine cell to the players sent only there.
	Quarantined     []string            `json:"quarantined"`
	QuarantineCells map[string][]string `json:"quarantine_cells"`
}

// CellStateEntry is an operator's run-time state for a cell.
type CellStateEntry struct {
	Cell            string    `json:"cell"`
	State           string    `json:"state"` // draining
	DrainBatch      int       `json:"drain_batch"`
	DrainIntervalMS int64     `json:"drain_interval_ms"`
	Reason          string    `json:"reason,omitempty"`
	By              string    `json:"by,omitempty"`
	Since           time.Time `json:"since"`
}

// OverrideRequest is the body of PUT PathOverrides/{player}.
type OverrideRequest struct {
	Kind   string `json:"kind"`           // pin or quarantine
	Cell   string `json:"cell,omitempty"` // required for a pin
	Reason string `json:"reason,omitempty"`
}

// OverrideEntry is one entry of the override table.
type OverrideEntry struct {
	PlayerID string    `json:"player_id"`
	Kind     string    `json:"kind"`
	Cell     string    `json:"cell,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
}

// OverridesResponse is the body of GET PathOverrides.
type OverridesResponse struct {
	Overrides []OverrideEntry `json:"overrides"`
}

// DrainRequest is the body of PUT PathCells/{cell}/drain. Zero fields take
// the defaults.
type DrainRequest struct {
	Batch      int    `json:"batch,omitempty"`       // players told to move per batch; default 100
	IntervalMS int64  `json:"interval_ms,omitempty"` // between batches; default 1000
	Reason     string `json:"reason,omitempty"`
}

// Drain defaults: 100 players a second, a pace at which the cells that
// receive them see a ramp rather than a reconnect storm.
const (
	DefaultDrainBatch    = 100
	DefaultDrainInterval = time.Second
)

// DrainState is a cell's drain as the control plane runs it.
type DrainState struct {
	Cell       string    `json:"cell"`
	State      string    `json:"state"` // draining
	Batch      int       `json:"batch"`
	IntervalMS int64     `json:"interval_ms"`
	Reason     string    `json:"reason,omitempty"`
	By         string    `json:"by,omitempty"`
	Since      time.Time `json:"since"`
	// Target is the cell the drained players are sent to now: the first
	// healthy, active cell of the drained cell's failover list; empty when
	// none is, in which case players stay until one is.
	Target string `json:"target,omitempty"`
}

// RehomeRequest is the body of POST PathPlayers{player}/rehome.
type RehomeRequest struct {
	Cell string `json:"cell"`
	// From repairs an earlier rehome whose redirect marker was not
	// recorded: when the player is already homed in Cell, the marker for a
	// move from From is recorded again.
	From string `json:"from,omitempty"`
}

// RehomeResult is the body of a successful rehome.
type RehomeResult struct {
	PlayerID string `json:"player_id"`
	From     string `json:"from"`
	To       string `json:"to"`
	Moved    bool   `json:"moved"` // false: the player already lived in To
	Seq      int64  `json:"seq,omitempty"`
}

// Orders is the body of GET PathCells/{cell}/orders: what a cell's
// processes must do now. They poll it (global/agent).
type Orders struct {
	Cell  string     `json:"cell"`
	State string     `json:"state"`          // effective: cells.yaml's, or the operator's when stricter
	Drain DrainOrder `json:"drain,omitzero"` // zero unless the cell drains
	// Moves are the redirect markers from or to this cell with a sequence
	// number above the request's after, oldest first; Next is the cursor
	// for the next request and More says another page is waiting.
	Moves []MoveEntry `json:"moves"`
	Next  int64       `json:"next"`
	More  bool        `json:"more,omitempty"`
}

// DrainOrder tells a draining cell how to move its players.
type DrainOrder struct {
	Batch         int    `json:"batch"`
	IntervalMS    int64  `json:"interval_ms"`
	TargetCell    string `json:"target_cell,omitempty"`
	TargetGateway string `json:"target_gateway,omitempty"`
}

// MoveEntry is one redirect marker.
type MoveEntry struct {
	Seq       int64     `json:"seq"`
	PlayerID  string    `json:"player_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	ToGateway string    `json:"to_gateway,omitempty"`
	At        time.Time `json:"at"`
}

// MovesResponse is the body of GET PathMoves: the redirect markers of every
// cell after the cursor, oldest first, for routers to forget the homes
// they cached for moved players.
type MovesResponse struct {
	Moves []MoveEntry `json:"moves"`
	Next  int64       `json:"next"`
	More  bool        `json:"more,omitempty"`
}
