// Package pgstore is the SQL accounts.Store: PostgreSQL locally and in CI,
// CockroachDB in production, both through pgx v5 and internal/db. Every
// query is parameterised and written in the SQL both databases accept.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
)

// component names the accounts schema in livecell_migrations.
const component = "accounts"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is an accounts.Store on a pgx pool. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// signIns and creations batch concurrent SignInByIdentity and
	// CreatePlayerWithIdentityAndToken calls (see batch.go).
	signIns        *batcher[signInArgs, accounts.Player]
	signInBatchSQL batchSQL
	creations      *batcher[createArgs, struct{}]
	createBatchSQL batchSQL
}

var _ accounts.Store = (*Store)(nil)

// New returns a store on pool. Call Migrate before first use.
func New(pool *pgxpool.Pool) *Store {
	s := &Store{
		pool:           pool,
		signInBatchSQL: batchSQL{build: buildSignInSQL},
		createBatchSQL: batchSQL{build: buildCreateSQL},
	}
	s.signIns = newBatcher(s.signInMany, s.signInOne)
	s.creations = newBatcher(s.createMany, s.createOne)
	return s
}

// Migrate creates or upgrades the accounts tables.
func (s *Store) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("pgstore.Migrate: %w", err)
	}
	if err := db.Migrate(ctx, s.pool, component, sub); err != nil {
		return fmt.Errorf("pgstore.Migrate: %w", err)
	}
	return nil
}

// Schema declares the accounts tables and where CockroachDB keeps them. All
// are player data, REGIONAL BY ROW on home_cell, so each player's rows live
// in their home cell's region and move when the player is rehomed. Every
// table the migrations create must be listed (a test checks it): one line
// per table.
func Schema() db.Schema {
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables: []db.Table{
			{Name: "players", Locality: db.RegionalByRow, PlayerColumn: "id", HomeColumn: "home_cell"},
			{Name: "identities", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"},
			{Name: "refresh_tokens", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"},
		},
	}
}

const playerColumns = `id, username, password_hash, home_cell, created_at`

// querier is what pgxpool.Pool and pgx.Tx have in common, so statements can
// run alone or inside a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = pgx.Tx(nil)
)

// nullTime is NULL for the zero time, so that COALESCE can pick now().
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// CreatePlayer inserts p. A zero CreatedAt takes the database's clock.
func (s *Store) CreatePlayer(ctx context.Context, p accounts.Player) error {
	const op = "pgstore.CreatePlayer"
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return conflictError(op, insertPlayer(ctx, s.pool, p))
}

func insertPlayer(ctx context.Context, q querier, p accounts.Player) error {
	_, err := q.Exec(ctx,
		`INSERT INTO players (`+playerColumns+`) VALUES ($1, $2, $3, $4, COALESCE($5::TIMESTAMPTZ, now()))`,
		p.ID, p.Username, p.PasswordHash, p.HomeCell, nullTime(p.CreatedAt))
	return err
}

// conflictError turns a unique violation into apierr.Conflict with a message
// naming what is taken, and wraps anything else with op.
func conflictError(op string, err error) error {
	if err == nil {
		return nil
	}
	if !db.IsUniqueViolation(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := "player id exists"
	var pgErr *pgconn.PgError
	// PostgreSQL and CockroachDB both name UNIQUE(username)
	// players_username_key; identities_pkey is named in 0002.
	if errors.As(err, &pgErr) {
		switch {
		case strings.Contains(pgErr.ConstraintName, "username"):
			msg = "username is taken"
		case strings.HasPrefix(pgErr.ConstraintName, "identities"):
			msg = "identity is linked to another player"
		case strings.HasPrefix(pgErr.ConstraintName, "refresh_tokens"):
			msg = "refresh token exists"
		}
	}
	return apierr.Wrap(op, apierr.Conflict, msg, err)
}

// PlayerByUsername returns the player with exactly this username.
func (s *Store) PlayerByUsername(ctx context.Context, username string) (accounts.Player, error) {
	return s.queryOne(ctx, "pgstore.PlayerByUsername",
		`SELECT `+playerColumns+` FROM players WHERE username = $1`, username)
}

// PlayerByID returns the player with this id.
func (s *Store) PlayerByID(ctx context.Context, id string) (accounts.Player, error) {
	return s.queryOne(ctx, "pgstore.PlayerByID",
		`SELECT `+playerColumns+` FROM players WHERE id = $1`, id)
}

func (s *Store) queryOne(ctx context.Context, op, query string, arg string) (accounts.Player, error) {
	if !accounts.StorableText(arg) {
		// PostgreSQL would reject the parameter; no row can match it.
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no such player", nil)
	}
	var p accounts.Player
	err := s.pool.QueryRow(ctx, query, arg).Scan(&p.ID, &p.Username, &p.PasswordHash, &p.HomeCell, &p.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return accounts.Player{}, apierr.Wrap(op, apierr.NotFound, "no such player", err)
	case err != nil:
		return accounts.Player{}, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}
