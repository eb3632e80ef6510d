// Package dbtest gives tests an isolated PostgreSQL schema of their own.
//
// Tests of many packages run in parallel against one database, so each call
// to Pool creates a fresh schema, points every connection's search_path at it
// and drops it when the test ends. The database comes from
// LIVECELL_TEST_DATABASE_URL; without it tests skip loudly, except in CI
// (CI=true), where a missing database is a failure, not a silent pass.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/db"
)

// EnvURL names the environment variable holding the test database URL.
const EnvURL = "LIVECELL_TEST_DATABASE_URL"

// maxConns caps each test pool: go test runs many packages' tests at once
// against one server, and max_connections (100 by default) is shared.
const maxConns = 4

// cleanupTimeout bounds dropping a schema: t.Context is already cancelled
// when cleanups run.
const cleanupTimeout = 30 * time.Second

// URL returns the test database URL, skipping the test when it is unset
// outside CI and failing it in CI.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url != "" {
		return url
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(EnvURL + " must be set in CI")
	}
	t.Skip("SKIPPING PostgreSQL test: " + EnvURL + " is unset (required in CI)")
	return ""
}

// Pool returns a pool on a new, empty schema that is dropped, with everything
// in it, when the test and its subtests finish.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()

	schema := "t_" + randomHex(8)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("dbtest: connect %s: %v", EnvURL, err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("dbtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, url, ident) })

	cfg, err := db.ParseConfig(url)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = min(cfg.MaxConns, maxConns)
	pool, err := db.OpenConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	// Registered after dropSchema, so it runs first: cleanups are LIFO, and
	// DROP SCHEMA would wait on locks held by the pool's connections.
	t.Cleanup(pool.Close)
	return pool
}

func dropSchema(t testing.TB, url, ident string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("dbtest: drop schema %s: %v", ident, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
		t.Errorf("dbtest: drop schema %s: %v", ident, err)
	}
}

// randomHex is lower-case on purpose: search_path folds unquoted names.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}
