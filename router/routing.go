package router

import (
	"context"
	"maps"

	"github.com/livecell/livecell/internal/config"
)

// OverrideKind is what an override does to a player's routing; the
// control plane's override table (global/directory) holds them.
type OverrideKind string

const (
	// OverridePin sends the player to Override.Cell while that cell
	// serves; otherwise the player is routed as if unpinned.
	OverridePin OverrideKind = "pin"
	// OverrideQuarantine sends the player only to Override.Cell (a
	// quarantine cell), or nowhere when it names none: resolve answers
	// apierr.Quarantined.
	OverrideQuarantine OverrideKind = "quarantine"
)

// Override is one entry of the override table as the router applies it.
type Override struct {
	Kind OverrideKind
	Cell string
}

// Routing is what the control plane adds to cells.yaml and the directory
// at run time: cell states an operator set (a drain), and the override
// table.
type Routing struct {
	CellStates map[string]config.CellState // cell id → state set at run time
	Overrides  map[string]Override         // canonical player id → override
}

// RoutingSource loads the control plane's Routing; control.Client does.
// A router without one applies cells.yaml's states and no overrides.
type RoutingSource interface {
	Routing(ctx context.Context) (Routing, error)
}

// strictness orders cell states: the stricter of cells.yaml's and the
// operator's wins, so a drain set at run time cannot re-activate a cell
// cells.yaml disabled.
func strictness(s config.CellState) int {
	switch s {
	case config.StateDisabled:
		return 2
	case config.StateDraining:
		return 1
	}
	return 0
}

func effectiveState(file, operator config.CellState) config.CellState {
	if strictness(operator) > strictness(file) {
		return operator
	}
	return file
}

// SetRouting applies rt at once, as a load from a RoutingSource would: the
// control plane hands its own prober every table it builds.
func (r *Router) SetRouting(rt Routing) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyRoutingLocked(rt)
}

func (r *Router) applyRoutingLocked(rt Routing) {
	r.routingErr = ""
	if !maps.Equal(rt.CellStates, r.routing.CellStates) {
		r.log.Info("cell states changed", "states", rt.CellStates)
	}
	r.routing = rt
	r.m.overrides.Set(float64(len(rt.Overrides)))
	r.publishLocked()
}

// routingRound loads Routing once. A failure keeps the last loaded table:
// a control plane outage must not un-drain cells or lift quarantines.
func (r *Router) routingRound(ctx context.Context) {
	if r.routingSrc == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	defer cancel()
	rt, err := r.routingSrc.Routing(rctx)
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.m.routingLoads.WithLabelValues("error").Inc()
		if r.routingErr == "" {
			r.log.Warn("routing table unavailable; keeping the last one", "error", err)
		}
		r.routingErr = err.Error()
		return
	}
	r.m.routingLoads.WithLabelValues("ok").Inc()
	if r.routingErr != "" {
		r.log.Info("routing table loaded again")
	}
	r.applyRoutingLocked(rt)
}
