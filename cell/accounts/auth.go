package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
)

// register creates a development account and issues its first token.
func (s *Service) register(ctx context.Context, _ *attempt, req accountsapi.RegisterRequest) (accountsapi.AuthResponse, error) {
	const op = "accounts.Register"
	username, err := normalizeUsername(req.Username)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	if err := checkNewPassword(req.Password); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	// Cheap early answer for the common duplicate, before argon2 and before
	// a directory entry is written; CreatePlayer's unique constraint is
	// what actually decides a race.
	if _, err := s.store.PlayerByUsername(ctx, username); err == nil {
		return accountsapi.AuthResponse{}, apierr.New(apierr.Conflict, "username is taken")
	} else if apierr.CodeOf(err) != apierr.NotFound {
		return accountsapi.AuthResponse{}, storeError(op, err)
	}

	var hash string
	if err := s.withHashSlot(ctx, op, func() (err error) {
		hash, err = hashPassword(s.cfg.Argon2, req.Password)
		return err
	}); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return accountsapi.AuthResponse{}, apierr.Wrap(op, apierr.Internal, "", fmt.Errorf("new player id: %w", err))
	}
	p := Player{
		ID:           id.String(),
		Username:     username,
		PasswordHash: hash,
		HomeCell:     s.cfg.CellID,
		// Microseconds are what SQL timestamps keep; truncating here makes
		// every Store return the same CreatedAt.
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	}

	// The directory entry goes first so that the router can resolve the
	// player by the time the client holds a token. If CreatePlayer then
	// fails, the entry points at an id nobody was given: harmless, and a
	// directory sweep can collect it. The reverse order could leave a player
	// the router cannot find.
	if err := s.homes.SetHome(ctx, p.ID, p.HomeCell); err != nil {
		return accountsapi.AuthResponse{}, homeError(op, p, err)
	}
	if err := s.store.CreatePlayer(ctx, p); err != nil {
		if apierr.CodeOf(err) == apierr.Conflict {
			// Player ids are fresh UUIDv7s, so a conflict is the username.
			return accountsapi.AuthResponse{}, apierr.Wrap(op, apierr.Conflict, "username is taken", err)
		}
		return accountsapi.AuthResponse{}, storeError(op, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "player registered", slog.String("player_id", p.ID))
	return s.issueSession(ctx, op, p, true)
}

// login checks a username and password and issues an access token.
//
// An unknown username and a wrong password give the same error, and both
// cost one argon2 verification, so neither the answer nor its timing tells
// a caller whether the account exists.
//
// The per-account rate limit is keyed by the name as typed (normalised), so
// it treats names with and without an account alike too.
func (s *Service) login(ctx context.Context, a *attempt, req accountsapi.LoginRequest) (accountsapi.AuthResponse, error) {
	const op = "accounts.Login"
	username, err := normalizeUsername(req.Username)
	if err != nil {
		return accountsapi.AuthResponse{}, err
	}
	if err := checkLoginPassword(req.Password); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	if err := a.forAccount("user:" + username); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	p, err := s.store.PlayerByUsername(ctx, username)
	known := err == nil
	if err != nil && apierr.CodeOf(err) != apierr.NotFound {
		return accountsapi.AuthResponse{}, storeError(op, err)
	}
	// An account without a password (created by a platform login) is
	// treated like an unknown one, dummy hash included.
	hasPassword := known && p.PasswordHash != ""
	hash := s.dummyHash
	if hasPassword {
		hash = p.PasswordHash
	}
	var ok bool
	if err := s.withHashSlot(ctx, op, func() (err error) {
		ok, err = verifyPassword(hash, req.Password)
		return err
	}); err != nil {
		return accountsapi.AuthResponse{}, err
	}
	if !hasPassword || !ok {
		return accountsapi.AuthResponse{}, apierr.New(apierr.InvalidCredentials, "invalid username or password")
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "player logged in", slog.String("player_id", p.ID))
	return s.issueSession(ctx, op, p, false)
}

// issue signs an access token for p. The token names the player's stored
// home cell, which the gateway of that cell checks.
func (s *Service) issue(op string, p Player) (accountsapi.AuthResponse, error) {
	tok, exp, err := s.tokens.IssuePlayer(p.ID, p.HomeCell, s.cfg.AccessTokenTTL)
	if err != nil {
		return accountsapi.AuthResponse{}, apierr.Wrap(op, apierr.Internal, "", fmt.Errorf("issue token: %w", err))
	}
	// Round to whole seconds: with a real clock exp-now is a hair under the
	// TTL and truncation would report 899 for 15 minutes.
	expiresIn := int((exp.Sub(s.now()) + time.Second/2) / time.Second)
	return accountsapi.AuthResponse{
		PlayerID:    p.ID,
		HomeCell:    p.HomeCell,
		AccessToken: tok,
		TokenType:   accountsapi.TokenTypeBearer,
		ExpiresIn:   max(expiresIn, 0),
	}, nil
}

// authenticate returns the player id an access token was issued to. Tokens
// for players homed elsewhere are refused: a cell serves its own players
// only, and a client holding such a token must go to its home cell.
func (s *Service) authenticate(token string) (string, error) {
	const op = "accounts.authenticate"
	playerID, cell, err := s.verify.VerifyPlayer(token)
	if err != nil {
		switch c := apierr.CodeOf(err); c {
		case apierr.InvalidToken, apierr.TokenExpired, apierr.Unauthenticated:
			return "", err
		default:
			return "", apierr.Wrap(op, apierr.InvalidToken, "invalid access token", err)
		}
	}
	if playerID == "" {
		return "", apierr.New(apierr.InvalidToken, "access token names no player")
	}
	if cell != s.cfg.CellID {
		return "", apierr.New(apierr.PermissionDenied, "access token belongs to cell %q, not %q: use your home cell", cell, s.cfg.CellID)
	}
	return playerID, nil
}

// me returns the account of playerID.
func (s *Service) me(ctx context.Context, playerID string) (accountsapi.Me, error) {
	const op = "accounts.Me"
	p, err := s.store.PlayerByID(ctx, playerID)
	if err != nil {
		if apierr.CodeOf(err) == apierr.NotFound {
			return accountsapi.Me{}, apierr.Wrap(op, apierr.UnknownPlayer, "no account for this player in this cell", err)
		}
		return accountsapi.Me{}, storeError(op, err)
	}
	ids, err := s.store.Identities(ctx, p.ID)
	if err != nil {
		return accountsapi.Me{}, storeError(op, err)
	}
	me := accountsapi.Me{
		PlayerID: p.ID, Username: p.Username, HomeCell: p.HomeCell, CreatedAt: p.CreatedAt.UTC(),
		HasPassword: p.PasswordHash != "",
		Identities:  make([]accountsapi.Identity, len(ids)),
	}
	for i, id := range ids {
		me.Identities[i] = wireIdentity(id)
	}
	return me, nil
}

// withHashSlot runs fn, an argon2 computation, once a hashing slot is free.
func (s *Service) withHashSlot(ctx context.Context, op string, fn func() error) error {
	start := time.Now()
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return apierr.Wrap(op, apierr.Unavailable, "server busy, retry later", fmt.Errorf("waiting for a hashing slot: %w", ctx.Err()))
	}
	err := fn()
	<-s.hashSlots
	s.metrics.hashed(time.Since(start))
	if err != nil {
		// A stored hash we cannot read is our bug or a corrupt row.
		return apierr.Wrap(op, apierr.Internal, "", err)
	}
	return nil
}

// storeError keeps a store error's code when it has one the client may see
// and reports anything else (a lost connection, a bug) as internal.
func storeError(op string, err error) error {
	var e *apierr.Error
	if errors.As(err, &e) && e.Code != "" {
		return fmt.Errorf("%s: %w", op, err)
	}
	return apierr.Wrap(op, apierr.Internal, "", err)
}

// homeError is the client's answer when the directory refuses or fails to
// record a new player's home. A draining cell (the control plane's answer
// once an operator drains it) passes through: retrying here is futile, the
// client must resolve its cell again.
func homeError(op string, p Player, err error) error {
	if apierr.CodeOf(err) == apierr.Draining {
		return apierr.Wrap(op, apierr.Draining, "this cell takes no new players: resolve your cell again", err)
	}
	return apierr.Wrap(op, apierr.Unavailable, "player directory is unavailable, retry later",
		fmt.Errorf("SetHome(%s, %s): %w", p.ID, p.HomeCell, err))
}
