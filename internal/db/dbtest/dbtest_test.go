package dbtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/db/dbtest"
)

func TestPoolsAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := dbtest.Pool(t), dbtest.Pool(t)
	for name, pool := range map[string]*pgxpool.Pool{"a": a, "b": b} {
		if _, err := pool.Exec(ctx, "CREATE TABLE things (name TEXT)"); err != nil {
			t.Fatalf("pool %s: create table: %v", name, err)
		}
		if _, err := pool.Exec(ctx, "INSERT INTO things VALUES ($1)", name); err != nil {
			t.Fatalf("pool %s: insert: %v", name, err)
		}
	}
	rows, _ := a.Query(ctx, "SELECT name FROM things")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if len(got) != 1 || got[0] != "a" {
		t.Errorf("pool a sees %q, want [a]: schemas leak between pools", got)
	}
}

func TestSchemaDroppedAfterTest(t *testing.T) {
	ctx := context.Background()
	url := dbtest.URL(t) // skip before the subtest can skip alone
	var schema string
	t.Run("inner", func(t *testing.T) {
		pool := dbtest.Pool(t)
		if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatalf("current_schema: %v", err)
		}
	})
	if schema == "" {
		t.Fatal("got empty current_schema, want the test schema")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatalf("count schemas: %v", err)
	}
	if n != 0 {
		t.Errorf("got %d schemas named %s after the test, want 0", n, schema)
	}
}
