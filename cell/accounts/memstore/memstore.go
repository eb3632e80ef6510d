// Package memstore is an in-memory accounts.Store: the embedded default of
// `make run` and `livecell dev`, and the store of the service's tests. It is
// a real implementation (it passes storetest), not a mock; its data lives
// only as long as the process.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// Store keeps players, identities and refresh tokens in maps guarded by one
// lock, which is also what makes each multi-step operation atomic. It is safe
// for concurrent use; the zero value is not, use New.
type Store struct {
	mu         sync.RWMutex
	byID       map[string]accounts.Player
	byUsername map[string]string // username → id
	identities map[identityKey]accounts.Identity
	byPlayer   map[string][]identityKey // player id → its identities
	refresh    map[string]*refreshRow   // token hash → row
	families   map[string][]string      // family id → token hashes
}

type identityKey struct{ provider, subject string }

type refreshRow struct {
	accounts.RefreshToken
	used, revoked bool
}

var _ accounts.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		byID:       make(map[string]accounts.Player),
		byUsername: make(map[string]string),
		identities: make(map[identityKey]accounts.Identity),
		byPlayer:   make(map[string][]identityKey),
		refresh:    make(map[string]*refreshRow),
		families:   make(map[string][]string),
	}
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
	if err := s.checkNewPlayer("memstore.CreatePlayer", p); err != nil {
		return err
	}
	s.putPlayer(p)
	return nil
}

func (s *Store) checkNewPlayer(op string, p accounts.Player) error {
	if _, ok := s.byUsername[p.Username]; ok {
		return apierr.Wrap(op, apierr.Conflict, "username is taken", nil)
	}
	if _, ok := s.byID[p.ID]; ok {
		return apierr.Wrap(op, apierr.Conflict, "player id exists", nil)
	}
	return nil
}

func (s *Store) putPlayer(p accounts.Player) {
	s.byID[p.ID] = p
	s.byUsername[p.Username] = p.ID
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

// CreatePlayerWithIdentity stores p and its first identity, or neither.
func (s *Store) CreatePlayerWithIdentity(ctx context.Context, p accounts.Player, id accounts.Identity) error {
	const op = "memstore.CreatePlayerWithIdentity"
	if err := ctx.Err(); err != nil {
		return err
	}
	id.PlayerID, id.HomeCell = p.ID, p.HomeCell
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNewPlayer(op, p); err != nil {
		return err
	}
	if _, ok := s.identities[identityKey{id.Provider, id.Subject}]; ok {
		return apierr.Wrap(op, apierr.Conflict, "identity is linked to another player", nil)
	}
	s.putPlayer(p)
	s.putIdentity(id)
	return nil
}

func (s *Store) putIdentity(id accounts.Identity) {
	k := identityKey{id.Provider, id.Subject}
	s.identities[k] = id
	s.byPlayer[id.PlayerID] = append(s.byPlayer[id.PlayerID], k)
}

// PlayerByIdentity returns the player a platform account is linked to.
func (s *Store) PlayerByIdentity(ctx context.Context, provider, subject string) (accounts.Player, error) {
	if err := ctx.Err(); err != nil {
		return accounts.Player{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if id, ok := s.identities[identityKey{provider, subject}]; ok {
		if p, ok := s.byID[id.PlayerID]; ok {
			return p, nil
		}
	}
	return accounts.Player{}, apierr.Wrap("memstore.PlayerByIdentity", apierr.NotFound, "no player has this identity", nil)
}

// LinkIdentity links id to its player; see accounts.Store.
func (s *Store) LinkIdentity(ctx context.Context, id accounts.Identity) (accounts.Identity, bool, error) {
	const op = "memstore.LinkIdentity"
	if err := ctx.Err(); err != nil {
		return accounts.Identity{}, false, err
	}
	if err := id.Validate(); err != nil {
		return accounts.Identity{}, false, fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[id.PlayerID]
	if !ok {
		return accounts.Identity{}, false, apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	if cur, ok := s.identities[identityKey{id.Provider, id.Subject}]; ok {
		if cur.PlayerID == id.PlayerID {
			return cur, false, nil
		}
		return accounts.Identity{}, false, apierr.Wrap(op, apierr.Conflict, fmt.Sprintf("this %s account is linked to another player", id.Provider), nil)
	}
	for _, k := range s.byPlayer[id.PlayerID] {
		if k.provider == id.Provider {
			return accounts.Identity{}, false, apierr.Wrap(op, apierr.Conflict, fmt.Sprintf("a %s account is already linked to this player; unlink it first", id.Provider), nil)
		}
	}
	id.HomeCell = p.HomeCell
	s.putIdentity(id)
	return id, true, nil
}

// UnlinkIdentity removes the player's identity of provider; see accounts.Store.
func (s *Store) UnlinkIdentity(ctx context.Context, playerID, provider string, passwordSignIn bool) error {
	const op = "memstore.UnlinkIdentity"
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.byID[playerID]
	if !ok {
		return apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	keys := s.byPlayer[playerID]
	i := slices.IndexFunc(keys, func(k identityKey) bool { return k.provider == provider })
	if i < 0 {
		return apierr.Wrap(op, apierr.NotFound, fmt.Sprintf("no %s account is linked to this player", provider), nil)
	}
	if len(keys) == 1 && (p.PasswordHash == "" || !passwordSignIn) {
		return apierr.Wrap(op, apierr.Conflict, "cannot unlink the last way to sign in; link another platform first", nil)
	}
	delete(s.identities, keys[i])
	s.byPlayer[playerID] = slices.Delete(slices.Clone(keys), i, i+1)
	return nil
}

// Identities lists a player's identities, oldest first.
func (s *Store) Identities(ctx context.Context, playerID string) ([]accounts.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]accounts.Identity, 0, len(s.byPlayer[playerID]))
	for _, k := range s.byPlayer[playerID] {
		out = append(out, s.identities[k])
	}
	slices.SortFunc(out, func(a, b accounts.Identity) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Provider, b.Provider))
	})
	return out, nil
}

// CreateRefreshToken stores the first token of a new family.
func (s *Store) CreateRefreshToken(ctx context.Context, t accounts.RefreshToken) error {
	const op = "memstore.CreateRefreshToken"
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[t.PlayerID]; !ok {
		return apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	if _, ok := s.refresh[t.Hash]; ok {
		return apierr.Wrap(op, apierr.Conflict, "refresh token exists", nil)
	}
	s.putRefresh(t)
	return nil
}

func (s *Store) putRefresh(t accounts.RefreshToken) {
	s.refresh[t.Hash] = &refreshRow{RefreshToken: t}
	s.families[t.FamilyID] = append(s.families[t.FamilyID], t.Hash)
}

// RotateRefreshToken presents a token; see accounts.Store.
func (s *Store) RotateRefreshToken(ctx context.Context, hash string, next accounts.RefreshToken, now time.Time) (accounts.RefreshResult, error) {
	const op = "memstore.RotateRefreshToken"
	if err := ctx.Err(); err != nil {
		return accounts.RefreshResult{}, err
	}
	if err := next.ValidateNext(); err != nil {
		return accounts.RefreshResult{}, fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.refresh[hash]
	if !ok {
		return accounts.RefreshResult{Outcome: accounts.RefreshUnknown}, nil
	}
	p, ok := s.byID[row.PlayerID]
	if !ok {
		return accounts.RefreshResult{Outcome: accounts.RefreshUnknown}, nil
	}
	switch {
	case row.used:
		for _, h := range s.families[row.FamilyID] {
			s.refresh[h].revoked = true
		}
		return accounts.RefreshResult{Outcome: accounts.RefreshReused, PlayerID: row.PlayerID, FamilyID: row.FamilyID}, nil
	case row.revoked:
		return accounts.RefreshResult{Outcome: accounts.RefreshRevoked}, nil
	case !now.Before(row.ExpiresAt):
		return accounts.RefreshResult{Outcome: accounts.RefreshExpired}, nil
	}
	if _, ok := s.refresh[next.Hash]; ok {
		return accounts.RefreshResult{}, apierr.Wrap(op, apierr.Conflict, "refresh token exists", nil)
	}
	next.FamilyID, next.PlayerID, next.HomeCell = row.FamilyID, p.ID, p.HomeCell
	row.used = true
	s.putRefresh(next)
	return accounts.RefreshResult{Outcome: accounts.RefreshRotated, Player: p, Next: next, PlayerID: p.ID, FamilyID: row.FamilyID}, nil
}

// RevokeRefreshFamily revokes the family of a token; see accounts.Store.
func (s *Store) RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.refresh[hash]
	if !ok {
		return false, nil
	}
	for _, h := range s.families[row.FamilyID] {
		s.refresh[h].revoked = true
	}
	return true, nil
}
