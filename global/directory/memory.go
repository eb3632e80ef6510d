package directory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Memory is an in-process directory for `livecell dev` and tests. It is safe
// for concurrent use.
type Memory struct {
	mu         sync.RWMutex
	homes      map[string]string // player id → cell id
	counts     map[string]int    // cell id → players; kept in step with homes
	overrides  map[string]Override
	moves      []Move // in Seq order
	seq        int64
	cellStates map[string]CellState
}

// NewMemory returns an empty directory.
func NewMemory() *Memory {
	return &Memory{
		homes: map[string]string{}, counts: map[string]int{},
		overrides: map[string]Override{}, cellStates: map[string]CellState{},
	}
}

// now is what SQL's now() would store: microseconds, UTC.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Home returns playerID's home cell, or an apierr.UnknownPlayer error.
func (m *Memory) Home(_ context.Context, playerID string) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	cell, ok := m.homes[playerID]
	if !ok {
		return "", errUnknownPlayer()
	}
	return cell, nil
}

// SetHome places or rehomes playerID in cellID.
func (m *Memory) SetHome(_ context.Context, playerID, cellID string) error {
	if err := validate("directory.Memory.SetHome", playerID, cellID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(playerID, cellID)
	return nil
}

func (m *Memory) setLocked(playerID, cellID string) {
	if old, ok := m.homes[playerID]; ok {
		if m.counts[old]--; m.counts[old] == 0 {
			delete(m.counts, old)
		}
	}
	m.homes[playerID] = cellID
	m.counts[cellID]++
}

// Place gives playerID the home cellID unless it already has one, and
// returns the home the player has now.
func (m *Memory) Place(_ context.Context, playerID, cellID string) (home string, created bool, err error) {
	if err := validate("directory.Memory.Place", playerID, cellID); err != nil {
		return "", false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if home, ok := m.homes[playerID]; ok {
		return home, false, nil
	}
	m.setLocked(playerID, cellID)
	return cellID, true, nil
}

// CountByCell returns how many players each cell is home to; cells with
// none are absent.
func (m *Memory) CountByCell(context.Context) (map[string]int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]int, len(m.counts))
	for cell, n := range m.counts {
		out[cell] = n
	}
	return out, nil
}

// SetOverride adds or replaces o.PlayerID's override and returns it as
// stored.
func (m *Memory) SetOverride(_ context.Context, o Override) (Override, error) {
	const op = "directory.Memory.SetOverride"
	if err := o.validate(op); err != nil {
		return Override{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.overrides[o.PlayerID]; !ok && len(m.overrides) >= MaxOverrides {
		return Override{}, errOverridesFull(op)
	}
	o.At = now()
	m.overrides[o.PlayerID] = o
	return o, nil
}

// ClearOverride removes playerID's override and reports whether it had one.
func (m *Memory) ClearOverride(_ context.Context, playerID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.overrides[playerID]
	delete(m.overrides, playerID)
	return ok, nil
}

// Overrides returns the whole override table, by player id.
func (m *Memory) Overrides(context.Context) ([]Override, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Override, 0, len(m.overrides))
	for _, o := range m.overrides {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Override) int { return cmp.Compare(a.PlayerID, b.PlayerID) })
	return out, nil
}

// RecordMove appends a redirect marker for playerID's move from one cell to
// another.
func (m *Memory) RecordMove(_ context.Context, playerID, from, to string) (Move, error) {
	if err := validateMove("directory.Memory.RecordMove", playerID, from, to); err != nil {
		return Move{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	mv := Move{Seq: m.seq, PlayerID: playerID, From: from, To: to, At: now()}
	m.moves = append(m.moves, mv)
	return mv, nil
}

// Moves returns up to limit moves from or to cell (every move when cell is
// empty) with Seq above after, in Seq order.
func (m *Memory) Moves(_ context.Context, cell string, after int64, limit int) ([]Move, error) {
	limit = clampLimit(limit)
	m.mu.RLock()
	defer m.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(m.moves, after+1, func(mv Move, seq int64) int { return cmp.Compare(mv.Seq, seq) })
	var out []Move
	for ; i < len(m.moves) && len(out) < limit; i++ {
		if mv := m.moves[i]; cell == "" || mv.From == cell || mv.To == cell {
			out = append(out, mv)
		}
	}
	return out, nil
}

// MoveHead returns the sequence number of the latest move kept (0 when
// none is): a reader that starts from it sees only later moves.
func (m *Memory) MoveHead(context.Context) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.moves) == 0 {
		return 0, nil
	}
	return m.moves[len(m.moves)-1].Seq, nil
}

// PruneMoves forgets moves made before before and returns how many.
func (m *Memory) PruneMoves(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.moves)
	m.moves = slices.DeleteFunc(m.moves, func(mv Move) bool { return mv.At.Before(before) })
	return n - len(m.moves), nil
}

// SetCellState sets an operator's state for s.Cell and returns it as
// stored. Setting the same state again keeps its Since.
func (m *Memory) SetCellState(_ context.Context, s CellState) (CellState, error) {
	if err := s.validate("directory.Memory.SetCellState"); err != nil {
		return CellState{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Since = now()
	if old, ok := m.cellStates[s.Cell]; ok && old.State == s.State {
		s.Since = old.Since
	}
	m.cellStates[s.Cell] = s
	return s, nil
}

// ClearCellState removes the operator's state for cell and reports whether
// there was one.
func (m *Memory) ClearCellState(_ context.Context, cell string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.cellStates[cell]
	delete(m.cellStates, cell)
	return ok, nil
}

// CellStates returns every operator cell state, by cell id.
func (m *Memory) CellStates(context.Context) ([]CellState, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]CellState, 0, len(m.cellStates))
	for _, s := range m.cellStates {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b CellState) int { return cmp.Compare(a.Cell, b.Cell) })
	return out, nil
}
