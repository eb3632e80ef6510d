package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// signInArgs is one SignInByIdentity call.
type signInArgs struct {
	provider, subject string
	t                 accounts.RefreshToken
}

type signInCall = batchCall[signInArgs, accounts.Player]

// signInColumns are the columns of one sign-in row: provider, subject,
// token hash, family, issue and expiry time.
var signInColumns = []string{"TEXT", "TEXT", "TEXT", "TEXT", "TIMESTAMPTZ", "TIMESTAMPTZ"}

// buildSignInSQL is the sign-in statement for rows rows: each row is
// looked up as in signInSQL and its token stored for the player found; the
// result names the row of each player found.
func buildSignInSQL(rows int, postgres bool) string {
	var b strings.Builder
	b.WriteString(`
WITH r (n, provider, subject, token_hash, family_id, issued_at, expires_at) AS (VALUES `)
	b.WriteString(valuesRows(rows, signInColumns))
	b.WriteString(`
), p AS (
	SELECT r.n, r.token_hash, r.family_id, r.issued_at, r.expires_at,
	       p.id, p.username, p.password_hash, p.home_cell, p.created_at
	  FROM r JOIN identities i ON i.provider = r.provider AND i.subject = r.subject
	         JOIN players p ON p.id = i.player_id
), t AS (
	INSERT INTO refresh_tokens (` + refreshColumns + `)
	SELECT p.token_hash, p.family_id, p.id, p.home_cell, p.issued_at, p.expires_at FROM p`)
	if postgres {
		b.WriteString(signInAsyncCommit)
	}
	b.WriteString(`
)
SELECT n, id, username, password_hash, home_cell, created_at FROM p`)
	return b.String()
}

// signInMany runs the sign-ins of batch as one statement. On success it
// sets every call's result (not_found for identities without a player); on
// error it sets none.
func (s *Store) signInMany(ctx context.Context, batch []*signInCall) error {
	const op = "pgstore.SignInByIdentity"
	args := make([]any, 0, len(signInColumns)*len(batch))
	for _, c := range batch {
		r := c.in
		args = append(args, r.provider, r.subject, r.t.Hash, r.t.FamilyID, r.t.IssuedAt, r.t.ExpiresAt)
	}
	players := make([]accounts.Player, len(batch))
	found := make([]bool, len(batch))
	err := s.pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(ctx, s.signInBatchSQL.get(len(batch), !isCockroach(conn.Conn())), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				i int
				p accounts.Player
			)
			if err := rows.Scan(&i, &p.ID, &p.Username, &p.PasswordHash, &p.HomeCell, &p.CreatedAt); err != nil {
				return err
			}
			if i < 1 || i > len(batch) || found[i-1] {
				return fmt.Errorf("sign-in batch returned row %d of %d twice or out of range", i, len(batch))
			}
			players[i-1], found[i-1] = p, true
		}
		// The INSERT runs to completion after the rows are sent, so its
		// errors (a unique violation) arrive here, after them.
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for i, c := range batch {
		if found[i] {
			c.out = players[i]
		} else {
			c.err = apierr.Wrap(op, apierr.NotFound, "no player has this identity", nil)
		}
	}
	return nil
}

// createArgs is one CreatePlayerWithIdentityAndToken call, validated.
type createArgs struct {
	p  accounts.Player
	id accounts.Identity
	t  accounts.RefreshToken
}

type createCall = batchCall[createArgs, struct{}]

// createColumns are the columns of one creation row, in createArgs.values
// order.
var createColumns = []string{
	"TEXT", "TEXT", "TEXT", "TEXT", "TIMESTAMPTZ", // player
	"TEXT", "TEXT", "TEXT", "TIMESTAMPTZ", // identity
	"TEXT", "TEXT", "TIMESTAMPTZ", "TIMESTAMPTZ", // refresh token
}

func (a createArgs) values() []any {
	return []any{
		a.p.ID, a.p.Username, a.p.PasswordHash, a.p.HomeCell, nullTime(a.p.CreatedAt),
		a.id.Provider, a.id.Subject, a.id.DisplayName, nullTime(a.id.CreatedAt),
		a.t.Hash, a.t.FamilyID, a.t.IssuedAt, a.t.ExpiresAt,
	}
}

// buildCreateSQL is createSignedInSQL for rows rows: all players,
// identities and tokens of the batch are stored, or none. The commit is
// synchronous (a created account must survive a crash), and one WAL flush
// serves the whole batch.
func buildCreateSQL(rows int, _ bool) string {
	return `
WITH r (n, id, username, password_hash, home_cell, created_at,
        provider, subject, display_name, linked_at,
        token_hash, family_id, issued_at, expires_at) AS (VALUES ` + valuesRows(rows, createColumns) + `
), p AS (
	INSERT INTO players (` + playerColumns + `)
	SELECT id, username, password_hash, home_cell, COALESCE(created_at, now()) FROM r
), i AS (
	INSERT INTO identities (` + identityColumns + `)
	SELECT provider, subject, id, home_cell, display_name, COALESCE(linked_at, now()) FROM r
)
INSERT INTO refresh_tokens (` + refreshColumns + `)
SELECT token_hash, family_id, id, home_cell, issued_at, expires_at FROM r`
}

// createMany runs the creations of batch as one statement.
func (s *Store) createMany(ctx context.Context, batch []*createCall) error {
	args := make([]any, 0, len(createColumns)*len(batch))
	for _, c := range batch {
		args = append(args, c.in.values()...)
	}
	_, err := s.pool.Exec(ctx, s.createBatchSQL.get(len(batch), true), args...)
	return err
}

// createOne runs one creation alone.
func (s *Store) createOne(ctx context.Context, c *createCall) {
	_, err := s.pool.Exec(ctx, createSignedInSQL, c.in.values()...)
	c.err = conflictError("pgstore.CreatePlayerWithIdentityAndToken", err)
}
