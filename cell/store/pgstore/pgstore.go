// Package pgstore is the SQL store.Store: PostgreSQL locally and in CI,
// CockroachDB in production (REGIONAL BY ROW tables). A webhook's effect,
// its event id and its outbox events commit in one SERIALIZABLE
// transaction (internal/db.RunTx retries it whole on conflicts).
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/store"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/events/pgoutbox"
)

const component = "store"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema declares the store tables: player data, REGIONAL BY ROW.
func Schema() db.Schema {
	t := func(name string) db.Table {
		return db.Table{Name: name, Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"}
	}
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables:     []db.Table{t("store_purchases"), t("store_webhook_events")},
	}
}

// Store is a store.Store on a pgx pool. Its outbox is pgoutbox's table:
// run the relay on pgoutbox.New(pool).
type Store struct{ pool *pgxpool.Pool }

var _ store.Store = (*Store)(nil)

// New returns a store on pool. Call Migrate before first use.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Migrate creates or upgrades the store tables and the outbox.
func (s *Store) Migrate(ctx context.Context) error {
	if err := db.Migrate(ctx, s.pool, component, Schema().Migrations); err != nil {
		return fmt.Errorf("store pgstore.Migrate: %w", err)
	}
	return pgoutbox.Migrate(ctx, s.pool)
}

const columns = `id, player_id, home_cell, offer_id, quantity, currency, amount, status, grants, idempotency_key,
	session_id, checkout_url, payment_intent, test_mode, expires_at, created_at, updated_at`

func scan(row pgx.Row) (store.Purchase, error) {
	var (
		p      store.Purchase
		grants string
	)
	err := row.Scan(&p.ID, &p.PlayerID, &p.HomeCell, &p.OfferID, &p.Quantity, &p.Currency, &p.Amount, &p.Status, &grants,
		&p.IdempotencyKey, &p.SessionID, &p.CheckoutURL, &p.PaymentIntent, &p.TestMode, &p.ExpiresAt, &p.CreatedAt, &p.UpdatedAt)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(grants), &p.Grants); err != nil {
		return p, fmt.Errorf("purchase %s grants: %w", p.ID, err)
	}
	p.ExpiresAt, p.CreatedAt, p.UpdatedAt = p.ExpiresAt.UTC(), p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

func (s *Store) CreatePurchase(ctx context.Context, p store.Purchase, now time.Time) (store.Purchase, bool, error) {
	grants, err := json.Marshal(nonNil(p.Grants))
	if err != nil {
		return store.Purchase{}, false, fmt.Errorf("store pgstore.CreatePurchase: %w", err)
	}
	var (
		out     store.Purchase
		created bool
	)
	// SERIALIZABLE: two identical requests racing both read "none", and
	// one of them fails the commit and, retried, finds the other's row.
	err = db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		existing, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM store_purchases
			WHERE idempotency_key = $1 AND status = $2 AND expires_at > $3 ORDER BY created_at DESC LIMIT 1`,
			p.IdempotencyKey, storeapi.StatusPending, now))
		switch {
		case err == nil:
			out, created = existing, false
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO store_purchases (`+columns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			p.ID, p.PlayerID, p.HomeCell, p.OfferID, p.Quantity, p.Currency, p.Amount, p.Status, string(grants), p.IdempotencyKey,
			p.SessionID, p.CheckoutURL, p.PaymentIntent, p.TestMode, p.ExpiresAt, p.CreatedAt, p.UpdatedAt)
		out, created = p, true
		return err
	})
	if err != nil {
		if db.IsUniqueViolation(err) {
			return store.Purchase{}, false, apierr.Wrap("store pgstore.CreatePurchase", apierr.Conflict, "purchase exists", err)
		}
		return store.Purchase{}, false, fmt.Errorf("store pgstore.CreatePurchase: %w", err)
	}
	return out, created, nil
}

func nonNil(g []catalogapi.Grant) []catalogapi.Grant {
	if g == nil {
		return []catalogapi.Grant{}
	}
	return g
}

func (s *Store) AttachSession(ctx context.Context, purchaseID, sessionID, url string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE store_purchases SET session_id = $2, checkout_url = $3, expires_at = $4 WHERE id = $1`,
		purchaseID, sessionID, url, expiresAt)
	if err != nil {
		return fmt.Errorf("store pgstore.AttachSession: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apierr.New(apierr.NotFound, "no purchase %s", purchaseID)
	}
	return nil
}

func (s *Store) Purchase(ctx context.Context, id string) (store.Purchase, error) {
	p, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM store_purchases WHERE id = $1`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Purchase{}, apierr.New(apierr.NotFound, "no purchase %s", id)
	case err != nil:
		return store.Purchase{}, fmt.Errorf("store pgstore.Purchase: %w", err)
	}
	return p, nil
}

func (s *Store) Purchases(ctx context.Context, playerID string, limit int) ([]store.Purchase, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM store_purchases WHERE player_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, playerID, limit)
	if err != nil {
		return nil, fmt.Errorf("store pgstore.Purchases: %w", err)
	}
	defer rows.Close()
	var out []store.Purchase
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store pgstore.Purchases: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store pgstore.Purchases: %w", err)
	}
	return out, nil
}

func (s *Store) Apply(ctx context.Context, eventID string, key store.Key, change store.Change) (store.Result, error) {
	var res store.Result
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		p, err := find(ctx, tx, key)
		if errors.Is(err, pgx.ErrNoRows) {
			res = store.NotFound
			return nil
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO store_webhook_events (event_id, purchase_id, player_id, home_cell)
			VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING`, eventID, p.ID, p.PlayerID, p.HomeCell)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			res = store.Duplicate
			return nil
		}
		evs, err := change(&p)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE store_purchases SET status = $2, payment_intent = $3, updated_at = $4 WHERE id = $1`,
			p.ID, p.Status, p.PaymentIntent, p.UpdatedAt); err != nil {
			return err
		}
		if err := pgoutbox.Insert(ctx, tx, evs...); err != nil {
			return err
		}
		res = store.Applied
		return nil
	})
	if err != nil {
		return 0, err
	}
	return res, nil
}

func find(ctx context.Context, tx pgx.Tx, key store.Key) (store.Purchase, error) {
	if key.PurchaseID != "" {
		p, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM store_purchases WHERE id = $1`, key.PurchaseID))
		if !errors.Is(err, pgx.ErrNoRows) || key.PaymentIntent == "" {
			return p, err
		}
	}
	if key.PaymentIntent == "" {
		return store.Purchase{}, pgx.ErrNoRows
	}
	return scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM store_purchases WHERE payment_intent = $1 LIMIT 1`, key.PaymentIntent))
}
