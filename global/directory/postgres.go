package directory

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
)

// component names the directory's schema in livecell_migrations.
const component = "directory"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema declares the directory's table. player_homes is GLOBAL: every
// region reads it locally on each resolve, and it changes only when a player
// is placed or rehomed. It is still per-player data, so it declares its
// player and home columns and db.Rehome moves it in the same transaction as
// the player's REGIONAL BY ROW rows. The CockroachDB statement that makes it
// GLOBAL is generated from this declaration (internal/db/crdb); PostgreSQL
// rejects it, so it is not a migration. (0001's comment still names the
// CockroachOverlay constant this replaced: applied migrations are immutable,
// their checksums are recorded.)
func Schema() db.Schema {
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables: []db.Table{
			{Name: "player_homes", Locality: db.Global, PlayerColumn: "player_id", HomeColumn: "cell_id", UpdatedColumn: "updated_at"},
		},
	}
}

// Postgres is the directory in SQL: PostgreSQL locally and in CI,
// CockroachDB in production. It is safe for concurrent use.
type Postgres struct {
	pool *pgxpool.Pool
}

// NewPostgres returns a directory on pool. Call Migrate before first use.
func NewPostgres(pool *pgxpool.Pool) *Postgres { return &Postgres{pool: pool} }

// Migrate creates or upgrades the player_homes table.
func (p *Postgres) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("directory.Migrate: %w", err)
	}
	if err := db.Migrate(ctx, p.pool, component, sub); err != nil {
		return fmt.Errorf("directory.Migrate: %w", err)
	}
	return nil
}

// Home returns playerID's home cell, or an apierr.UnknownPlayer error. A
// database failure is apierr.Unavailable, which callers may retry.
func (p *Postgres) Home(ctx context.Context, playerID string) (string, error) {
	if !validID(playerID) {
		// No such row can exist, and PostgreSQL would reject the bytes.
		return "", errUnknownPlayer()
	}
	var cell string
	err := p.pool.QueryRow(ctx, `SELECT cell_id FROM player_homes WHERE player_id = $1`, playerID).Scan(&cell)
	switch {
	case err == nil:
		return cell, nil
	case errors.Is(err, pgx.ErrNoRows):
		return "", errUnknownPlayer()
	default:
		return "", apierr.Wrap("directory.Home", apierr.Unavailable, "", err)
	}
}

// SetHome places or rehomes playerID in cellID. One upsert statement, so
// concurrent writers need no explicit transaction and CockroachDB can retry
// it server-side.
func (p *Postgres) SetHome(ctx context.Context, playerID, cellID string) error {
	const op = "directory.SetHome"
	if err := validate(op, playerID, cellID); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `
		INSERT INTO player_homes (player_id, cell_id) VALUES ($1, $2)
		ON CONFLICT (player_id) DO UPDATE SET cell_id = excluded.cell_id, updated_at = now()`,
		playerID, cellID)
	if err != nil {
		return apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	return nil
}

// CountByCell returns how many players each cell is home to; cells with
// none are absent.
func (p *Postgres) CountByCell(ctx context.Context) (map[string]int, error) {
	const op = "directory.CountByCell"
	rows, err := p.pool.Query(ctx, `SELECT cell_id, count(*) FROM player_homes GROUP BY cell_id`)
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var cell string
		var n int
		if err := rows.Scan(&cell, &n); err != nil {
			return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
		}
		out[cell] = n
	}
	if err := rows.Err(); err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	return out, nil
}
