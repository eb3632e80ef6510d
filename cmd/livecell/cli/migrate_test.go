package cli

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/crdb"
	"github.com/livecell/livecell/internal/db/dbtest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/migrate-*.sql from the current schemas and cells.yaml")

// runCLI runs the livecell command line and returns stdout, stderr and the
// exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// TestMigratePrintGolden pins the SQL generated for the embedded
// cells.yaml. A change here is a schema change: review the diff, then
// rerun with -update.
func TestMigratePrintGolden(t *testing.T) {
	for _, dialect := range []string{dialectCockroach, dialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, "migrate", "--dialect", dialect, "--print")
			if code != 0 {
				t.Fatalf("migrate --print exited %d: %s", code, stderr)
			}
			golden := filepath.Join("testdata", "migrate-"+dialect+".sql")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestMigratePrintGolden -update to create it)", err)
			}
			if stdout != string(want) {
				t.Errorf("migrate --dialect %s --print differs from %s (rerun with -update if the change is intended):\n%s",
					dialect, golden, lineDiff(string(want), stdout))
			}
		})
	}
}

// lineDiff names the first differing line, enough to find a golden change.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  got  %q\n  want %q", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}

// TestCockroachDialectParses runs every statement livecell would send to
// CockroachDB (all migrations and the overlay) through CockroachDB's own
// parser. Syntax only: no CockroachDB runs here.
func TestCockroachDialectParses(t *testing.T) {
	cells, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	all := schemas()
	o, err := crdb.New(cells, all, crdb.Options{})
	if err != nil {
		t.Fatalf("crdb.New: %v", err)
	}

	t.Run("overlay statements", func(t *testing.T) {
		for _, s := range o.Statements() {
			stmts, err := parser.Parse(s)
			if err != nil {
				t.Errorf("CockroachDB rejects %q: %v", s, err)
			} else if len(stmts) != 1 {
				t.Errorf("%q parsed as %d statements, want 1", s, len(stmts))
			}
		}
	})
	t.Run("each migration", func(t *testing.T) {
		for _, s := range all {
			var buf bytes.Buffer
			if err := db.WriteMigrations(&buf, []db.Schema{s}); err != nil {
				t.Fatal(err)
			}
			stmts, err := parser.Parse(buf.String())
			if err != nil {
				t.Errorf("CockroachDB rejects a migration of %s: %v", s.Component, err)
			} else if len(stmts) == 0 {
				t.Errorf("%s: parsed no statements from its migrations, want its CREATE TABLEs", s.Component)
			}
		}
	})
	t.Run("whole printed script", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, "migrate", "--dialect", "cockroach", "--print")
		if code != 0 {
			t.Fatalf("migrate --print exited %d: %s", code, stderr)
		}
		stmts, err := parser.Parse(stdout)
		if err != nil {
			t.Fatalf("CockroachDB rejects the printed script: %v", err)
		}
		// Every overlay statement, SET database, and at least one statement
		// per declared table (its CREATE TABLE).
		tables := 0
		for _, s := range all {
			tables += len(s.Tables)
		}
		if min := len(o.Statements()) + 1 + tables; len(stmts) < min {
			t.Errorf("got %d statements in the script, want at least %d", len(stmts), min)
		}
	})
	t.Run("a broken statement is rejected", func(t *testing.T) {
		broken := strings.Replace(o.TableStatements[0], "REGIONAL", "REGIONALLY", 1)
		broken = strings.Replace(broken, "STORED NOT NULL", "STORED NOT NULL NOT", 1)
		if broken == o.TableStatements[0] {
			t.Fatal("mutation did not change the statement")
		}
		if _, err := parser.Parse(broken); err == nil {
			t.Errorf("parser accepted %q, want a syntax error", broken)
		}
	})
}

// TestEverySchemaDeclaresItsTables keeps components honest: a table created
// by a migration but missing from its Schema would stay in the primary
// region in production and be left behind by rehoming.
func TestEverySchemaDeclaresItsTables(t *testing.T) {
	all := schemas()
	if err := db.ValidateSchemas(all); err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		t.Run(s.Component, func(t *testing.T) {
			if err := s.CheckMigrations(); err != nil {
				t.Error(err)
			}
		})
	}
}

// urlFor returns the test database URL with pool's schema as search_path,
// so a CLI run lands in the test's own schema.
func urlFor(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", pool.Config().ConnConfig.RuntimeParams["search_path"])
	u.RawQuery = q.Encode()
	return u.String()
}

// catalog renders the shape of the current schema and the migration
// records, to tell whether a run changed anything.
func catalog(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		   FROM information_schema.columns WHERE table_schema = current_schema()`,
		`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()`,
		`SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
		  WHERE connamespace = current_schema()::regnamespace`,
		`SELECT component || ' ' || version || ' ' || checksum || ' ' || applied_at::text FROM livecell_migrations`,
	} {
		rows, err := pool.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

func TestMigratePostgresFromScratchThenAgain(t *testing.T) {
	pool := dbtest.Pool(t)
	dsn := urlFor(t, pool)

	stdout, stderr, code := runCLI(t, "migrate", "--database", dsn)
	if code != 0 {
		t.Fatalf("first migrate exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "accounts, directory") {
		t.Errorf("got output %q, want it to list the migrated components", stdout)
	}
	first := catalog(t, pool)
	for _, s := range schemas() {
		for _, tbl := range s.Tables {
			if !slices.ContainsFunc(first, func(l string) bool { return strings.HasPrefix(l, tbl.Name+".") }) {
				t.Errorf("table %s (%s) missing after migrate", tbl.Name, s.Component)
			}
		}
	}

	if _, stderr, code := runCLI(t, "migrate", "--database", dsn, "--dialect", "postgres"); code != 0 {
		t.Fatalf("second migrate exited %d: %s", code, stderr)
	}
	if second := catalog(t, pool); !slices.Equal(first, second) {
		t.Errorf("second migrate changed the schema or the migration records:\nbefore %q\nafter  %q", first, second)
	}
}

// TestPrintedPostgresDialectIsIdempotent applies the printed SQL itself,
// twice, as an operator might: every migration must be safe to re-run.
func TestPrintedPostgresDialectIsIdempotent(t *testing.T) {
	pool := dbtest.Pool(t)
	sql, stderr, code := runCLI(t, "migrate", "--print")
	if code != 0 {
		t.Fatalf("migrate --print exited %d: %s", code, stderr)
	}
	for _, word := range []string{"LOCALITY", "REGION", "crdb_"} {
		if strings.Contains(sql, word) && !onlyInComments(sql, word) {
			t.Errorf("the PostgreSQL dialect contains %s outside comments, want migrations only", word)
		}
	}
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("first run: %v", err)
	}
	first := tableShape(t, pool)
	if len(first) == 0 {
		t.Fatal("first run created nothing")
	}
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if second := tableShape(t, pool); !slices.Equal(first, second) {
		t.Errorf("second run changed the schema:\nbefore %q\nafter  %q", first, second)
	}
}

func onlyInComments(sql, word string) bool {
	for _, line := range strings.Split(sql, "\n") {
		code, _, _ := strings.Cut(line, "--")
		if strings.Contains(code, word) {
			return false
		}
	}
	return true
}

// tableShape is catalog without livecell_migrations, which the printed
// SQL does not write.
func tableShape(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	rows, err := pool.Query(t.Context(), `
		SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns WHERE table_schema = current_schema()
		UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestMigrateFlagErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"neither print nor database", []string{"migrate"}, "exactly one of --print and --database"},
		{"both print and database", []string{"migrate", "--print", "--database", "postgres://x@127.0.0.1:1/x"}, "exactly one of"},
		{"unknown dialect", []string{"migrate", "--print", "--dialect", "mysql"}, `--dialect "mysql"`},
		{"cockroach options on postgres", []string{"migrate", "--print", "--primary-region", "us-east1"}, "--dialect cockroach only"},
		{"bad survival goal", []string{"migrate", "--print", "--dialect", "cockroach", "--survive", "planet"}, `--survive "planet"`},
		{"region survival with two regions", []string{"migrate", "--print", "--dialect", "cockroach", "--survive", "region"}, "at least 3 regions"},
		{"primary region of no cell", []string{"migrate", "--print", "--dialect", "cockroach", "--primary-region", "mars1"}, "not the db region of any cell"},
		{"unreachable database", []string{"migrate", "--database", "postgres://x@127.0.0.1:1/x?connect_timeout=5"}, "db.Open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tt.args...)
			if code == 0 {
				t.Fatalf("exit code 0 (stdout %q), want failure", stdout)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestMigratePrintCockroachOptions(t *testing.T) {
	stdout, stderr, code := runCLI(t, "migrate", "--print", "--dialect", "cockroach", "--db-name", "game", "--primary-region", "us-east1")
	if code != 0 {
		t.Fatalf("exited %d: %s", code, stderr)
	}
	for _, want := range []string{
		`CREATE DATABASE IF NOT EXISTS "game" PRIMARY REGION "us-east1" REGIONS "us-east1", "europe-west1" SURVIVE ZONE FAILURE;`,
		`ELSE 'us-east1' END`,
		`SET database = "game";`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// seedPlayer gives player rows in every table of livecell's schemas that
// Rehome moves. A new per-player table must get a row here:
// TestRehomeRealSchemas fails until it does, so rehoming it is tested.
func seedPlayer(t *testing.T, pool *pgxpool.Pool, id, cell string) {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO players (id, username, password_hash, home_cell) VALUES ($1, $1, 'hash', $2)`,
		`INSERT INTO identities (provider, subject, player_id, home_cell) VALUES ('steam', 'steam-' || $1, $1, $2)`,
		`INSERT INTO identities (provider, subject, player_id, home_cell) VALUES ('epic', 'epic-' || $1, $1, $2)`,
		`INSERT INTO refresh_tokens (token_hash, family_id, player_id, home_cell, issued_at, expires_at)
		   VALUES ('hash-' || $1, 'family-' || $1, $1, $2, now(), now() + interval '1 day')`,
		`INSERT INTO player_homes (player_id, cell_id, updated_at) VALUES ($1, $2, now() - interval '1 day')`,
		`INSERT INTO inventory_items (player_id, item_id, home_cell, quantity, acquired_at) VALUES ($1, 'hat', $2, 1, now())`,
		`INSERT INTO inventory_grants (grant_id, player_id, home_cell, items) VALUES ('grant-' || $1, $1, $2, '[]')`,
		`INSERT INTO inventory_loadouts (player_id, slot, item_id, home_cell) VALUES ($1, 'head', 'hat', $2)`,
		`INSERT INTO inventory_versions (player_id, home_cell, version) VALUES ($1, $2, 3)`,
		`INSERT INTO store_purchases (id, player_id, home_cell, offer_id, quantity, currency, amount, status, grants, idempotency_key, expires_at, created_at, updated_at)
		   VALUES ('pur-' || $1, $1, $2, 'hat', 1, 'usd', 499, 'paid', '[]', 'key-' || $1, now(), now(), now())`,
		`INSERT INTO store_webhook_events (event_id, purchase_id, player_id, home_cell) VALUES ('evt-' || $1, 'pur-' || $1, $1, $2)`,
		`INSERT INTO event_outbox (id, seq, type, player_id, home_cell, occurred_at, payload) VALUES ('ev-' || $1, 1, 'store.purchase.completed', $1, $2, now(), '{}')`,
	} {
		if _, err := pool.Exec(t.Context(), q, id, cell); err != nil {
			t.Fatalf("seed %s: %s: %v", id, q, err)
		}
	}
}

// homes counts, per rehomed table, the player's rows in each home cell.
func homes(t *testing.T, pool *pgxpool.Pool, player string) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, s := range schemas() {
		for _, tbl := range s.Tables {
			if !tbl.Rehomed() {
				continue
			}
			q := fmt.Sprintf("SELECT %s, count(*) FROM %s WHERE %s = $1 GROUP BY 1", tbl.HomeColumn, tbl.Name, tbl.PlayerColumn)
			rows, err := pool.Query(t.Context(), q, player)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out[tbl.Name] = map[string]int{}
			for rows.Next() {
				var cell string
				var n int
				if err := rows.Scan(&cell, &n); err != nil {
					t.Fatal(err)
				}
				out[tbl.Name][cell] = n
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestRehomeRealSchemas rehomes a player across livecell's own tables:
// every REGIONAL BY ROW table and the directory move in one transaction,
// another player stays put, and an unknown player writes nothing.
func TestRehomeRealSchemas(t *testing.T) {
	pool := dbtest.Pool(t)
	ctx := t.Context()
	all := schemas()
	if err := db.MigrateSchemas(ctx, pool, all); err != nil {
		t.Fatalf("MigrateSchemas: %v", err)
	}
	seedPlayer(t, pool, "alice", "eu-west")
	seedPlayer(t, pool, "bob", "eu-west")
	before := homes(t, pool, "alice")
	for table, byCell := range before {
		if byCell["eu-west"] == 0 {
			t.Fatalf("table %s has no row for alice: add one to seedPlayer so rehoming it is tested", table)
		}
	}

	if err := db.Rehome(ctx, pool, all, "alice", "us-east"); err != nil {
		t.Fatalf("Rehome: %v", err)
	}
	for table, byCell := range homes(t, pool, "alice") {
		if want := map[string]int{"us-east": before[table]["eu-west"]}; !maps.Equal(byCell, want) {
			t.Errorf("%s: alice's rows by cell %v, want %v", table, byCell, want)
		}
	}
	for table, byCell := range homes(t, pool, "bob") {
		if byCell["eu-west"] == 0 || len(byCell) != 1 {
			t.Errorf("%s: bob's rows by cell %v, want all still in eu-west", table, byCell)
		}
	}
	var fresh bool
	if err := pool.QueryRow(ctx, "SELECT updated_at > now() - interval '1 hour' FROM player_homes WHERE player_id = 'alice'").Scan(&fresh); err != nil || !fresh {
		t.Errorf("directory updated_at bumped = %v (%v), want true", fresh, err)
	}

	err := db.Rehome(ctx, pool, all, "nobody", "us-east")
	if code := apierr.CodeOf(err); code != apierr.UnknownPlayer {
		t.Errorf("Rehome(nobody): code %q (%v), want %q", code, err, apierr.UnknownPlayer)
	}
}
