package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

var _ accounts.SessionStore = (*Store)(nil)

// signInSQL reads the player of an identity and stores the new refresh
// token for it in one statement: one round trip, and a single statement is
// atomic without an explicit transaction. When no identity matches, the
// INSERT's SELECT yields no row, nothing is written and the statement
// returns no row. A data-modifying CTE runs whether or not it is read.
//
// %s is where signInAsyncCommit goes on PostgreSQL (see there).
const signInSQL = `
WITH p AS (
	SELECT p.id, p.username, p.password_hash, p.home_cell, p.created_at
	  FROM identities i JOIN players p ON p.id = i.player_id
	 WHERE i.provider = $1 AND i.subject = $2
), t AS (
	INSERT INTO refresh_tokens (` + refreshColumns + `)
	SELECT $3, $4, p.id, p.home_cell, $5, $6 FROM p%s
)
SELECT id, username, password_hash, home_cell, created_at FROM p`

// signInAsyncCommit makes the sign-in statement's own transaction commit
// asynchronously on PostgreSQL: set_config(..., true) is SET LOCAL, so it
// lasts until this statement's implicit transaction ends and no further.
//
// The trade-off: the commit returns before its WAL record is flushed, so a
// crash of PostgreSQL or of its machine within a moment of the sign-in
// (at most 3 × wal_writer_delay, 600 ms by default) can lose the refresh
// token row, and nothing else. The client then holds a refresh token the
// server does not know: refreshing answers invalid_token and the player
// signs in again, which is what a lost token costs anyway. Nothing is ever
// lost that another write depends on: a later synchronous commit (a
// rotation of this very token, any account change) flushes the WAL up to
// and including this one, and the database never ends up inconsistent
// (asynchronous commit is crash safe, it only moves the durability point).
// Security does not depend on the row: a lost token can only be refused.
//
// Everything else stays synchronous: the statement that creates a player
// (CreatePlayerWithIdentityAndToken), rotation and revocation of refresh
// tokens, links and unlinks.
//
// Why: on the benchmark machine (docs/benchmarks.md, issue 3) the WAL
// flush of this one-row insert was the largest single cost of a platform
// login. CockroachDB has no such setting (every commit is a Raft write), so
// there the plain statement runs.
const signInAsyncCommit = `
	CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`

var (
	signInPostgres  = fmt.Sprintf(signInSQL, signInAsyncCommit)
	signInCockroach = fmt.Sprintf(signInSQL, "")
)

// SignInByIdentity returns the player a platform account is linked to and
// stores t for it; see accounts.SessionStore. It is one statement, committed
// asynchronously on PostgreSQL (see signInAsyncCommit), shared with the
// other sign-ins that are waiting at the same moment (see batcher).
func (s *Store) SignInByIdentity(ctx context.Context, provider, subject string, t accounts.RefreshToken) (accounts.Player, error) {
	const op = "pgstore.SignInByIdentity"
	if err := t.ValidateUnbound(); err != nil {
		return accounts.Player{}, fmt.Errorf("%s: %w", op, err)
	}
	if !accounts.StorableText(provider) || !accounts.StorableText(subject) {
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no player has this identity", nil)
	}
	// A caller that gives up after its batch was sent may leave its token
	// stored: it was never handed out, so it only waits for its expiry.
	return s.signIns.do(ctx, op, signInArgs{provider: provider, subject: subject, t: t})
}

// signInOne runs one sign-in alone, with the one-row statement.
func (s *Store) signInOne(ctx context.Context, c *signInCall) {
	r := c.in
	const op = "pgstore.SignInByIdentity"
	var p accounts.Player
	err := s.pool.AcquireFunc(ctx, func(conn *pgxpool.Conn) error {
		query := signInPostgres
		if isCockroach(conn.Conn()) {
			query = signInCockroach
		}
		return conn.QueryRow(ctx, query, r.provider, r.subject, r.t.Hash, r.t.FamilyID, r.t.IssuedAt, r.t.ExpiresAt).
			Scan(&p.ID, &p.Username, &p.PasswordHash, &p.HomeCell, &p.CreatedAt)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		c.err = apierr.Wrap(op, apierr.NotFound, "no player has this identity", err)
	case err != nil:
		c.err = conflictError(op, err)
	default:
		c.out = p
	}
}

// isCockroach reports whether c is connected to CockroachDB, which announces
// its version in a parameter status PostgreSQL does not send.
func isCockroach(c *pgx.Conn) bool { return c.PgConn().ParameterStatus("crdb_version") != "" }

// createSignedInSQL inserts a player, its first identity and its first
// refresh token in one statement, so all three or none are stored (the
// foreign keys of identities and refresh_tokens are checked at the end of
// the statement, when the player row exists).
const createSignedInSQL = `
WITH p AS (
	INSERT INTO players (` + playerColumns + `) VALUES ($1, $2, $3, $4, COALESCE($5::TIMESTAMPTZ, now()))
), i AS (
	INSERT INTO identities (` + identityColumns + `) VALUES ($6, $7, $1, $4, $8, COALESCE($9::TIMESTAMPTZ, now()))
)
INSERT INTO refresh_tokens (` + refreshColumns + `)
VALUES ($10, $11, $1, $4, $12, $13)`

// CreatePlayerWithIdentityAndToken stores p, its first identity and its
// first refresh token atomically; see accounts.SessionStore.
func (s *Store) CreatePlayerWithIdentityAndToken(ctx context.Context, p accounts.Player, id accounts.Identity, t accounts.RefreshToken) error {
	const op = "pgstore.CreatePlayerWithIdentityAndToken"
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
	_, err := s.creations.do(ctx, op, createArgs{p: p, id: id, t: t})
	return err
}
