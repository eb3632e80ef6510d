// Package crdb generates livecell's CockroachDB-only schema overlay from
// cells.yaml and the components' schema declarations, and applies it.
//
// livecell keeps one base schema that PostgreSQL and CockroachDB both accept
// (the components' migrations) and puts everything multi-region here,
// because PostgreSQL rejects it: the database's regions and survival goal,
// and each table's locality. The CockroachDB dialect is the overlay's
// database statements, then every component's migrations, then the
// overlay's table statements; the PostgreSQL dialect is the migrations alone
// (db.WriteMigrations, db.MigrateSchemas).
//
// Every statement is idempotent, so the overlay is re-run after every change
// to cells.yaml: a new cell in a new region adds the region and remaps the
// region columns; nothing is ever dropped (see Overlay).
//
// No CockroachDB binary runs on the development or CI machines. The
// generated SQL is checked by CockroachDB's own parser in tests (syntax
// only); what it does to a cluster is taken from CockroachDB's documentation
// and source, not observed here.
package crdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db"
)

// DefaultDatabase names the database when Options.Database is empty.
const DefaultDatabase = "livecell"

// Options adjust the overlay beyond what cells.yaml says.
type Options struct {
	// Database is the database the overlay configures (default
	// DefaultDatabase). When applying, it must be the one connected to.
	Database string
	// PrimaryRegion overrides the default rule: the db region of the first
	// active cell in cells.yaml. It must be the db region of some cell.
	PrimaryRegion string
	// SurviveRegionFailure asks for SURVIVE REGION FAILURE instead of the
	// default SURVIVE ZONE FAILURE. CockroachDB needs at least three
	// regions for it, so fewer is an error rather than a silent downgrade.
	SurviveRegionFailure bool
}

// Overlay is the CockroachDB-only part of the schema for one cells.yaml.
type Overlay struct {
	// Database name, primary region and every region, primary first.
	Database      string
	PrimaryRegion string
	Regions       []string
	// DatabaseStatements make the database multi-region with every region
	// of cells.yaml; they run before the migrations, so new tables are
	// created in a multi-region database.
	DatabaseStatements []string
	// TableStatements set each declared table's locality; they run after
	// the migrations, which create the tables.
	TableStatements []string
	// RegionColumns maps each REGIONAL BY ROW table to its computed region
	// column (see RegionColumn).
	RegionColumns map[string]string
}

// New generates the overlay for cells and schemas.
//
// Regions are the distinct db regions of every cell in file order, whatever
// the cell's state: a draining or disabled cell still holds its players'
// rows. The primary region, where rows whose home cell is not in cells.yaml
// live, is Options.PrimaryRegion or else the db region of the first active
// cell. Because draining that cell would then move the primary region,
// deployments past the first cell should pin it with
// Options.PrimaryRegion (livecell migrate --primary-region).
//
// Regions are only ever added: CockroachDB refuses DROP REGION while rows
// still use it, so removing a region is an operator's step after its
// players are rehomed (docs/data-layer.md).
func New(cells *config.Cells, schemas []db.Schema, opts Options) (*Overlay, error) {
	if cells == nil || len(cells.Cells) == 0 {
		return nil, errors.New("crdb.New: no cells")
	}
	if err := db.ValidateSchemas(schemas); err != nil {
		return nil, fmt.Errorf("crdb.New: %w", err)
	}
	o := &Overlay{Database: opts.Database, RegionColumns: map[string]string{}}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if err := checkName("database", o.Database); err != nil {
		return nil, err
	}

	// Each cell's db region, and the regions in first-seen order.
	homes := make([]cellRegion, 0, len(cells.Cells))
	var firstActive string
	for _, c := range cells.Cells {
		r := c.DBRegion
		if r == "" {
			r = c.Region // config.Validate defaults it the same way
		}
		if err := checkName("cell "+c.ID+" db region", r); err != nil {
			return nil, err
		}
		if err := checkName("cell id", c.ID); err != nil {
			return nil, err
		}
		homes = append(homes, cellRegion{c.ID, r})
		if !slices.Contains(o.Regions, r) {
			o.Regions = append(o.Regions, r)
		}
		if firstActive == "" && (c.State == config.StateActive || c.State == "") {
			firstActive = r
		}
	}
	o.PrimaryRegion = opts.PrimaryRegion
	if o.PrimaryRegion == "" {
		o.PrimaryRegion = firstActive
	}
	switch {
	case o.PrimaryRegion == "":
		return nil, errors.New("crdb.New: no active cell to take the primary region from; set a primary region")
	case !slices.Contains(o.Regions, o.PrimaryRegion):
		return nil, fmt.Errorf("crdb.New: primary region %q is not the db region of any cell (regions: %s)",
			o.PrimaryRegion, strings.Join(o.Regions, ", "))
	}
	// Primary first: the order CREATE DATABASE lists them in.
	o.Regions = append([]string{o.PrimaryRegion}, slices.DeleteFunc(o.Regions, func(r string) bool { return r == o.PrimaryRegion })...)

	survive := "SURVIVE ZONE FAILURE"
	if opts.SurviveRegionFailure {
		if len(o.Regions) < 3 {
			return nil, fmt.Errorf("crdb.New: SURVIVE REGION FAILURE needs at least 3 regions, cells.yaml has %d (%s)",
				len(o.Regions), strings.Join(o.Regions, ", "))
		}
		survive = "SURVIVE REGION FAILURE"
	}

	dbName := quoteIdent(o.Database)
	quoted := make([]string, len(o.Regions))
	for i, r := range o.Regions {
		quoted[i] = quoteIdent(r)
	}
	// CREATE … IF NOT EXISTS does nothing to an existing database, so the
	// ALTERs that follow bring one that exists (multi-region or not) to the
	// same state; on a fresh one they are no-ops. PRIMARY REGION goes first:
	// it is what makes a plain database multi-region, and ADD REGION fails
	// on a database that is not.
	o.DatabaseStatements = append(o.DatabaseStatements,
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s PRIMARY REGION %s REGIONS %s %s",
			dbName, quoted[0], strings.Join(quoted, ", "), survive),
		fmt.Sprintf("ALTER DATABASE %s PRIMARY REGION %s", dbName, quoted[0]))
	for _, r := range quoted[1:] {
		o.DatabaseStatements = append(o.DatabaseStatements,
			fmt.Sprintf("ALTER DATABASE %s ADD REGION IF NOT EXISTS %s", dbName, r))
	}
	o.DatabaseStatements = append(o.DatabaseStatements, fmt.Sprintf("ALTER DATABASE %s %s", dbName, survive))

	for _, s := range schemas {
		for _, t := range s.Tables {
			table := quoteIdent(t.Name)
			switch t.Locality {
			case db.Global:
				o.TableStatements = append(o.TableStatements,
					fmt.Sprintf("ALTER TABLE %s SET LOCALITY GLOBAL", table))
			case db.RegionalByRow:
				expr := regionExpr(t.HomeColumn, homes, o.PrimaryRegion)
				col := RegionColumn(expr)
				o.RegionColumns[t.Name] = col
				o.TableStatements = append(o.TableStatements,
					fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s crdb_internal_region NOT VISIBLE AS %s STORED NOT NULL",
						table, quoteIdent(col), expr),
					fmt.Sprintf("ALTER TABLE %s SET LOCALITY REGIONAL BY ROW AS %s", table, quoteIdent(col)))
			default:
				return nil, fmt.Errorf("crdb.New: table %s: unknown locality %v", t.Name, t.Locality)
			}
		}
	}
	return o, nil
}

// cellRegion is one cell and the db region holding its players' rows.
type cellRegion struct{ cell, region string }

// regionExpr maps a home cell to its db region:
// (CASE home_cell WHEN 'eu-west' THEN 'europe-west1' … ELSE '<primary>' END).
// Every cell of cells.yaml has its own branch, sorted by cell id so that
// reordering cells.yaml does not change the expression (and so the region
// column, see RegionColumn). ELSE keeps a row whose home cell has left
// cells.yaml valid (NOT NULL) in the primary region. The string constants
// take the column's type, crdb_internal_region, the enum of the database's
// regions.
func regionExpr(homeColumn string, cells []cellRegion, primary string) string {
	cells = slices.Clone(cells)
	slices.SortFunc(cells, func(a, b cellRegion) int { return strings.Compare(a.cell, b.cell) })
	var b strings.Builder
	b.WriteString("(CASE ")
	b.WriteString(quoteIdent(homeColumn))
	for _, c := range cells {
		fmt.Fprintf(&b, " WHEN %s THEN %s", quoteLiteral(c.cell), quoteLiteral(c.region))
	}
	fmt.Fprintf(&b, " ELSE %s END)", quoteLiteral(primary))
	return b.String()
}

// RegionColumn names the computed region column for a region expression:
// crdb_region_ and 8 hex digits of the expression's SHA-256.
//
// The name changes whenever the mapping does, and that is what keeps the
// overlay re-runnable. CockroachDB cannot change a computed column's
// expression in place (it has no ALTER COLUMN … SET EXPRESSION), so with a
// fixed name ADD COLUMN IF NOT EXISTS would keep the old mapping forever and
// a new cell's players would silently live in the primary region. With the
// name derived from the mapping, a changed cells.yaml adds a new column and
// SET LOCALITY REGIONAL BY ROW AS moves the table onto it; re-running an
// unchanged overlay finds both the column and the locality in place, which
// CockroachDB treats as no-ops. The superseded column stays, correct but
// unused, until an operator drops it (docs/data-layer.md).
func RegionColumn(expr string) string {
	sum := sha256.Sum256([]byte(expr))
	return "crdb_region_" + hex.EncodeToString(sum[:4])
}

// Statements returns the database statements then the table statements,
// each without a trailing semicolon.
func (o *Overlay) Statements() []string {
	return append(append([]string(nil), o.DatabaseStatements...), o.TableStatements...)
}

// WriteScript writes the whole CockroachDB dialect: the database
// statements, a SET database so the rest lands in it, every migration in
// order, and the table statements. It is for review and for checking with
// CockroachDB's parser; applied by hand it would not record the migrations
// in livecell_migrations, so apply with Apply (livecell migrate) instead.
func (o *Overlay) WriteScript(w io.Writer, schemas []db.Schema) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "-- livecell schema, CockroachDB dialect: database %s, primary region %s, regions %s.\n",
		o.Database, o.PrimaryRegion, strings.Join(o.Regions, ", "))
	fmt.Fprintf(ew, "-- Generated from cells.yaml and the component schemas by `livecell migrate --dialect cockroach --print`.\n")
	fmt.Fprintf(ew, "-- Apply with `livecell migrate --dialect cockroach --database URL`, which also records the migrations.\n\n")
	fmt.Fprintf(ew, "-- 1. The database and its regions.\n")
	for _, s := range o.DatabaseStatements {
		fmt.Fprintf(ew, "%s;\n", s)
	}
	fmt.Fprintf(ew, "SET database = %s;\n\n", quoteIdent(o.Database))
	fmt.Fprintf(ew, "-- 2. The migrations of every component, in order (the PostgreSQL dialect).\n\n")
	if ew.err == nil {
		ew.err = db.WriteMigrations(ew, schemas)
	}
	fmt.Fprintf(ew, "-- 3. Table localities.\n")
	for _, s := range o.TableStatements {
		fmt.Fprintf(ew, "%s;\n", s)
	}
	if ew.err != nil {
		return fmt.Errorf("crdb.WriteScript: %w", ew.err)
	}
	return nil
}

// errWriter keeps the first write error so WriteScript checks once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// Apply brings the database behind pool to the CockroachDB dialect: the
// database statements, every component's migrations (db.MigrateSchemas, so
// they are recorded and never re-run), then the table statements. Each
// overlay statement runs on its own, in its own implicit transaction, so a
// region is committed before the columns and localities that use it; each
// is idempotent, so a failed Apply is simply run again.
//
// pool must be connected to o.Database: the migrations create their tables
// in the connection's database, and the overlay names it.
func (o *Overlay) Apply(ctx context.Context, pool *pgxpool.Pool, schemas []db.Schema) error {
	var current string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
		return fmt.Errorf("crdb.Apply: %w", err)
	}
	if current != o.Database {
		return fmt.Errorf("crdb.Apply: connected to database %q but the overlay is for %q", current, o.Database)
	}
	return o.apply(ctx,
		func(ctx context.Context, sql string) error { _, err := pool.Exec(ctx, sql); return err },
		func(ctx context.Context) error { return db.MigrateSchemas(ctx, pool, schemas) })
}

// apply is Apply's sequence with the database abstracted, so the order can
// be tested without CockroachDB.
func (o *Overlay) apply(ctx context.Context, exec func(context.Context, string) error, migrate func(context.Context) error) error {
	for _, s := range o.DatabaseStatements {
		if err := exec(ctx, s); err != nil {
			return fmt.Errorf("crdb.Apply: %s: %w", s, err)
		}
	}
	if err := migrate(ctx); err != nil {
		return fmt.Errorf("crdb.Apply: %w", err)
	}
	for _, s := range o.TableStatements {
		if err := exec(ctx, s); err != nil {
			return fmt.Errorf("crdb.Apply: %s: %w", s, err)
		}
	}
	return nil
}

// checkName rejects what cannot be written into SQL at all, even quoted.
func checkName(what, s string) error {
	if s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return fmt.Errorf("crdb.New: %s %q: want a non-empty UTF-8 name without NUL", what, s)
	}
	return nil
}

// quoteIdent double-quotes an identifier, doubling any quote inside.
// Quoting every name (database, regions, tables, columns) is what
// CockroachDB's own examples do for regions, and keeps a name that happens
// to be a keyword or contains '-' from changing the statement.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral single-quotes a string constant, doubling any quote inside.
// CockroachDB, like PostgreSQL, treats backslashes in standard strings as
// plain characters, so nothing else needs escaping.
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
