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
}

var _ accounts.Store = (*Store)(nil)

// New returns a store on pool. Call Migrate before first use.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

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

const playerColumns = `id, username, password_hash, home_cell, created_at`

// CreatePlayer inserts p. A zero CreatedAt takes the database's clock.
func (s *Store) CreatePlayer(ctx context.Context, p accounts.Player) error {
	const op = "pgstore.CreatePlayer"
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var created any // NULL lets COALESCE pick now()
	if !p.CreatedAt.IsZero() {
		created = p.CreatedAt
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO players (`+playerColumns+`) VALUES ($1, $2, $3, $4, COALESCE($5::TIMESTAMPTZ, now()))`,
		p.ID, p.Username, p.PasswordHash, p.HomeCell, created)
	if err == nil {
		return nil
	}
	if db.IsUniqueViolation(err) {
		msg := "player id exists"
		var pgErr *pgconn.PgError
		// Both PostgreSQL and CockroachDB name the UNIQUE(username)
		// constraint players_username_key.
		if errors.As(err, &pgErr) && strings.Contains(pgErr.ConstraintName, "username") {
			msg = "username is taken"
		}
		return apierr.Wrap(op, apierr.Conflict, msg, err)
	}
	return fmt.Errorf("%s: %w", op, err)
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
