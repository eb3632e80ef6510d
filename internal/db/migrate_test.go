package db_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// widgets migrations are deliberately not idempotent: applying one twice
// fails (CREATE TABLE) or shows in the row count (INSERT).
func widgetMigrations() fstest.MapFS {
	return fstest.MapFS{
		"0001_create_widgets.sql": {Data: []byte("CREATE TABLE widgets (id INT PRIMARY KEY);\nINSERT INTO widgets VALUES (1);\n")},
		"0002_second_widget.sql":  {Data: []byte("INSERT INTO widgets VALUES (2);")},
		"README.md":               {Data: []byte("not a migration")},
	}
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func appliedAt(t *testing.T, pool *pgxpool.Pool, component string) map[int]time.Time {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT version, applied_at FROM livecell_migrations WHERE component = $1", component)
	if err != nil {
		t.Fatalf("read livecell_migrations: %v", err)
	}
	defer rows.Close()
	out := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatalf("scan: %v", err)
		}
		out[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	return out
}

func TestMigrateFromScratchThenAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := dbtest.Pool(t)
	fsys := widgetMigrations()

	if err := db.Migrate(ctx, pool, "widgets", fsys); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	first := appliedAt(t, pool, "widgets")
	if len(first) != 2 {
		t.Fatalf("got %d applied migrations, want 2", len(first))
	}

	if err := db.Migrate(ctx, pool, "widgets", fsys); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM widgets"); got != 2 {
		t.Errorf("got %d widgets after two runs, want 2 (a migration ran twice)", got)
	}
	second := appliedAt(t, pool, "widgets")
	for v, at := range first {
		if !second[v].Equal(at) {
			t.Errorf("version %d applied_at changed from %v to %v, want unchanged", v, at, second[v])
		}
	}

	fsys["0003_third_widget.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO widgets VALUES (3);")}
	if err := db.Migrate(ctx, pool, "widgets", fsys); err != nil {
		t.Fatalf("third Migrate: %v", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM widgets"); got != 3 {
		t.Errorf("got %d widgets after adding 0003, want 3", got)
	}
	if got := len(appliedAt(t, pool, "widgets")); got != 3 {
		t.Errorf("got %d applied migrations, want 3", got)
	}
}

func TestMigrateAppliesInVersionOrder(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	// The map lists files in no particular order; 0002 needs 0001's table.
	fsys := fstest.MapFS{
		"0010_last.sql":   {Data: []byte("INSERT INTO log VALUES (10);")},
		"0002_second.sql": {Data: []byte("INSERT INTO log VALUES (2);")},
		"0001_create.sql": {Data: []byte("CREATE TABLE log (n INT, seq SERIAL);")},
		"0009_ninth.sql":  {Data: []byte("INSERT INTO log VALUES (9);")},
	}
	if err := db.Migrate(t.Context(), pool, "log", fsys); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	rows, err := pool.Query(t.Context(), "SELECT n FROM log ORDER BY seq")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	var got []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got = append(got, n)
	}
	if want := []int{2, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("got apply order %v, want %v", got, want)
	}
}

func TestMigrateDetectsChecksumMismatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := dbtest.Pool(t)
	fsys := widgetMigrations()
	if err := db.Migrate(ctx, pool, "widgets", fsys); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	fsys["0002_second_widget.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO widgets VALUES (22);")}
	fsys["0003_third_widget.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO widgets VALUES (3);")}
	err := db.Migrate(ctx, pool, "widgets", fsys)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "0002_second_widget.sql") {
		t.Fatalf("got error %v, want a checksum mismatch naming 0002_second_widget.sql", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM widgets"); got != 2 {
		t.Errorf("got %d widgets, want 2: nothing may apply after a checksum mismatch", got)
	}
}

func TestMigrateRejectsBadFileNames(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	ok := &fstest.MapFile{Data: []byte("CREATE TABLE ok (id INT);")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{"too few digits", fstest.MapFS{"0001_ok.sql": ok, "1_init.sql": ok}, "malformed migration file name \"1_init.sql\""},
		{"dash", fstest.MapFS{"0001-init.sql": ok}, "malformed"},
		{"upper case", fstest.MapFS{"0001_Init.sql": ok}, "malformed"},
		{"no version", fstest.MapFS{"init.sql": ok}, "malformed"},
		{"no description", fstest.MapFS{"0001_.sql": ok}, "malformed"},
		{"version zero", fstest.MapFS{"0000_zero.sql": ok}, "positive"},
		{"duplicate version", fstest.MapFS{"0001_a.sql": ok, "0001_b.sql": ok}, "duplicate migration version 1"},
		{"duplicate by padding", fstest.MapFS{"0007_a.sql": ok, "00007_b.sql": ok}, "duplicate migration version 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Migrate(t.Context(), pool, "bad", tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'ok'"); got != 0 {
		t.Errorf("got %d tables named ok, want 0: nothing may apply from an invalid set", got)
	}
}

func TestMigrateFailureRollsBackThatMigration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := dbtest.Pool(t)
	fsys := fstest.MapFS{
		"0001_create.sql": {Data: []byte("CREATE TABLE a (id INT);")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE b (id INT);\nSELECT 1/0;")},
	}
	if err := db.Migrate(ctx, pool, "broken", fsys); err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
		t.Fatalf("got error %v, want one naming 0002_broken.sql", err)
	}
	if got := count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'b'"); got != 0 {
		t.Errorf("got %d tables named b, want 0: a failed migration must roll back", got)
	}
	if got := len(appliedAt(t, pool, "broken")); got != 1 {
		t.Errorf("got %d recorded migrations, want 1 (only 0001)", got)
	}
}

func TestMigrateConcurrentMigrators(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	const migrators = 6
	var wg sync.WaitGroup
	errs := make(chan error, migrators)
	for range migrators {
		wg.Go(func() { errs <- db.Migrate(t.Context(), pool, "widgets", widgetMigrations()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	if got := count(t, pool, "SELECT count(*) FROM widgets"); got != 2 {
		t.Errorf("got %d widgets, want 2 (each migration exactly once)", got)
	}
}

func TestMigrateComponentsAreIndependent(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	for _, c := range []string{"alpha", "beta"} {
		fsys := fstest.MapFS{"0001_init.sql": {Data: []byte("CREATE TABLE " + c + " (id INT);")}}
		if err := db.Migrate(t.Context(), pool, c, fsys); err != nil {
			t.Fatalf("Migrate %s: %v", c, err)
		}
	}
	if got := count(t, pool, "SELECT count(*) FROM livecell_migrations WHERE version = 1"); got != 2 {
		t.Errorf("got %d rows for version 1, want 2 (one per component)", got)
	}
}
