package db_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// gameSchemas mirror livecell's shape: a service with a player table and a
// child table (REGIONAL BY ROW on home_cell), a catalog (GLOBAL, not
// per-player) and the directory (GLOBAL, per-player, with updated_at).
func gameSchemas() []db.Schema {
	return []db.Schema{
		{
			Component: "accounts",
			Migrations: files("0001_players.sql", `
CREATE TABLE players (id TEXT PRIMARY KEY, name TEXT NOT NULL, home_cell TEXT NOT NULL);
CREATE TABLE items (id INT PRIMARY KEY, player_id TEXT NOT NULL REFERENCES players (id), home_cell TEXT NOT NULL);
CREATE TABLE catalog (sku TEXT PRIMARY KEY, home_cell TEXT);`),
			Tables: []db.Table{
				{Name: "players", Locality: db.RegionalByRow, PlayerColumn: "id", HomeColumn: "home_cell"},
				{Name: "items", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"},
				{Name: "catalog", Locality: db.Global},
			},
		},
		{
			Component: "directory",
			Migrations: files("0001_homes.sql", `
CREATE TABLE homes (player_id TEXT PRIMARY KEY, cell_id TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());`),
			Tables: []db.Table{
				{Name: "homes", Locality: db.Global, PlayerColumn: "player_id", HomeColumn: "cell_id", UpdatedColumn: "updated_at"},
			},
		},
	}
}

const seed = `
INSERT INTO players VALUES ('alice', 'Alice', 'eu-west'), ('bob', 'Bob', 'eu-west');
INSERT INTO items VALUES (1, 'alice', 'eu-west'), (2, 'alice', 'eu-west'), (3, 'bob', 'eu-west');
INSERT INTO catalog VALUES ('sword', 'eu-west');
INSERT INTO homes VALUES ('alice', 'eu-west', now() - interval '1 day'), ('bob', 'eu-west', now() - interval '1 day');`

func rehomeWorld(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := dbtest.Pool(t)
	if err := db.MigrateSchemas(t.Context(), pool, gameSchemas()); err != nil {
		t.Fatalf("MigrateSchemas: %v", err)
	}
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return pool
}

// snapshot renders every row of every test table, so a test can say
// exactly what changed.
func snapshot(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, q := range []struct{ table, sql string }{
		{"players", "SELECT id, name || ' ' || home_cell FROM players"},
		{"items", "SELECT id::text, player_id || ' ' || home_cell FROM items"},
		{"catalog", "SELECT sku, home_cell FROM catalog"},
		{"homes", "SELECT player_id, cell_id || ' ' || (updated_at > now() - interval '1 hour')::text FROM homes"},
	} {
		rows, err := pool.Query(t.Context(), q.sql)
		if err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatalf("scan %s: %v", q.table, err)
			}
			out[q.table+"/"+k] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return out
}

func diff(before, after map[string]string) []string {
	var d []string
	for k, v := range after {
		if before[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, before[k], v))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			d = append(d, k+": deleted")
		}
	}
	return d
}

func TestRehomeMovesEveryRowOfThePlayerAndNothingElse(t *testing.T) {
	t.Parallel()
	pool := rehomeWorld(t)
	before := snapshot(t, pool)

	if err := db.Rehome(t.Context(), pool, gameSchemas(), "alice", "us-east"); err != nil {
		t.Fatalf("Rehome: %v", err)
	}
	after := snapshot(t, pool)

	want := maps.Clone(before)
	want["players/alice"] = "Alice us-east"
	want["items/1"] = "alice us-east"
	want["items/2"] = "alice us-east"
	want["homes/alice"] = "us-east true" // updated_at bumped to now()
	if d := diff(want, after); len(d) > 0 {
		t.Errorf("after Rehome(alice, us-east), rows differ from want:\n  %s", strings.Join(d, "\n  "))
	}
}

func TestRehomeToTheSameCellIsANoOpMove(t *testing.T) {
	t.Parallel()
	pool := rehomeWorld(t)
	if err := db.Rehome(t.Context(), pool, gameSchemas(), "bob", "eu-west"); err != nil {
		t.Fatalf("Rehome to the current cell: got %v, want nil", err)
	}
	var cell string
	if err := pool.QueryRow(t.Context(), "SELECT home_cell FROM players WHERE id = 'bob'").Scan(&cell); err != nil || cell != "eu-west" {
		t.Errorf("bob's home = %q, %v; want eu-west, nil", cell, err)
	}
}

func TestRehomeRefusesWithoutWriting(t *testing.T) {
	t.Parallel()
	pool := rehomeWorld(t)
	broken := gameSchemas()
	// Declared after the real tables, so their updates have run inside the
	// transaction when this one fails.
	broken[1].Tables = append(broken[1].Tables,
		db.Table{Name: "missing_table", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"})

	tests := []struct {
		name     string
		schemas  []db.Schema
		player   string
		cell     string
		wantCode apierr.Code // "" means: not an apierr, check wantText
		wantText string
	}{
		{"unknown player", gameSchemas(), "nobody", "us-east", apierr.UnknownPlayer, "unknown player"},
		{"empty player", gameSchemas(), "", "us-east", apierr.BadRequest, "invalid player id"},
		{"NUL in cell", gameSchemas(), "alice", "us\x00east", apierr.BadRequest, "invalid cell id"},
		{"invalid UTF-8 player", gameSchemas(), "\xff", "us-east", apierr.BadRequest, "invalid player id"},
		{"failure midway rolls back", broken, "alice", "us-east", "", "missing_table"},
		{"invalid schema", []db.Schema{{Component: "x"}}, "alice", "us-east", "", "no migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, pool)
			err := db.Rehome(t.Context(), pool, tt.schemas, tt.player, tt.cell)
			if err == nil {
				t.Fatal("Rehome: got nil error, want one")
			}
			if tt.wantCode != "" {
				if got := apierr.CodeOf(err); got != tt.wantCode {
					t.Errorf("got code %q (%v), want %q", got, err, tt.wantCode)
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantText)
			}
			if d := diff(before, snapshot(t, pool)); len(d) > 0 {
				t.Errorf("Rehome failed but wrote:\n  %s", strings.Join(d, "\n  "))
			}
		})
	}
}

// TestRehomeIsOneTransaction holds a lock on the player's directory row in
// another transaction: Rehome has already rewritten players and items when
// it reaches that row, and a reader must see none of it until it commits.
func TestRehomeIsOneTransaction(t *testing.T) {
	t.Parallel()
	pool := rehomeWorld(t)
	ctx := t.Context()
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(context.Background())
	if _, err := blocker.Exec(ctx, "SELECT 1 FROM homes WHERE player_id = 'alice' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := blocker.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- db.Rehome(ctx, pool, gameSchemas(), "alice", "us-east") }()

	// Wait until Rehome is blocked on the directory row, i.e. has updated
	// the earlier tables in its open transaction.
	deadline := time.Now().Add(barrierTimeout)
	for {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text = $1`, xid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Rehome never blocked on the directory row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var moved int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items WHERE player_id = 'alice' AND home_cell = 'us-east'").Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved != 0 {
		t.Errorf("got %d of alice's items visible in us-east before Rehome committed, want 0", moved)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Rehome: %v", err)
	}
	err = pool.QueryRow(ctx, "SELECT count(*) FROM items WHERE player_id = 'alice' AND home_cell = 'us-east'").Scan(&moved)
	if err != nil || moved != 2 {
		t.Errorf("after commit: %d of alice's items in us-east (%v), want 2", moved, err)
	}
}
