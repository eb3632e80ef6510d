package directory

import (
	"context"
	"sync"
)

// Memory is an in-process directory for `livecell dev` and tests. It is safe
// for concurrent use.
type Memory struct {
	mu     sync.RWMutex
	homes  map[string]string // player id → cell id
	counts map[string]int    // cell id → players; kept in step with homes
}

// NewMemory returns an empty directory.
func NewMemory() *Memory {
	return &Memory{homes: map[string]string{}, counts: map[string]int{}}
}

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
	if old, ok := m.homes[playerID]; ok {
		if m.counts[old]--; m.counts[old] == 0 {
			delete(m.counts, old)
		}
	}
	m.homes[playerID] = cellID
	m.counts[cellID]++
	return nil
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
