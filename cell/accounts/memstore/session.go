package memstore

import (
	"context"
	"fmt"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

var _ accounts.SessionStore = (*Store)(nil)

// SignInByIdentity returns the player a platform account is linked to and
// stores t for it, under one lock; see accounts.SessionStore.
func (s *Store) SignInByIdentity(ctx context.Context, provider, subject string, t accounts.RefreshToken) (accounts.Player, error) {
	const op = "memstore.SignInByIdentity"
	if err := ctx.Err(); err != nil {
		return accounts.Player{}, err
	}
	if err := t.ValidateUnbound(); err != nil {
		return accounts.Player{}, fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.identities[identityKey{provider, subject}]
	if !ok {
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no player has this identity", nil)
	}
	p, ok := s.byID[id.PlayerID]
	if !ok {
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no player has this identity", nil)
	}
	if _, ok := s.refresh[t.Hash]; ok {
		return accounts.Player{}, apierr.Wrap(op, apierr.Conflict, "refresh token exists", nil)
	}
	t.PlayerID, t.HomeCell = p.ID, p.HomeCell
	s.putRefresh(t)
	return p, nil
}

// CreatePlayerWithIdentityAndToken stores p, its first identity and its
// first refresh token, or none of them; see accounts.SessionStore.
func (s *Store) CreatePlayerWithIdentityAndToken(ctx context.Context, p accounts.Player, id accounts.Identity, t accounts.RefreshToken) error {
	const op = "memstore.CreatePlayerWithIdentityAndToken"
	if err := ctx.Err(); err != nil {
		return err
	}
	id.PlayerID, id.HomeCell = p.ID, p.HomeCell
	t.PlayerID, t.HomeCell = p.ID, p.HomeCell
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := t.Validate(); err != nil {
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
	if _, ok := s.refresh[t.Hash]; ok {
		return apierr.Wrap(op, apierr.Conflict, "refresh token exists", nil)
	}
	s.putPlayer(p)
	s.putIdentity(id)
	s.putRefresh(t)
	return nil
}
