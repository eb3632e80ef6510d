package db

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationsTable records applied migrations, one row per component and
// version, in the connection's current schema.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS livecell_migrations (
	component  TEXT        NOT NULL,
	version    INT         NOT NULL,
	name       TEXT        NOT NULL,
	checksum   TEXT        NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`

// migrationName is NNNN_description.sql: at least four digits so that files
// list in version order, then a lower-case description.
var migrationName = regexp.MustCompile(`^([0-9]{4,})_([a-z0-9][a-z0-9_]*)\.sql$`)

type migration struct {
	version  int
	name     string // file name
	sql      string
	checksum string // hex sha256 of the file
}

// Migrate applies the migrations of one component: the *.sql files at the
// root of migrations, named NNNN_description.sql, in version order. Each runs
// in its own transaction together with its row in livecell_migrations, so a
// migration is either applied and recorded or neither. Running Migrate again
// applies only what is new.
//
// Migrate fails, before applying anything more, when a file name is
// malformed, two files share a version, or a migration that was already
// applied has changed since (its sha256 differs): applied migrations are
// immutable; fix forward with a new file. Rows for versions that have no file
// are ignored, so a binary rolled back during a deploy still starts.
//
// Concurrent migrators (every replica runs Migrate at start-up) are
// serialised by pg_advisory_xact_lock on a hash of the component, with READ
// COMMITTED transactions so the winner's row is visible to the waiter once
// it gets the lock. Older CockroachDB releases accept the call but do not
// lock (their advisory-lock builtins were no-ops); there the (component,
// version) primary key and SERIALIZABLE retries make the loser roll back and
// find the migration applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, component string, migrations fs.FS) error {
	if component == "" {
		return errors.New("db.Migrate: empty component")
	}
	ms, err := readMigrations(migrations)
	if err != nil {
		return fmt.Errorf("db.Migrate %s: %w", component, err)
	}
	if err := withMigrationRetry(ctx, pool, lockKey("livecell_migrations"), func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, createMigrationsTable)
		return err
	}); err != nil {
		return fmt.Errorf("db.Migrate %s: create livecell_migrations: %w", component, err)
	}
	key := lockKey("livecell_migrations/" + component)
	for _, m := range ms {
		err := withMigrationRetry(ctx, pool, key, func(ctx context.Context, tx pgx.Tx) error {
			return applyOne(ctx, tx, component, m)
		})
		if err != nil {
			return fmt.Errorf("db.Migrate %s: %s: %w", component, m.name, err)
		}
	}
	return nil
}

// withMigrationRetry runs fn under the advisory lock key. A unique violation
// means a concurrent migrator that did not honour the lock won the race
// (CockroachDB without advisory locks); one more attempt then sees its row.
func withMigrationRetry(ctx context.Context, pool *pgxpool.Pool, key int64, fn func(context.Context, pgx.Tx) error) error {
	locked := func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", key); err != nil {
			return fmt.Errorf("advisory lock: %w", err)
		}
		return fn(ctx, tx)
	}
	err := RunTx(ctx, pool, locked, WithIsoLevel(pgx.ReadCommitted))
	if IsUniqueViolation(err) {
		err = RunTx(ctx, pool, locked, WithIsoLevel(pgx.ReadCommitted))
	}
	return err
}

func applyOne(ctx context.Context, tx pgx.Tx, component string, m migration) error {
	var name, sum string
	err := tx.QueryRow(ctx,
		`SELECT name, checksum FROM livecell_migrations WHERE component = $1 AND version = $2`,
		component, m.version).Scan(&name, &sum)
	switch {
	case err == nil:
		if sum != m.checksum {
			return fmt.Errorf("checksum mismatch: version %d was applied as %s with sha256 %s, file now has %s; applied migrations must not change, add a new one",
				m.version, name, sum, m.checksum)
		}
		return nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("read livecell_migrations: %w", err)
	}
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO livecell_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)`,
		component, m.version, m.name, m.checksum); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// readMigrations lists and validates the *.sql files at the root of fsys.
// Other files (a README, say) and directories are ignored.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		parts := migrationName.FindStringSubmatch(e.Name())
		if parts == nil {
			return nil, fmt.Errorf("malformed migration file name %q: want NNNN_description.sql (digits, underscore, lower-case description)", e.Name())
		}
		version, err := strconv.Atoi(parts[1])
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("malformed migration file name %q: version must be a positive integer", e.Name())
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("duplicate migration version %d: %s and %s", version, prev, e.Name())
		}
		seen[version] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		ms = append(ms, migration{version: version, name: e.Name(), sql: string(body), checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return ms, nil
}

// lockKey maps a name to a pg_advisory_xact_lock key. FNV is stable across
// releases and processes, which is all a lock key needs.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}
