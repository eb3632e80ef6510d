package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
)

// refreshColumns are the columns a new refresh token is stored with.
const refreshColumns = `token_hash, family_id, player_id, home_cell, issued_at, expires_at`

// CreateRefreshToken stores the first token of a new family.
func (s *Store) CreateRefreshToken(ctx context.Context, t accounts.RefreshToken) error {
	const op = "pgstore.CreateRefreshToken"
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	// Stored only if the player exists: refresh_tokens has no foreign key
	// (migration 0004 says why), so the statement checks.
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO refresh_tokens (`+refreshColumns+`)
		 SELECT $1, $2, id, $4, $5, $6 FROM players WHERE id = $3`,
		t.Hash, t.FamilyID, t.PlayerID, t.HomeCell, t.IssuedAt, t.ExpiresAt)
	if err == nil && tag.RowsAffected() == 0 {
		return apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	return conflictError(op, err)
}

func insertRefresh(ctx context.Context, q querier, t accounts.RefreshToken) error {
	_, err := q.Exec(ctx,
		`INSERT INTO refresh_tokens (`+refreshColumns+`)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		t.Hash, t.FamilyID, t.PlayerID, t.HomeCell, t.IssuedAt, t.ExpiresAt)
	return err
}

// RotateRefreshToken presents a token in one SERIALIZABLE transaction; see
// accounts.Store.
//
// Two concurrent presentations of one token both reach the SELECT ... FOR
// UPDATE; the second waits for the first to commit and then, under
// SERIALIZABLE, fails with 40001 (PostgreSQL: "could not serialize access due
// to concurrent update"; CockroachDB: a restart). db.RunTx runs the whole
// closure again, which now finds the token used and revokes the family.
// The closure only touches the transaction and its own result variable, so
// running it twice is harmless.
func (s *Store) RotateRefreshToken(ctx context.Context, hash string, next accounts.RefreshToken, now time.Time) (accounts.RefreshResult, error) {
	const op = "pgstore.RotateRefreshToken"
	if err := next.ValidateNext(); err != nil {
		return accounts.RefreshResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if !accounts.StorableText(hash) {
		return accounts.RefreshResult{Outcome: accounts.RefreshUnknown}, nil
	}
	var res accounts.RefreshResult
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		res = accounts.RefreshResult{}
		var (
			family, playerID string
			expires          time.Time
			used, revoked    bool
		)
		err := tx.QueryRow(ctx,
			`SELECT family_id, player_id, expires_at, used_at IS NOT NULL, revoked_at IS NOT NULL
			   FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, hash).
			Scan(&family, &playerID, &expires, &used, &revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			res.Outcome = accounts.RefreshUnknown
			return nil
		case err != nil:
			return err
		case used:
			if err := revokeFamily(ctx, tx, family, now); err != nil {
				return err
			}
			res = accounts.RefreshResult{Outcome: accounts.RefreshReused, PlayerID: playerID, FamilyID: family}
			return nil
		case revoked:
			res.Outcome = accounts.RefreshRevoked
			return nil
		case !now.Before(expires):
			res.Outcome = accounts.RefreshExpired
			return nil
		}
		var p accounts.Player
		err = tx.QueryRow(ctx, `SELECT `+playerColumns+` FROM players WHERE id = $1`, playerID).
			Scan(&p.ID, &p.Username, &p.PasswordHash, &p.HomeCell, &p.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			res.Outcome = accounts.RefreshUnknown
			return nil
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1`, hash, now); err != nil {
			return err
		}
		next.FamilyID, next.PlayerID, next.HomeCell = family, p.ID, p.HomeCell
		if err := insertRefresh(ctx, tx, next); err != nil {
			return err
		}
		res = accounts.RefreshResult{Outcome: accounts.RefreshRotated, Player: p, Next: next, PlayerID: p.ID, FamilyID: family}
		return nil
	})
	if err != nil {
		return accounts.RefreshResult{}, conflictError(op, err)
	}
	return res, nil
}

// revokeFamily revokes every live token of a family. Tokens revoked before
// keep their first revocation time.
func revokeFamily(ctx context.Context, tx pgx.Tx, family string, now time.Time) error {
	_, err := tx.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, family, now)
	return err
}

// RevokeRefreshFamily revokes the family of a token; see accounts.Store. It
// runs SERIALIZABLE so that a successor inserted by a concurrent rotation is
// either revoked too or makes one of the two transactions retry; under READ
// COMMITTED a rotation committing in between could leave it live.
func (s *Store) RevokeRefreshFamily(ctx context.Context, hash string, now time.Time) (bool, error) {
	const op = "pgstore.RevokeRefreshFamily"
	if !accounts.StorableText(hash) {
		return false, nil
	}
	var found bool
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		found = false
		var family string
		err := tx.QueryRow(ctx, `SELECT family_id FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&family)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		found = true
		return revokeFamily(ctx, tx, family, now)
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return found, nil
}
