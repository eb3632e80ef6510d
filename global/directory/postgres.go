package directory

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

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
			// Not rehomed: an override's cell is where the operator sends
			// the player, not where their data lives, and a move records
			// history.
			{Name: "player_overrides", Locality: db.Global},
			{Name: "player_moves", Locality: db.Global},
			{Name: "cell_states", Locality: db.Global},
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

// Place gives playerID the home cellID unless it already has one, and
// returns the home the player has now. The insert decides, so two cells
// placing the same player at once agree on the winner.
func (p *Postgres) Place(ctx context.Context, playerID, cellID string) (home string, created bool, err error) {
	const op = "directory.Place"
	if err := validate(op, playerID, cellID); err != nil {
		return "", false, err
	}
	err = p.pool.QueryRow(ctx, `
		INSERT INTO player_homes (player_id, cell_id) VALUES ($1, $2)
		ON CONFLICT (player_id) DO NOTHING RETURNING cell_id`, playerID, cellID).Scan(&home)
	if err == nil {
		return home, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", false, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	// The player has a home; this statement's snapshot is newer than the
	// insert's conflict, so it sees it.
	home, err = p.Home(ctx, playerID)
	if err != nil {
		return "", false, err
	}
	return home, false, nil
}

// SetOverride adds or replaces o.PlayerID's override and returns it as
// stored.
func (p *Postgres) SetOverride(ctx context.Context, o Override) (Override, error) {
	const op = "directory.SetOverride"
	if err := o.validate(op); err != nil {
		return Override{}, err
	}
	err := db.RunTx(ctx, p.pool, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE player_overrides SET kind = $2, cell_id = $3, reason = $4, created_by = $5, created_at = now()
			WHERE player_id = $1 RETURNING created_at`,
			o.PlayerID, string(o.Kind), o.Cell, o.Reason, o.By).Scan(&o.At)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// A new entry counts against MaxOverrides; the serializable
		// transaction keeps two concurrent inserts from both fitting.
		err = tx.QueryRow(ctx, `
			INSERT INTO player_overrides (player_id, kind, cell_id, reason, created_by)
			SELECT $1, $2, $3, $4, $5 WHERE (SELECT count(*) FROM player_overrides) < $6
			RETURNING created_at`,
			o.PlayerID, string(o.Kind), o.Cell, o.Reason, o.By, MaxOverrides).Scan(&o.At)
		if errors.Is(err, pgx.ErrNoRows) {
			return errOverridesFull(op)
		}
		return err
	})
	if err != nil {
		if _, ok := apierr.From(err); ok {
			return Override{}, err
		}
		return Override{}, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	o.At = o.At.UTC()
	return o, nil
}

// ClearOverride removes playerID's override and reports whether it had one.
func (p *Postgres) ClearOverride(ctx context.Context, playerID string) (bool, error) {
	if !validID(playerID) {
		return false, nil
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM player_overrides WHERE player_id = $1`, playerID)
	if err != nil {
		return false, apierr.Wrap("directory.ClearOverride", apierr.Unavailable, "", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Overrides returns the whole override table, by player id.
func (p *Postgres) Overrides(ctx context.Context) ([]Override, error) {
	const op = "directory.Overrides"
	rows, err := p.pool.Query(ctx, `
		SELECT player_id, kind, cell_id, reason, created_by, created_at
		FROM player_overrides`)
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Override, error) {
		var o Override
		var kind string
		err := r.Scan(&o.PlayerID, &kind, &o.Cell, &o.Reason, &o.By, &o.At)
		o.Kind, o.At = OverrideKind(kind), o.At.UTC()
		return o, err
	})
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	// Sorted here: the database's collation may not be byte order.
	slices.SortFunc(out, func(a, b Override) int { return cmp.Compare(a.PlayerID, b.PlayerID) })
	return out, nil
}

// RecordMove appends a redirect marker for playerID's move from one cell to
// another.
func (p *Postgres) RecordMove(ctx context.Context, playerID, from, to string) (Move, error) {
	const op = "directory.RecordMove"
	if err := validateMove(op, playerID, from, to); err != nil {
		return Move{}, err
	}
	mv := Move{PlayerID: playerID, From: from, To: to}
	err := p.pool.QueryRow(ctx, `
		INSERT INTO player_moves (player_id, from_cell, to_cell) VALUES ($1, $2, $3)
		RETURNING seq, moved_at`, playerID, from, to).Scan(&mv.Seq, &mv.At)
	if err != nil {
		return Move{}, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	mv.At = mv.At.UTC()
	return mv, nil
}

// Moves returns up to limit moves from or to cell (every move when cell is
// empty) with Seq above after, in Seq order.
func (p *Postgres) Moves(ctx context.Context, cell string, after int64, limit int) ([]Move, error) {
	const op = "directory.Moves"
	if cell != "" && !validID(cell) {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, `
		SELECT seq, player_id, from_cell, to_cell, moved_at FROM player_moves
		WHERE seq > $1 AND ($2 = '' OR from_cell = $2 OR to_cell = $2)
		ORDER BY seq LIMIT $3`, after, cell, clampLimit(limit))
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Move, error) {
		var mv Move
		err := r.Scan(&mv.Seq, &mv.PlayerID, &mv.From, &mv.To, &mv.At)
		mv.At = mv.At.UTC()
		return mv, err
	})
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	return out, nil
}

// MoveHead returns the sequence number of the latest move recorded (0
// when none is kept): a reader that starts from it sees only later moves.
func (p *Postgres) MoveHead(ctx context.Context) (int64, error) {
	var head int64
	if err := p.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM player_moves`).Scan(&head); err != nil {
		return 0, apierr.Wrap("directory.MoveHead", apierr.Unavailable, "", err)
	}
	return head, nil
}

// PruneMoves forgets moves made before before and returns how many.
func (p *Postgres) PruneMoves(ctx context.Context, before time.Time) (int, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM player_moves WHERE moved_at < $1`, before)
	if err != nil {
		return 0, apierr.Wrap("directory.PruneMoves", apierr.Unavailable, "", err)
	}
	return int(tag.RowsAffected()), nil
}

// SetCellState sets an operator's state for s.Cell and returns it as
// stored. Setting the same state again keeps its Since.
func (p *Postgres) SetCellState(ctx context.Context, s CellState) (CellState, error) {
	const op = "directory.SetCellState"
	if err := s.validate(op); err != nil {
		return CellState{}, err
	}
	err := p.pool.QueryRow(ctx, `
		INSERT INTO cell_states (cell_id, state, drain_batch, drain_interval_ms, reason, created_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (cell_id) DO UPDATE SET state = excluded.state, drain_batch = excluded.drain_batch,
			drain_interval_ms = excluded.drain_interval_ms, reason = excluded.reason,
			created_by = excluded.created_by,
			since = CASE WHEN cell_states.state = excluded.state THEN cell_states.since ELSE now() END
		RETURNING since`,
		s.Cell, s.State, s.DrainBatch, s.DrainInterval.Milliseconds(), s.Reason, s.By).Scan(&s.Since)
	if err != nil {
		return CellState{}, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	s.Since = s.Since.UTC()
	return s, nil
}

// ClearCellState removes the operator's state for cell and reports whether
// there was one.
func (p *Postgres) ClearCellState(ctx context.Context, cell string) (bool, error) {
	if !validID(cell) {
		return false, nil
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM cell_states WHERE cell_id = $1`, cell)
	if err != nil {
		return false, apierr.Wrap("directory.ClearCellState", apierr.Unavailable, "", err)
	}
	return tag.RowsAffected() > 0, nil
}

// CellStates returns every operator cell state, by cell id.
func (p *Postgres) CellStates(ctx context.Context) ([]CellState, error) {
	const op = "directory.CellStates"
	rows, err := p.pool.Query(ctx, `
		SELECT cell_id, state, drain_batch, drain_interval_ms, reason, created_by, since
		FROM cell_states`)
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CellState, error) {
		var s CellState
		var ms int64
		err := r.Scan(&s.Cell, &s.State, &s.DrainBatch, &ms, &s.Reason, &s.By, &s.Since)
		s.DrainInterval, s.Since = time.Duration(ms)*time.Millisecond, s.Since.UTC()
		return s, err
	})
	if err != nil {
		return nil, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	slices.SortFunc(out, func(a, b CellState) int { return cmp.Compare(a.Cell, b.Cell) })
	return out, nil
}
