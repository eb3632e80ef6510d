// Package pgoutbox is the SQL transactional outbox: Insert writes events
// inside the caller's transaction, and Outbox is what the relay reads.
// PostgreSQL locally and in CI, CockroachDB in production.
package pgoutbox

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/events"
)

// component names the outbox schema in livecell_migrations.
const component = "events"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema declares the outbox table: REGIONAL BY ROW on the player's home.
func Schema() db.Schema {
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables: []db.Table{
			{Name: "event_outbox", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"},
		},
	}
}

// Migrate creates or upgrades the outbox table.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := db.Migrate(ctx, pool, component, Schema().Migrations); err != nil {
		return fmt.Errorf("pgoutbox.Migrate: %w", err)
	}
	return nil
}

// Insert writes evs into the outbox inside tx, the transaction that makes
// the change they announce. seq is the commit-order hint the relay sorts
// by: the transaction's clock in microseconds, ties broken by position.
func Insert(ctx context.Context, tx pgx.Tx, evs ...events.Event) error {
	for i, e := range evs {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("pgoutbox.Insert: %w", err)
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO event_outbox (id, seq, type, player_id, home_cell, occurred_at, payload)
			VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT * 16 + $2, $3, $4, $5, $6, $7)`,
			e.ID, i%16, e.Type, e.PlayerID, e.HomeCell, e.OccurredAt, string(e.Payload))
		if err != nil {
			return fmt.Errorf("pgoutbox.Insert %s: %w", e.ID, err)
		}
	}
	return nil
}

// Outbox is the relay's side of the SQL outbox for one cell. Every cell
// writes to the same table (one database for all regions), and each cell's
// relay publishes only the events of its own players to its own broker.
type Outbox struct {
	pool *pgxpool.Pool
	cell string
}

var _ events.Outbox = (*Outbox)(nil)

// New returns the outbox of cell's events on pool.
func New(pool *pgxpool.Pool, cell string) *Outbox { return &Outbox{pool: pool, cell: cell} }

// Claim leases the oldest unleased events. It is one UPDATE over a bounded
// subquery in a SERIALIZABLE transaction: two relays racing for the same
// rows conflict, one retries (db.RunTx) and finds them leased.
func (o *Outbox) Claim(ctx context.Context, n int, lease time.Duration) ([]events.Event, error) {
	var out []events.Event
	err := db.RunTx(ctx, o.pool, func(ctx context.Context, tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `
			UPDATE event_outbox SET leased_until = now() + $2 * INTERVAL '1 microsecond'
			WHERE id IN (SELECT id FROM event_outbox WHERE home_cell = $3 AND leased_until < now() ORDER BY seq LIMIT $1)
			RETURNING id, seq, type, player_id, home_cell, occurred_at, payload`,
			n, lease.Microseconds(), o.cell)
		if err != nil {
			return err
		}
		defer rows.Close()
		type row struct {
			seq int64
			ev  events.Event
		}
		var got []row
		for rows.Next() {
			var (
				r       row
				payload []byte
			)
			if err := rows.Scan(&r.ev.ID, &r.seq, &r.ev.Type, &r.ev.PlayerID, &r.ev.HomeCell, &r.ev.OccurredAt, &payload); err != nil {
				return err
			}
			r.ev.Payload, r.ev.OccurredAt = payload, r.ev.OccurredAt.UTC()
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// RETURNING does not keep the subquery's order.
		slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
		for _, r := range got {
			out = append(out, r.ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgoutbox.Claim: %w", err)
	}
	return out, nil
}

func (o *Outbox) Delete(ctx context.Context, ids []string) error {
	if _, err := o.pool.Exec(ctx, `DELETE FROM event_outbox WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("pgoutbox.Delete: %w", err)
	}
	return nil
}

func (o *Outbox) Release(ctx context.Context, ids []string) error {
	if _, err := o.pool.Exec(ctx, `UPDATE event_outbox SET leased_until = '1970-01-01 00:00:00+00' WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("pgoutbox.Release: %w", err)
	}
	return nil
}

// Pending counts the cell's events not yet published.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	if err := o.pool.QueryRow(ctx, `SELECT count(*) FROM event_outbox WHERE home_cell = $1`, o.cell).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgoutbox.Pending: %w", err)
	}
	return n, nil
}
