// Package memstore is an in-memory accounts.Store: the embedded default of
// `make run` and `livecell dev`, and the store of the service's tests. It is
// a real implementation (it passes storetest), not a mock; its data lives
// only as long as the process.
package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// Store keeps players in maps guarded by one lock. It is safe for
// concurrent use; the zero value is not, use New.
type Store struct {
	mu         sync.RWMutex
	byID       map[string]accounts.Player
	byUsername map[string]string // username → id
}

var _ accounts.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{byID: make(map[string]accounts.Player), byUsername: make(map[string]string)}
}

// CreatePlayer stores p unless its id or username is taken.
func (s *Store) CreatePlayer(ctx context.Context, p accounts.Player) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("memstore.CreatePlayer: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byUsername[p.Username]; ok {
		return apierr.Wrap("memstore.CreatePlayer", apierr.Conflict, "username is taken", nil)
	}
	if _, ok := s.byID[p.ID]; ok {
		return apierr.Wrap("memstore.CreatePlayer", apierr.Conflict, "player id exists", nil)
	}
	s.byID[p.ID] = p
	s.byUsername[p.Username] = p.ID
	return nil
}

// PlayerByUsername returns the player with exactly this username.
func (s *Store) PlayerByUsername(ctx context.Context, username string) (accounts.Player, error) {
	if err := ctx.Err(); err != nil {
		return accounts.Player{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id, ok := s.byUsername[username]; ok {
		return s.byID[id], nil
	}
	return accounts.Player{}, apierr.Wrap("memstore.PlayerByUsername", apierr.NotFound, "no such player", nil)
}

// PlayerByID returns the player with this id.
func (s *Store) PlayerByID(ctx context.Context, id string) (accounts.Player, error) {
	if err := ctx.Err(); err != nil {
		return accounts.Player{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.byID[id]; ok {
		return p, nil
	}
	return accounts.Player{}, apierr.Wrap("memstore.PlayerByID", apierr.NotFound, "no such player", nil)
}
