package directory

import (
	"time"

	"github.com/livecell/livecell/internal/apierr"
)

// CellStateDraining is the one state an operator sets at run time: the
// cell takes no new players, and its connected players are told to move to
// its failover cell, DrainBatch at a time every DrainInterval.
const CellStateDraining = "draining"

// Drain rate bounds: at least one player per batch, at most 10,000; batches
// 10 ms to 10 minutes apart.
const (
	MaxDrainBatch    = 10_000
	MinDrainInterval = 10 * time.Millisecond
	MaxDrainInterval = 10 * time.Minute
)

// CellState is an operator's run-time state for one cell. It overrides the
// cell's state in cells.yaml until cleared.
type CellState struct {
	Cell          string
	State         string // CellStateDraining
	DrainBatch    int
	DrainInterval time.Duration
	Reason, By    string
	Since         time.Time
}

func (s CellState) validate(op string) error {
	if !validID(s.Cell) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid cell id", nil)
	}
	if s.State != CellStateDraining {
		return apierr.Wrap(op, apierr.BadRequest, "cell state must be draining", nil)
	}
	if s.DrainBatch < 1 || s.DrainBatch > MaxDrainBatch {
		return apierr.Wrap(op, apierr.BadRequest, "drain batch must be 1 to 10000 players", nil)
	}
	if s.DrainInterval < MinDrainInterval || s.DrainInterval > MaxDrainInterval {
		return apierr.Wrap(op, apierr.BadRequest, "drain interval must be 10ms to 10m", nil)
	}
	// Whole milliseconds: what SQL stores, so both stores read back alike.
	if s.DrainInterval%time.Millisecond != 0 {
		return apierr.Wrap(op, apierr.BadRequest, "drain interval must be whole milliseconds", nil)
	}
	if !validNote(s.Reason) || !validNote(s.By) {
		return apierr.Wrap(op, apierr.BadRequest, "reason and by must be UTF-8 text of at most 256 bytes", nil)
	}
	return nil
}
