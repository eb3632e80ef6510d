// Package placement is the control plane's rule for choosing a new player's
// home cell: by the latency the client measured to each region, traded
// against each cell's capacity headroom.
//
// The control plane owns the rule; every router runs it on its own cached
// view of the cells (health, load, state), so that placing a player costs
// no call to the control plane and keeps working while it is down. The
// placement becomes a fact when the chosen cell's accounts service records
// the new player's home through the control plane, which refuses cells that
// no longer take new players (global/control).
//
// The rule, for the cells that take new players (up, active, below
// capacity):
//
//  1. When the client sent round-trip times, the cell with the lowest cost
//     wins, where cost = RTT + a headroom penalty: nothing while the cell's
//     load (sessions / capacity) is at most Policy.Target, rising linearly
//     to Policy.PenaltyMS at full. A cell's RTT is the one measured for its
//     id, else for its cloud region; cells without one are not candidates.
//     Ties go to the less loaded cell, then to the first in cells.yaml.
//  2. Otherwise, the hinted cell (by id, else the least loaded cell of the
//     hinted region).
//  3. Otherwise, the least loaded cell.
//
// Keeping headroom matters twice: a cell near capacity has no room for its
// own players' reconnect storms, and none for the players of a cell that
// fails over to it. The penalty spills new players to the next-nearest cell
// before that happens, instead of filling the nearest one to the brim.
package placement

import (
	"strings"
)

// Defaults of Policy.
const (
	DefaultTarget    = 0.8
	DefaultPenaltyMS = 100
)

// Policy tunes the trade between latency and headroom. The zero value
// means the defaults.
type Policy struct {
	// Target is the load up to which a cell costs only its RTT.
	Target float64
	// PenaltyMS is added to a full cell's RTT; a cell halfway between
	// Target and full pays half of it.
	PenaltyMS float64
}

func (p Policy) withDefaults() Policy {
	if p.Target <= 0 || p.Target >= 1 {
		p.Target = DefaultTarget
	}
	if p.PenaltyMS <= 0 {
		p.PenaltyMS = DefaultPenaltyMS
	}
	return p
}

// Candidate is one cell as placement sees it.
type Candidate struct {
	ID, Region string
	// Accepts says the cell may take new players: up and active.
	Accepts  bool
	Sessions int
	Capacity int
}

func (c *Candidate) eligible() bool { return c.Accepts && c.Sessions < c.Capacity }

func (c *Candidate) load() float64 {
	if c.Capacity <= 0 {
		return 1
	}
	return float64(c.Sessions) / float64(c.Capacity)
}

// lessLoaded compares sessions/capacity without floating point.
func (c *Candidate) lessLoaded(o *Candidate) bool {
	return int64(c.Sessions)*int64(o.Capacity) < int64(o.Sessions)*int64(c.Capacity)
}

// RTT is one round-trip time the client measured, to a cell (by id) or a
// cloud region.
type RTT struct {
	Key string
	MS  float64
}

// Basis says which step of the rule chose the cell.
type Basis string

const (
	BasisLatency     Basis = "latency"
	BasisHint        Basis = "hint"
	BasisLeastLoaded Basis = "least_loaded"
)

// Choose returns the index in cands of the cell for a new player, and why;
// -1 when no cell can take one (none accepts, or every one that does is
// full).
func (p Policy) Choose(cands []Candidate, rtts []RTT, hint string) (int, Basis) {
	if len(rtts) > 0 {
		if i := p.byLatency(cands, rtts); i >= 0 {
			return i, BasisLatency
		}
	}
	if hint != "" {
		if i := byHint(cands, hint); i >= 0 {
			return i, BasisHint
		}
	}
	best := -1
	for i := range cands {
		// Strictly less: ties keep the earlier cell in cells.yaml.
		if c := &cands[i]; c.eligible() && (best < 0 || c.lessLoaded(&cands[best])) {
			best = i
		}
	}
	if best < 0 {
		return -1, ""
	}
	return best, BasisLeastLoaded
}

func (p Policy) byLatency(cands []Candidate, rtts []RTT) int {
	p = p.withDefaults()
	best, bestCost := -1, 0.0
	for i := range cands {
		c := &cands[i]
		if !c.eligible() {
			continue
		}
		rtt, ok := lookup(rtts, c.ID)
		if !ok {
			if rtt, ok = lookup(rtts, c.Region); !ok {
				continue
			}
		}
		cost := rtt
		if l := c.load(); l > p.Target {
			cost += p.PenaltyMS * (l - p.Target) / (1 - p.Target)
		}
		if best < 0 || cost < bestCost || cost == bestCost && c.lessLoaded(&cands[best]) {
			best, bestCost = i, cost
		}
	}
	return best
}

// lookup finds key in rtts, ignoring case as hints do. A linear scan: both
// lists are short and this allocates nothing.
func lookup(rtts []RTT, key string) (float64, bool) {
	for _, r := range rtts {
		if strings.EqualFold(r.Key, key) {
			return r.MS, true
		}
	}
	return 0, false
}

// byHint returns the hinted cell (by id, else the least loaded of the
// hinted region) when it can take a new player, else -1.
func byHint(cands []Candidate, hint string) int {
	for i := range cands {
		if strings.EqualFold(cands[i].ID, hint) {
			if cands[i].eligible() {
				return i
			}
			return -1 // a cell id is never also a region name worth trying
		}
	}
	best := -1
	for i := range cands {
		if c := &cands[i]; strings.EqualFold(c.Region, hint) && c.eligible() && (best < 0 || c.lessLoaded(&cands[best])) {
			best = i
		}
	}
	return best
}
