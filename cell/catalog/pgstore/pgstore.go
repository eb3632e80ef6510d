// Package pgstore is the SQL catalog.Store: PostgreSQL locally and in CI,
// CockroachDB in production (GLOBAL tables), through pgx v5 and internal/db.
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/db"
)

// component names the catalog schema in livecell_migrations.
const component = "catalog"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema declares the catalog tables: GLOBAL, read locally in every region.
func Schema() db.Schema {
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables: []db.Table{
			{Name: "catalog_items", Locality: db.Global},
			{Name: "catalog_offers", Locality: db.Global},
			{Name: "catalog_version", Locality: db.Global},
		},
	}
}

// Store is a catalog.Store on a pgx pool. It is safe for concurrent use.
type Store struct{ pool *pgxpool.Pool }

var _ catalog.Store = (*Store)(nil)

// New returns a store on pool. Call Migrate before first use.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Migrate creates or upgrades the catalog tables.
func (s *Store) Migrate(ctx context.Context) error {
	if err := db.Migrate(ctx, s.pool, component, Schema().Migrations); err != nil {
		return fmt.Errorf("catalog pgstore.Migrate: %w", err)
	}
	return nil
}

// querier is what a pool and a transaction share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) Catalog(ctx context.Context) (catalogapi.Catalog, error) {
	var c catalogapi.Catalog
	// One read-only transaction, so the items, offers and version agree.
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		c, err = load(ctx, tx)
		return err
	})
	if err != nil {
		return catalogapi.Catalog{}, fmt.Errorf("catalog pgstore.Catalog: %w", err)
	}
	return c, nil
}

func load(ctx context.Context, q querier) (catalogapi.Catalog, error) {
	c := catalogapi.Catalog{Items: []catalogapi.Item{}, Offers: []catalogapi.Offer{}}
	if err := q.QueryRow(ctx, `SELECT version FROM catalog_version WHERE id = 1`).Scan(&c.Version); err != nil {
		return c, fmt.Errorf("version: %w", err)
	}
	rows, err := q.Query(ctx, `SELECT id, kind, rarity, slot, level_required, display, contents FROM catalog_items ORDER BY id`)
	if err != nil {
		return c, fmt.Errorf("items: %w", err)
	}
	for rows.Next() {
		var (
			it                catalogapi.Item
			display, contents []byte
		)
		if err := rows.Scan(&it.ID, &it.Kind, &it.Rarity, &it.Slot, &it.LevelRequired, &display, &contents); err != nil {
			rows.Close()
			return c, fmt.Errorf("items: %w", err)
		}
		if err := json.Unmarshal(display, &it.Display); err != nil {
			rows.Close()
			return c, fmt.Errorf("item %s display: %w", it.ID, err)
		}
		if err := json.Unmarshal(contents, &it.Contents); err != nil {
			rows.Close()
			return c, fmt.Errorf("item %s contents: %w", it.ID, err)
		}
		if len(it.Contents) == 0 {
			it.Contents = nil
		}
		c.Items = append(c.Items, it)
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("items: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT id, item_id, quantity, prices, available_from, available_until, title FROM catalog_offers ORDER BY id`)
	if err != nil {
		return c, fmt.Errorf("offers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			o           catalogapi.Offer
			prices      []byte
			from, until *time.Time
		)
		if err := rows.Scan(&o.ID, &o.ItemID, &o.Quantity, &prices, &from, &until, &o.Title); err != nil {
			return c, fmt.Errorf("offers: %w", err)
		}
		if err := json.Unmarshal(prices, &o.Prices); err != nil {
			return c, fmt.Errorf("offer %s prices: %w", o.ID, err)
		}
		o.AvailableFrom, o.AvailableUntil = utc(from), utc(until)
		c.Offers = append(c.Offers, o)
	}
	return c, rows.Err()
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM catalog_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("catalog pgstore.Version: %w", err)
	}
	return v, nil
}

func (s *Store) PutItem(ctx context.Context, it catalogapi.Item, check func(catalogapi.Catalog) error) (int64, error) {
	display, err := json.Marshal(it.Display)
	if err != nil {
		return 0, fmt.Errorf("catalog pgstore.PutItem: %w", err)
	}
	contents := []byte("[]")
	if len(it.Contents) > 0 {
		if contents, err = json.Marshal(it.Contents); err != nil {
			return 0, fmt.Errorf("catalog pgstore.PutItem: %w", err)
		}
	}
	return s.put(ctx, "PutItem", check, `
		INSERT INTO catalog_items (id, kind, rarity, slot, level_required, display, contents, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, rarity = excluded.rarity, slot = excluded.slot,
			level_required = excluded.level_required, display = excluded.display, contents = excluded.contents,
			updated_at = excluded.updated_at`,
		it.ID, string(it.Kind), string(it.Rarity), it.Slot, it.LevelRequired, string(display), string(contents))
}

func (s *Store) PutOffer(ctx context.Context, o catalogapi.Offer, check func(catalogapi.Catalog) error) (int64, error) {
	prices, err := json.Marshal(o.Prices)
	if err != nil {
		return 0, fmt.Errorf("catalog pgstore.PutOffer: %w", err)
	}
	return s.put(ctx, "PutOffer", check, `
		INSERT INTO catalog_offers (id, item_id, quantity, prices, available_from, available_until, title, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (id) DO UPDATE SET item_id = excluded.item_id, quantity = excluded.quantity, prices = excluded.prices,
			available_from = excluded.available_from, available_until = excluded.available_until, title = excluded.title,
			updated_at = excluded.updated_at`,
		o.ID, o.ItemID, o.Quantity, string(prices), o.AvailableFrom, o.AvailableUntil, o.Title)
}

// put runs check on the catalog and the write and the version bump in one
// SERIALIZABLE transaction, so check sees exactly what the write replaces.
func (s *Store) put(ctx context.Context, op string, check func(catalogapi.Catalog) error, sql string, args ...any) (int64, error) {
	var version int64
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		c, err := load(ctx, tx)
		if err != nil {
			return fmt.Errorf("catalog pgstore.%s: %w", op, err)
		}
		if err := check(c); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("catalog pgstore.%s: %w", op, err)
		}
		return tx.QueryRow(ctx, `UPDATE catalog_version SET version = version + 1 WHERE id = 1 RETURNING version`).Scan(&version)
	})
	return version, err
}
