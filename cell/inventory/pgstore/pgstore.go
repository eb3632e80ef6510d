// Package pgstore is the SQL inventory.Store: PostgreSQL locally and in CI,
// CockroachDB in production (REGIONAL BY ROW tables), through pgx v5 and
// internal/db. Each change is one SERIALIZABLE transaction retried whole on
// conflicts, so concurrent deliveries of one event apply it once.
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
	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
)

const component = "inventory"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Schema declares the inventory tables: player data, REGIONAL BY ROW.
func Schema() db.Schema {
	t := func(name string) db.Table {
		return db.Table{Name: name, Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"}
	}
	return db.Schema{
		Component:  component,
		Migrations: db.MigrationsDir(migrationFiles, "migrations"),
		Tables:     []db.Table{t("inventory_items"), t("inventory_grants"), t("inventory_loadouts"), t("inventory_versions")},
	}
}

// Store is an inventory.Store on a pgx pool.
type Store struct{ pool *pgxpool.Pool }

var _ inventory.Store = (*Store)(nil)

// New returns a store on pool. Call Migrate before first use.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Migrate creates or upgrades the inventory tables.
func (s *Store) Migrate(ctx context.Context) error {
	if err := db.Migrate(ctx, s.pool, component, Schema().Migrations); err != nil {
		return fmt.Errorf("inventory pgstore.Migrate: %w", err)
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error) {
	var inv inventoryapi.Inventory
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		inv, err = load(ctx, tx, playerID)
		return err
	}, db.WithIsoLevel(pgx.RepeatableRead))
	if err != nil {
		return inventoryapi.Inventory{}, fmt.Errorf("inventory pgstore.Inventory: %w", err)
	}
	return inv, nil
}

func load(ctx context.Context, q querier, playerID string) (inventoryapi.Inventory, error) {
	inv := inventoryapi.Inventory{PlayerID: playerID, Items: []inventoryapi.OwnedItem{}, Loadout: map[string]string{}}
	err := q.QueryRow(ctx, `SELECT version FROM inventory_versions WHERE player_id = $1`, playerID).Scan(&inv.Version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return inv, err
	}
	rows, err := q.Query(ctx, `SELECT item_id, quantity, acquired_at FROM inventory_items WHERE player_id = $1 ORDER BY item_id`, playerID)
	if err != nil {
		return inv, err
	}
	for rows.Next() {
		var it inventoryapi.OwnedItem
		if err := rows.Scan(&it.ItemID, &it.Quantity, &it.AcquiredAt); err != nil {
			rows.Close()
			return inv, err
		}
		it.AcquiredAt = it.AcquiredAt.UTC()
		inv.Items = append(inv.Items, it)
	}
	if err := rows.Err(); err != nil {
		return inv, err
	}
	rows, err = q.Query(ctx, `SELECT slot, item_id FROM inventory_loadouts WHERE player_id = $1`, playerID)
	if err != nil {
		return inv, err
	}
	defer rows.Close()
	for rows.Next() {
		var slot, item string
		if err := rows.Scan(&slot, &item); err != nil {
			return inv, err
		}
		inv.Loadout[slot] = item
	}
	return inv, rows.Err()
}

// bump increments the player's version inside tx.
func bump(ctx context.Context, tx pgx.Tx, playerID, homeCell string) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO inventory_versions (player_id, home_cell, version) VALUES ($1, $2, 1)
		ON CONFLICT (player_id) DO UPDATE SET version = inventory_versions.version + 1`, playerID, homeCell)
	return err
}

func (s *Store) Grant(ctx context.Context, g inventory.Grant) (bool, inventoryapi.Inventory, error) {
	items, err := json.Marshal(g.Items)
	if err != nil {
		return false, inventoryapi.Inventory{}, fmt.Errorf("inventory pgstore.Grant: %w", err)
	}
	var (
		applied bool
		inv     inventoryapi.Inventory
	)
	err = db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO inventory_grants (grant_id, player_id, home_cell, items) VALUES ($1, $2, $3, $4)
			ON CONFLICT (grant_id) DO NOTHING`, g.ID, g.PlayerID, g.HomeCell, string(items))
		if err != nil {
			return err
		}
		applied = tag.RowsAffected() == 1
		if applied {
			now := time.Now().UTC()
			for _, it := range g.Items {
				if _, err := tx.Exec(ctx, `
					INSERT INTO inventory_items (player_id, item_id, home_cell, quantity, acquired_at) VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (player_id, item_id) DO UPDATE SET quantity = inventory_items.quantity + excluded.quantity`,
					g.PlayerID, it.ItemID, g.HomeCell, it.Quantity, now); err != nil {
					return err
				}
			}
			if err := bump(ctx, tx, g.PlayerID, g.HomeCell); err != nil {
				return err
			}
		}
		inv, err = load(ctx, tx, g.PlayerID)
		return err
	})
	if err != nil {
		return false, inventoryapi.Inventory{}, fmt.Errorf("inventory pgstore.Grant %s: %w", g.ID, err)
	}
	return applied, inv, nil
}

func (s *Store) Revoke(ctx context.Context, r inventory.Revoke) (bool, inventoryapi.Inventory, error) {
	var (
		applied bool
		inv     inventoryapi.Inventory
	)
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		applied = false
		var (
			owner string
			home  string
			items string
		)
		err := tx.QueryRow(ctx, `
			UPDATE inventory_grants SET revoked = true, revoked_at = now()
			WHERE grant_id = $1 AND NOT revoked RETURNING player_id, home_cell, items`, r.ID).Scan(&owner, &home, &items)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Already revoked, or not granted yet: leave a tombstone so
			// the grant, if it ever comes, finds its id taken.
			if _, err := tx.Exec(ctx, `
				INSERT INTO inventory_grants (grant_id, player_id, home_cell, items, revoked, revoked_at)
				VALUES ($1, $2, $3, '[]', true, now()) ON CONFLICT (grant_id) DO NOTHING`, r.ID, r.PlayerID, r.HomeCell); err != nil {
				return err
			}
			inv, err = load(ctx, tx, r.PlayerID)
			return err
		case err != nil:
			return err
		}
		var grants []catalogapi.Grant
		if err := json.Unmarshal([]byte(items), &grants); err != nil {
			return fmt.Errorf("grant %s items: %w", r.ID, err)
		}
		for _, g := range grants {
			var left int
			err := tx.QueryRow(ctx, `
				UPDATE inventory_items SET quantity = quantity - $3 WHERE player_id = $1 AND item_id = $2 AND quantity > $3
				RETURNING quantity`, owner, g.ItemID, g.Quantity).Scan(&left)
			if err == nil {
				continue
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			// Nothing left of it: the player no longer owns or wears it.
			if _, err := tx.Exec(ctx, `DELETE FROM inventory_items WHERE player_id = $1 AND item_id = $2`, owner, g.ItemID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM inventory_loadouts WHERE player_id = $1 AND item_id = $2`, owner, g.ItemID); err != nil {
				return err
			}
		}
		if err := bump(ctx, tx, owner, home); err != nil {
			return err
		}
		applied = true
		inv, err = load(ctx, tx, owner)
		return err
	})
	if err != nil {
		return false, inventoryapi.Inventory{}, fmt.Errorf("inventory pgstore.Revoke %s: %w", r.ID, err)
	}
	return applied, inv, nil
}

func (s *Store) Equip(ctx context.Context, playerID, homeCell, slot, itemID string) (inventoryapi.Inventory, error) {
	var inv inventoryapi.Inventory
	err := db.RunTx(ctx, s.pool, func(ctx context.Context, tx pgx.Tx) error {
		var changed bool
		if itemID == "" {
			tag, err := tx.Exec(ctx, `DELETE FROM inventory_loadouts WHERE player_id = $1 AND slot = $2`, playerID, slot)
			if err != nil {
				return err
			}
			changed = tag.RowsAffected() > 0
		} else {
			var owned int
			err := tx.QueryRow(ctx, `SELECT quantity FROM inventory_items WHERE player_id = $1 AND item_id = $2`, playerID, itemID).Scan(&owned)
			if errors.Is(err, pgx.ErrNoRows) {
				return apierr.New(apierr.PermissionDenied, "you do not own item %q", itemID)
			}
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `
				INSERT INTO inventory_loadouts (player_id, slot, item_id, home_cell) VALUES ($1, $2, $3, $4)
				ON CONFLICT (player_id, slot) DO UPDATE SET item_id = excluded.item_id
				WHERE inventory_loadouts.item_id <> excluded.item_id`, playerID, slot, itemID, homeCell)
			if err != nil {
				return err
			}
			changed = tag.RowsAffected() > 0
		}
		if changed {
			if err := bump(ctx, tx, playerID, homeCell); err != nil {
				return err
			}
		}
		var err error
		inv, err = load(ctx, tx, playerID)
		return err
	})
	if err != nil {
		if _, coded := apierr.From(err); coded {
			return inventoryapi.Inventory{}, err
		}
		return inventoryapi.Inventory{}, fmt.Errorf("inventory pgstore.Equip: %w", err)
	}
	return inv, nil
}
