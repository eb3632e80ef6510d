package crdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/parser"
	"github.com/cockroachdb/cockroachdb-parser/pkg/sql/sem/tree"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/crdb"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// cellsYAML renders a valid cells.yaml with one cell per "id region
// [state]" entry.
func cellsYAML(t *testing.T, cells ...string) *config.Cells {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ncells:\n")
	for i, c := range cells {
		f := strings.Fields(c)
		state := "active"
		if len(f) > 2 {
			state = f[2]
		}
		port := 5000 + 2*i
		b.WriteString("  - id: " + f[0] + "\n    region: " + f[1] + "\n    state: " + state +
			"\n    gateway: 127.0.0.1:" + itoa(port) + "\n    api: 127.0.0.1:" + itoa(port+1) + "\n    capacity: 10\n")
	}
	c, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	return c
}

func itoa(n int) string {
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// schemas is a small catalogue shaped like livecell's: a REGIONAL BY ROW
// player table and a GLOBAL directory.
func schemas() []db.Schema {
	return []db.Schema{
		{
			Component:  "accounts",
			Migrations: fstest.MapFS{"0001_players.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS players (id TEXT PRIMARY KEY, home_cell TEXT NOT NULL);\n")}},
			Tables:     []db.Table{{Name: "players", Locality: db.RegionalByRow, PlayerColumn: "id", HomeColumn: "home_cell"}},
		},
		{
			Component:  "directory",
			Migrations: fstest.MapFS{"0001_homes.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS player_homes (player_id TEXT PRIMARY KEY, cell_id TEXT NOT NULL);\n")}},
			Tables:     []db.Table{{Name: "player_homes", Locality: db.Global, PlayerColumn: "player_id", HomeColumn: "cell_id"}},
		},
	}
}

func TestNewRegionsPrimaryAndSurvival(t *testing.T) {
	tests := []struct {
		name        string
		cells       []string
		opts        crdb.Options
		wantPrimary string
		wantRegions []string
		wantSurvive string
		wantErr     string
	}{
		{"first active cell's region is primary", []string{"eu-west europe-west1", "us-east us-east1"}, crdb.Options{},
			"europe-west1", []string{"europe-west1", "us-east1"}, "SURVIVE ZONE FAILURE", ""},
		{"a draining first cell does not give the primary region", []string{"eu-west europe-west1 draining", "us-east us-east1"}, crdb.Options{},
			"us-east1", []string{"us-east1", "europe-west1"}, "SURVIVE ZONE FAILURE", ""},
		{"override wins and is listed first", []string{"eu-west europe-west1", "us-east us-east1"}, crdb.Options{PrimaryRegion: "us-east1"},
			"us-east1", []string{"us-east1", "europe-west1"}, "SURVIVE ZONE FAILURE", ""},
		{"cells sharing a region share it", []string{"eu-1 europe-west1", "eu-2 europe-west1", "us-1 us-east1"}, crdb.Options{},
			"europe-west1", []string{"europe-west1", "us-east1"}, "SURVIVE ZONE FAILURE", ""},
		{"disabled cells keep their region", []string{"eu-west europe-west1", "ap-se asia-southeast1 disabled"}, crdb.Options{},
			"europe-west1", []string{"europe-west1", "asia-southeast1"}, "SURVIVE ZONE FAILURE", ""},
		{"region survival with three regions", []string{"a r1", "b r2", "c r3"}, crdb.Options{SurviveRegionFailure: true},
			"r1", []string{"r1", "r2", "r3"}, "SURVIVE REGION FAILURE", ""},
		{"region survival needs three regions", []string{"a r1", "b r2"}, crdb.Options{SurviveRegionFailure: true},
			"", nil, "", "needs at least 3 regions"},
		{"override must be a cell's region", []string{"a r1"}, crdb.Options{PrimaryRegion: "mars1"},
			"", nil, "", `primary region "mars1" is not the db region of any cell`},
		{"database name with a NUL", []string{"a r1"}, crdb.Options{Database: "x\x00"},
			"", nil, "", "without NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := crdb.New(cellsYAML(t, tt.cells...), schemas(), tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if o.PrimaryRegion != tt.wantPrimary {
				t.Errorf("got primary region %q, want %q", o.PrimaryRegion, tt.wantPrimary)
			}
			if !slices.Equal(o.Regions, tt.wantRegions) {
				t.Errorf("got regions %q, want %q", o.Regions, tt.wantRegions)
			}
			last := o.DatabaseStatements[len(o.DatabaseStatements)-1]
			if want := `ALTER DATABASE "livecell" ` + tt.wantSurvive; last != want {
				t.Errorf("got last database statement %q, want %q", last, want)
			}
		})
	}
}

func TestNewNoActiveCell(t *testing.T) {
	// config.Validate refuses this file; New must not rely on it.
	cells := &config.Cells{Version: 1, Cells: []config.Cell{{ID: "a", Region: "r1", State: config.StateDraining}}}
	if _, err := crdb.New(cells, schemas(), crdb.Options{}); err == nil || !strings.Contains(err.Error(), "no active cell") {
		t.Errorf("got error %v, want one about no active cell", err)
	}
	if _, err := crdb.New(cells, schemas(), crdb.Options{PrimaryRegion: "r1"}); err != nil {
		t.Errorf("with an explicit primary region: got %v, want nil", err)
	}
}

func TestStatementsForTwoCells(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "us-east us-east1", "eu-west europe-west1"), schemas(), crdb.Options{Database: "game"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	expr := `(CASE "home_cell" WHEN 'eu-west' THEN 'europe-west1' WHEN 'us-east' THEN 'us-east1' ELSE 'us-east1' END)`
	col := crdb.RegionColumn(expr)
	want := []string{
		`CREATE DATABASE IF NOT EXISTS "game" PRIMARY REGION "us-east1" REGIONS "us-east1", "europe-west1" SURVIVE ZONE FAILURE`,
		`ALTER DATABASE "game" PRIMARY REGION "us-east1"`,
		`ALTER DATABASE "game" ADD REGION IF NOT EXISTS "europe-west1"`,
		`ALTER DATABASE "game" SURVIVE ZONE FAILURE`,
		`ALTER TABLE "players" ADD COLUMN IF NOT EXISTS "` + col + `" crdb_internal_region NOT VISIBLE AS ` + expr + ` STORED NOT NULL`,
		`ALTER TABLE "players" SET LOCALITY REGIONAL BY ROW AS "` + col + `"`,
		`ALTER TABLE "player_homes" SET LOCALITY GLOBAL`,
	}
	got := o.Statements()
	if !slices.Equal(got, want) {
		t.Errorf("got statements\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if o.RegionColumns["players"] != col {
		t.Errorf("got RegionColumns[players] = %q, want %q", o.RegionColumns["players"], col)
	}
	if _, ok := o.RegionColumns["player_homes"]; ok {
		t.Error("a GLOBAL table got a region column, want none")
	}
}

// TestRegionColumnFollowsTheMapping is why the column name carries a hash:
// re-running the overlay after adding a cell must move the table onto a new
// mapping, while re-running it unchanged (or with cells reordered) must
// change nothing.
func TestRegionColumnFollowsTheMapping(t *testing.T) {
	column := func(cells ...string) string {
		o, err := crdb.New(cellsYAML(t, cells...), schemas(), crdb.Options{})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return o.RegionColumns["players"]
	}
	base := column("eu-west europe-west1", "us-east us-east1")
	tests := []struct {
		name  string
		cells []string
		same  bool
	}{
		{"unchanged", []string{"eu-west europe-west1", "us-east us-east1"}, true},
		{"a state change", []string{"eu-west europe-west1", "us-east us-east1 draining"}, true},
		{"a new cell", []string{"eu-west europe-west1", "us-east us-east1", "ap-se asia-southeast1"}, false},
		{"a cell moved to another region", []string{"eu-west europe-west2", "us-east us-east1"}, false},
		{"another primary region (the ELSE branch)", []string{"us-east us-east1", "eu-west europe-west1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := column(tt.cells...)
			if (got == base) != tt.same {
				t.Errorf("got column %s against base %s, want same=%v", got, base, tt.same)
			}
			if !strings.HasPrefix(got, "crdb_region_") || len(got) != len("crdb_region_")+8 {
				t.Errorf("got column %q, want crdb_region_ and 8 hex digits", got)
			}
		})
	}
}

// parseOne parses sql with CockroachDB's parser and wants one statement.
func parseOne(t *testing.T, sql string) tree.Statement {
	t.Helper()
	stmts, err := parser.Parse(sql)
	if err != nil {
		t.Fatalf("CockroachDB parser rejects %q: %v", sql, err)
	}
	if len(stmts) != 1 {
		t.Fatalf("got %d statements from %q, want 1", len(stmts), sql)
	}
	return stmts[0].AST
}

func TestEveryOverlayStatementParses(t *testing.T) {
	configs := []struct {
		name  string
		cells []string
		opts  crdb.Options
	}{
		{"one cell", []string{"solo us-east1"}, crdb.Options{}},
		{"two cells", []string{"eu-west europe-west1", "us-east us-east1"}, crdb.Options{}},
		{"three regions, region survival", []string{"a us-east1", "b europe-west1", "c asia-southeast1"}, crdb.Options{SurviveRegionFailure: true, Database: "game"}},
		{"keyword database name", []string{"a us-east1"}, crdb.Options{Database: "select"}},
	}
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			o, err := crdb.New(cellsYAML(t, c.cells...), schemas(), c.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, s := range o.Statements() {
				parseOne(t, s)
			}
		})
	}
}

// TestOverlayMeansWhatItSays checks the parsed trees, not just that they
// parse: the locality, the region column and the computed expression.
func TestOverlayMeansWhatItSays(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "eu-west europe-west1", "us-east us-east1"), schemas(), crdb.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	col := o.RegionColumns["players"]
	var sawRBR, sawGlobal, sawColumn bool
	for _, s := range o.TableStatements {
		switch n := parseOne(t, s).(type) {
		case *tree.AlterTableLocality:
			switch n.Locality.LocalityLevel {
			case tree.LocalityLevelRow:
				sawRBR = true
				if got := string(n.Locality.RegionalByRowColumn); got != col {
					t.Errorf("REGIONAL BY ROW AS %q, want %q", got, col)
				}
			case tree.LocalityLevelGlobal:
				sawGlobal = true
			default:
				t.Errorf("%q: locality level %v, want ROW or GLOBAL", s, n.Locality.LocalityLevel)
			}
		case *tree.AlterTable:
			for _, cmd := range n.Cmds {
				add, ok := cmd.(*tree.AlterTableAddColumn)
				if !ok {
					t.Errorf("%q: command %T, want ADD COLUMN", s, cmd)
					continue
				}
				sawColumn = true
				d := add.ColumnDef
				if string(d.Name) != col || !add.IfNotExists || !d.IsComputed() {
					t.Errorf("ADD COLUMN %s (if not exists %v, computed %v), want IF NOT EXISTS %s computed", d.Name, add.IfNotExists, d.IsComputed(), col)
				}
				if d.Computed.Virtual {
					t.Error("region column is VIRTUAL, want STORED")
				}
				if d.Nullable.Nullability != tree.NotNull {
					t.Error("region column is nullable, want NOT NULL (REGIONAL BY ROW AS requires it)")
				}
				if !d.Hidden {
					t.Error("region column is visible, want NOT VISIBLE so SELECT * matches PostgreSQL")
				}
				if got := d.Type.SQLString(); got != "crdb_internal_region" {
					t.Errorf("region column type %s, want crdb_internal_region", got)
				}
				expr, ok := d.Computed.Expr.(*tree.CaseExpr)
				if !ok {
					t.Fatalf("computed expression is %T, want a CASE", d.Computed.Expr)
				}
				if got := len(expr.Whens); got != 2 {
					t.Errorf("got %d WHEN branches, want one per cell (2)", got)
				}
				if got := tree.AsString(expr.Else); got != "'europe-west1'" {
					t.Errorf("got ELSE %s, want the primary region 'europe-west1'", got)
				}
			}
		default:
			t.Errorf("%q parsed as %T, want ALTER TABLE", s, n)
		}
	}
	if !sawRBR || !sawGlobal || !sawColumn {
		t.Errorf("saw REGIONAL BY ROW %v, GLOBAL %v, region column %v; want all", sawRBR, sawGlobal, sawColumn)
	}
}

// TestQuotingSurvivesHostileNames uses names config.Validate would refuse,
// to show the generator escapes instead of relying on validation: the
// parser must read back exactly the names that went in.
func TestQuotingSurvivesHostileNames(t *testing.T) {
	cells := &config.Cells{Version: 1, Cells: []config.Cell{
		{ID: "o'brien", DBRegion: `eu"west`, State: config.StateActive},
		{ID: `x'); DROP TABLE players; --`, DBRegion: "us-east1", State: config.StateActive},
	}}
	o, err := crdb.New(cells, schemas(), crdb.Options{Database: `my "db"`})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, s := range o.Statements() {
		ast := parseOne(t, s)
		switch n := ast.(type) {
		case *tree.AlterDatabaseAddRegion:
			if string(n.Name) != `my "db"` || string(n.Region) != "us-east1" {
				t.Errorf("ADD REGION parsed as database %q region %q, want my \"db\" and us-east1", n.Name, n.Region)
			}
		case *tree.AlterDatabasePrimaryRegion:
			if string(n.PrimaryRegion) != `eu"west` {
				t.Errorf("PRIMARY REGION parsed as %q, want eu\"west", n.PrimaryRegion)
			}
		case *tree.AlterTable:
			for _, cmd := range n.Cmds {
				add, ok := cmd.(*tree.AlterTableAddColumn)
				if !ok {
					continue
				}
				var whens []string
				for _, w := range add.ColumnDef.Computed.Expr.(*tree.CaseExpr).Whens {
					str, ok := w.Cond.(*tree.StrVal)
					if !ok {
						t.Fatalf("WHEN %s is %T, want a string constant", w.Cond, w.Cond)
					}
					whens = append(whens, str.RawString())
				}
				want := []string{"o'brien", `x'); DROP TABLE players; --`}
				if !slices.Equal(whens, want) {
					t.Errorf("WHEN branches read back as %q, want %q", whens, want)
				}
			}
		}
	}
}

// TestParserRejectsBrokenSQL shows the parse checks can fail: the parser
// is a real CockroachDB grammar, not something that accepts anything.
func TestParserRejectsBrokenSQL(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "eu-west europe-west1", "us-east us-east1"), schemas(), crdb.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addColumn := o.TableStatements[0]
	tests := []struct{ name, sql string }{
		{"misspelt locality", `ALTER TABLE players SET LOCALITY REGIONAL BY ROWS AS crdb_region`},
		{"region survival spelt wrong", `ALTER DATABASE livecell SURVIVE REGIONS FAILURE`},
		{"unquoted region with a dash", `ALTER DATABASE livecell ADD REGION IF NOT EXISTS us-east1`},
		{"generated CASE without END", strings.Replace(addColumn, " END)", ")", 1)},
		{"generated CASE with an unescaped quote", strings.Replace(addColumn, "'eu-west'", "'eu'west'", 1)},
		{"trailing comma", `ALTER TABLE players SET LOCALITY GLOBAL,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sql == addColumn {
				t.Fatal("the mutation did not change the statement")
			}
			if _, err := parser.Parse(tt.sql); err == nil {
				t.Errorf("parser accepted %q, want a syntax error", tt.sql)
			}
		})
	}
}

func TestWriteScriptParsesWhole(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "eu-west europe-west1", "us-east us-east1"), schemas(), crdb.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var buf bytes.Buffer
	if err := o.WriteScript(&buf, schemas()); err != nil {
		t.Fatalf("WriteScript: %v", err)
	}
	stmts, err := parser.Parse(buf.String())
	if err != nil {
		t.Fatalf("CockroachDB parser rejects the script: %v\n%s", err, buf.String())
	}
	// 4 database statements, SET database, 2 migrations, 3 table statements.
	if got, want := len(stmts), 4+1+2+3; got != want {
		t.Errorf("got %d statements in the script, want %d", got, want)
	}
	var kinds []string
	for _, s := range stmts {
		kinds = append(kinds, fmt.Sprintf("%T", s.AST))
	}
	want := []string{"*tree.CreateDatabase", "*tree.AlterDatabasePrimaryRegion", "*tree.AlterDatabaseAddRegion", "*tree.AlterDatabaseSurvivalGoal",
		"*tree.SetVar", "*tree.CreateTable", "*tree.CreateTable", "*tree.AlterTable", "*tree.AlterTableLocality", "*tree.AlterTableLocality"}
	if !slices.Equal(kinds, want) {
		t.Errorf("got statement order %q, want %q", kinds, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteScriptReportsWriteErrors(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "a r1"), schemas(), crdb.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := o.WriteScript(failingWriter{}, schemas()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got error %v, want the writer's", err)
	}
}

// TestApplyAgainstPostgreSQL runs Apply's real path on PostgreSQL, which
// stands in for CockroachDB here and rejects the first multi-region
// statement: Apply must stop there, before any migration.
func TestApplyAgainstPostgreSQL(t *testing.T) {
	pool := dbtest.Pool(t)
	ctx := t.Context()
	var current string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		t.Fatal(err)
	}

	other, err := crdb.New(cellsYAML(t, "a r1"), schemas(), crdb.Options{Database: current + "_other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Apply(ctx, pool, schemas()); err == nil || !strings.Contains(err.Error(), "connected to database") {
		t.Errorf("Apply to another database: got %v, want a mismatch error", err)
	}

	o, err := crdb.New(cellsYAML(t, "a r1"), schemas(), crdb.Options{Database: current})
	if err != nil {
		t.Fatal(err)
	}
	err = o.Apply(ctx, pool, schemas())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		t.Fatalf("got error %v, want PostgreSQL's syntax error 42601 for the multi-region clauses", err)
	}
	if !strings.Contains(err.Error(), "CREATE DATABASE IF NOT EXISTS") {
		t.Errorf("got error %q, want it to name the failing statement", err)
	}
	var tables int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("got %d tables after a failed Apply, want 0: migrations ran before the database statements", tables)
	}
}

func TestApplyOrder(t *testing.T) {
	o, err := crdb.New(cellsYAML(t, "eu-west europe-west1", "us-east us-east1"), schemas(), crdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	exec := func(_ context.Context, sql string) error { log = append(log, sql); return nil }
	migrate := func(context.Context) error { log = append(log, "MIGRATE"); return nil }
	if err := crdb.ApplyWith(context.Background(), o, exec, migrate); err != nil {
		t.Fatalf("apply: %v", err)
	}
	want := append(append(append([]string(nil), o.DatabaseStatements...), "MIGRATE"), o.TableStatements...)
	if !slices.Equal(log, want) {
		t.Errorf("got order\n  %s\nwant\n  %s", strings.Join(log, "\n  "), strings.Join(want, "\n  "))
	}

	log = nil
	boom := errors.New("boom")
	failing := func(_ context.Context, sql string) error {
		log = append(log, sql)
		if strings.Contains(sql, "ADD REGION") {
			return boom
		}
		return nil
	}
	if err := crdb.ApplyWith(context.Background(), o, failing, migrate); !errors.Is(err, boom) {
		t.Errorf("got error %v, want boom", err)
	}
	if slices.Contains(log, "MIGRATE") {
		t.Error("migrations ran after a database statement failed, want a stop")
	}
}
