package db_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/livecell/livecell/internal/db"
)

func files(kv ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		fsys[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return fsys
}

func TestCreatedTables(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  []string
	}{
		{"one table", files("0001_a.sql", "CREATE TABLE IF NOT EXISTS players (id TEXT PRIMARY KEY);"), []string{"players"}},
		{"case, temp, schema-qualified and quoted names",
			files("0001_a.sql", `create table Alpha (x int);
CREATE UNLOGGED TABLE public.beta (x INT);
CREATE TABLE IF NOT EXISTS "Gamma ""g""" (x INT);
CREATE TEMPORARY TABLE scratch (x INT);`),
			[]string{"Gamma \"g\"", "alpha", "beta", "scratch"}},
		{"indexes, views and CREATE TABLE in comments or strings do not count",
			files("0001_a.sql", `-- CREATE TABLE in_line_comment (x INT);
/* CREATE TABLE block /* nested */ CREATE TABLE still_comment (x INT); */
CREATE TABLE real_one (note TEXT DEFAULT 'CREATE TABLE in_string (x INT)');
COMMENT ON TABLE real_one IS E'it''s \' CREATE TABLE escaped (x INT)';
CREATE FUNCTION f() RETURNS void AS $body$ CREATE TABLE in_dollar (x INT) $body$ LANGUAGE sql;
CREATE INDEX IF NOT EXISTS real_one_idx ON real_one (note);
CREATE VIEW v AS SELECT 1;`),
			[]string{"real_one"}},
		{"later migrations drop and rename, in version order",
			files(
				"0002_b.sql", "DROP TABLE IF EXISTS a, public.b CASCADE; ALTER TABLE IF EXISTS c RENAME TO d;",
				"0001_a.sql", "CREATE TABLE a (x INT); CREATE TABLE b (x INT); CREATE TABLE c (x INT); CREATE TABLE e (x INT);",
				"0003_c.sql", "CREATE TABLE a (y INT); ALTER TABLE e RENAME COLUMN x TO y;"),
			[]string{"a", "d", "e"}},
		{"no migrations", files(), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.CreatedTables(tt.files)
			if err != nil {
				t.Fatalf("CreatedTables: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got tables %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCreatedTablesRejectsBadMigrationNames(t *testing.T) {
	if _, err := db.CreatedTables(files("1_a.sql", "CREATE TABLE a (x INT);")); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("got error %v, want the malformed-name error Migrate would give", err)
	}
}

func TestCheckMigrations(t *testing.T) {
	migrations := files(
		"0001_players.sql", "CREATE TABLE players (id TEXT PRIMARY KEY, home_cell TEXT NOT NULL);",
		"0002_items.sql", "CREATE TABLE items (player_id TEXT, home_cell TEXT);\nCREATE INDEX items_idx ON items (player_id);")
	players := db.Table{Name: "players", Locality: db.RegionalByRow, PlayerColumn: "id", HomeColumn: "home_cell"}
	items := db.Table{Name: "items", Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"}
	ghost := db.Table{Name: "ghost", Locality: db.Global}
	tests := []struct {
		name    string
		tables  []db.Table
		wantErr []string // substrings; none means no error
	}{
		{"all declared", []db.Table{players, items}, nil},
		{"undeclared table", []db.Table{players}, []string{"table items is created by the migrations but not declared"}},
		{"declared but never created", []db.Table{players, items, ghost}, []string{"table ghost is declared but no migration creates it"}},
		{"both at once", []db.Table{items, ghost}, []string{"table players is created", "table ghost is declared"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Schema{Component: "game", Migrations: migrations, Tables: tt.tables}.CheckMigrations()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil error, want one containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSchemaValidate(t *testing.T) {
	m := files()
	rbr := func(name string) db.Table {
		return db.Table{Name: name, Locality: db.RegionalByRow, PlayerColumn: "player_id", HomeColumn: "home_cell"}
	}
	tests := []struct {
		name    string
		schema  db.Schema
		wantErr string
	}{
		{"valid", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{rbr("a"), {Name: "catalog", Locality: db.Global}}}, ""},
		{"global per-player table", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "homes", Locality: db.Global, PlayerColumn: "p", HomeColumn: "h", UpdatedColumn: "u"}}}, ""},
		{"no component", db.Schema{Migrations: m}, "empty component"},
		{"no migrations", db.Schema{Component: "c"}, "no migrations"},
		{"bad table name", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "Bad-Name", Locality: db.Global}}}, "not a plain lower-case identifier"},
		{"duplicate table", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{rbr("a"), rbr("a")}}, "declared twice"},
		{"no locality", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "a"}}}, "want Global or RegionalByRow"},
		{"regional by row without columns", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "a", Locality: db.RegionalByRow}}}, "needs PlayerColumn and HomeColumn"},
		{"player without home", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "a", Locality: db.Global, PlayerColumn: "p"}}}, "go together"},
		{"updated without player", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "a", Locality: db.Global, UpdatedColumn: "u"}}}, "never written"},
		{"quoted column", db.Schema{Component: "c", Migrations: m, Tables: []db.Table{{Name: "a", Locality: db.RegionalByRow, PlayerColumn: `p"; DROP`, HomeColumn: "h"}}}, "PlayerColumn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.schema.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateSchemasAcrossComponents(t *testing.T) {
	m := files()
	a := db.Schema{Component: "a", Migrations: m, Tables: []db.Table{{Name: "t", Locality: db.Global}}}
	b := db.Schema{Component: "b", Migrations: m, Tables: []db.Table{{Name: "t", Locality: db.Global}}}
	tests := []struct {
		name    string
		schemas []db.Schema
		wantErr string
	}{
		{"distinct", []db.Schema{a, {Component: "b", Migrations: m}}, ""},
		{"same component twice", []db.Schema{a, a}, `component "a" declared twice`},
		{"one table, two owners", []db.Schema{a, b}, "table t declared by both a and b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.ValidateSchemas(tt.schemas)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteMigrationsOrderAndHeaders(t *testing.T) {
	schemas := []db.Schema{
		{Component: "first", Migrations: files("0002_b.sql", "SELECT 2;\n\n\n", "0001_a.sql", "SELECT 1;")},
		{Component: "second", Migrations: files("0001_x.sql", "SELECT 3;\n")},
	}
	var buf bytes.Buffer
	if err := db.WriteMigrations(&buf, schemas); err != nil {
		t.Fatalf("WriteMigrations: %v", err)
	}
	want := "-- first/0001_a.sql\nSELECT 1;\n\n-- first/0002_b.sql\nSELECT 2;\n\n-- second/0001_x.sql\nSELECT 3;\n\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMigrationsDirPanicsOnInvalidPath(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MigrationsDir with an invalid path did not panic, want a panic (a programming error)")
		}
	}()
	db.MigrationsDir(files(), "../escape")
}
