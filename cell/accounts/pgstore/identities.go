package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
)

const identityColumns = `provider, subject, player_id, home_cell, display_name, created_at`

func scanIdentity(row pgx.Row) (accounts.Identity, error) {
	var id accounts.Identity
	err := row.Scan(&id.Provider, &id.Subject, &id.PlayerID, &id.HomeCell, &id.DisplayName, &id.CreatedAt)
	return id, err
}

// CreatePlayerWithIdentity inserts p and its first identity in one
// transaction. A zero CreatedAt takes the database's clock.
func (s *Store) CreatePlayerWithIdentity(ctx context.Context, p accounts.Player, id accounts.Identity) error {
	const op = "pgstore.CreatePlayerWithIdentity"
	id.PlayerID, id.HomeCell = p.ID, p.HomeCell
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		if err := insertPlayer(ctx, tx, p); err != nil {
			return err
		}
		return insertIdentity(ctx, tx, id)
	})
	return conflictError(op, err)
}

func insertIdentity(ctx context.Context, q querier, id accounts.Identity) error {
	_, err := q.Exec(ctx,
		`INSERT INTO identities (`+identityColumns+`) VALUES ($1, $2, $3, $4, $5, COALESCE($6::TIMESTAMPTZ, now()))`,
		id.Provider, id.Subject, id.PlayerID, id.HomeCell, id.DisplayName, nullTime(id.CreatedAt))
	return err
}

// PlayerByIdentity returns the player a platform account is linked to.
func (s *Store) PlayerByIdentity(ctx context.Context, provider, subject string) (accounts.Player, error) {
	const op = "pgstore.PlayerByIdentity"
	if !accounts.StorableText(provider) || !accounts.StorableText(subject) {
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no player has this identity", nil)
	}
	var p accounts.Player
	err := s.pool.QueryRow(ctx,
		`SELECT p.id, p.username, p.password_hash, p.home_cell, p.created_at
		   FROM identities i JOIN players p ON p.id = i.player_id
		  WHERE i.provider = $1 AND i.subject = $2`, provider, subject).
		Scan(&p.ID, &p.Username, &p.PasswordHash, &p.HomeCell, &p.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no player has this identity", err)
	case err != nil:
		return accounts.Player{}, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// lockPlayer reads a player's home cell and password hash and locks its row
// until the transaction ends, which serialises every link and unlink of one
// player. Under SERIALIZABLE the checks would hold without it (a conflicting
// transaction aborts with 40001 and RunTx retries it); the lock turns most
// of those aborts into a short wait.
func lockPlayer(ctx context.Context, op string, tx pgx.Tx, playerID string) (homeCell, passwordHash string, err error) {
	err = tx.QueryRow(ctx, `SELECT home_cell, password_hash FROM players WHERE id = $1 FOR UPDATE`, playerID).
		Scan(&homeCell, &passwordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", apierr.Wrap(op, apierr.NotFound, "no such player", err)
	}
	return homeCell, passwordHash, err
}

// LinkIdentity links id to its player; see accounts.Store.
func (s *Store) LinkIdentity(ctx context.Context, id accounts.Identity) (accounts.Identity, bool, error) {
	const op = "pgstore.LinkIdentity"
	if err := id.Validate(); err != nil {
		return accounts.Identity{}, false, fmt.Errorf("%s: %w", op, err)
	}
	var (
		stored  accounts.Identity
		created bool
	)
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		stored, created = accounts.Identity{}, false // a retried attempt starts afresh
		home, _, err := lockPlayer(ctx, op, tx, id.PlayerID)
		if err != nil {
			return err
		}
		cur, err := scanIdentity(tx.QueryRow(ctx,
			`SELECT `+identityColumns+` FROM identities WHERE provider = $1 AND subject = $2`, id.Provider, id.Subject))
		switch {
		case err == nil && cur.PlayerID == id.PlayerID:
			stored = cur
			return nil
		case err == nil:
			return apierr.Wrap(op, apierr.Conflict, fmt.Sprintf("this %s account is linked to another player", id.Provider), nil)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM identities WHERE player_id = $1 AND provider = $2`,
			id.PlayerID, id.Provider).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return apierr.Wrap(op, apierr.Conflict, fmt.Sprintf("a %s account is already linked to this player; unlink it first", id.Provider), nil)
		}
		id.HomeCell = home
		stored, err = scanIdentity(tx.QueryRow(ctx,
			`INSERT INTO identities (`+identityColumns+`) VALUES ($1, $2, $3, $4, $5, COALESCE($6::TIMESTAMPTZ, now()))
			 RETURNING `+identityColumns,
			id.Provider, id.Subject, id.PlayerID, id.HomeCell, id.DisplayName, nullTime(id.CreatedAt)))
		created = err == nil
		return err
	})
	if err != nil {
		if _, coded := apierr.From(err); coded {
			return accounts.Identity{}, false, fmt.Errorf("%s: %w", op, err)
		}
		// A unique violation here is a concurrent link that the checks
		// above could not see (SERIALIZABLE normally reports it as 40001
		// and the retry answers properly).
		return accounts.Identity{}, false, conflictError(op, err)
	}
	return stored, created, nil
}

// UnlinkIdentity removes the player's identity of provider; see accounts.Store.
func (s *Store) UnlinkIdentity(ctx context.Context, playerID, provider string, passwordSignIn bool) error {
	const op = "pgstore.UnlinkIdentity"
	if !accounts.StorableText(playerID) || !accounts.StorableText(provider) {
		return apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		_, hash, err := lockPlayer(ctx, op, tx, playerID)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT provider FROM identities WHERE player_id = $1`, playerID)
		if err != nil {
			return err
		}
		providers, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		linked, total := 0, len(providers)
		for _, p := range providers {
			if p == provider {
				linked++
			}
		}
		if linked == 0 {
			return apierr.Wrap(op, apierr.NotFound, fmt.Sprintf("no %s account is linked to this player", provider), nil)
		}
		if total == 1 && (hash == "" || !passwordSignIn) {
			return apierr.Wrap(op, apierr.Conflict, "cannot unlink the last way to sign in; link another platform first", nil)
		}
		_, err = tx.Exec(ctx, `DELETE FROM identities WHERE player_id = $1 AND provider = $2`, playerID, provider)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Identities lists a player's identities, oldest first.
func (s *Store) Identities(ctx context.Context, playerID string) ([]accounts.Identity, error) {
	const op = "pgstore.Identities"
	if !accounts.StorableText(playerID) {
		return []accounts.Identity{}, nil
	}
	rows, err := s.pool.Query(ctx,
		`SELECT `+identityColumns+` FROM identities WHERE player_id = $1 ORDER BY created_at, provider`, playerID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (accounts.Identity, error) { return scanIdentity(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if out == nil {
		out = []accounts.Identity{}
	}
	return out, nil
}
