package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Locality is where CockroachDB keeps a table's rows in the multi-region
// cluster. PostgreSQL ignores it: it only drives the CockroachDB overlay
// (internal/db/crdb) and rehoming.
type Locality int

const (
	// Global tables are read locally in every region and pay a cross-region
	// round trip on write: catalogs, the cell registry, the player
	// directory. Data that every cell reads and that rarely changes.
	Global Locality = iota + 1
	// RegionalByRow tables keep each row in the database region of its
	// player's home cell, computed from the table's HomeColumn, so a
	// player's data is local to the cell that serves them and moves when
	// the player is rehomed.
	RegionalByRow
)

func (l Locality) String() string {
	switch l {
	case Global:
		return "GLOBAL"
	case RegionalByRow:
		return "REGIONAL BY ROW"
	default:
		return fmt.Sprintf("Locality(%d)", int(l))
	}
}

// Table declares one table a component's migrations create: where its rows
// live and, for player-owned rows, which columns name the player and their
// home cell.
type Table struct {
	Name     string
	Locality Locality
	// PlayerColumn holds the owning player's id: "id" in players,
	// "player_id" elsewhere. Required for RegionalByRow; on a Global table
	// it marks a per-player row (the directory) that Rehome updates too.
	PlayerColumn string
	// HomeColumn holds the player's home cell id ("home_cell"; "cell_id" in
	// the directory). On RegionalByRow tables CockroachDB derives the row's
	// region from it; Rehome rewrites it. Set exactly when PlayerColumn is.
	HomeColumn string
	// UpdatedColumn, optional, is set to now() when Rehome moves the row, for
	// tables that record when their home last changed.
	UpdatedColumn string
}

// Rehomed reports whether Rehome updates this table's rows.
func (t Table) Rehomed() bool { return t.PlayerColumn != "" }

// Schema is what a component declares about its SQL storage: its migrations
// (applied by Migrate under Component) and every table they create, with the
// table's placement. The CockroachDB overlay and Rehome are generated from
// these declarations, so a table missing here would silently stay in the
// primary region and be left behind by rehoming; CheckMigrations catches
// that.
type Schema struct {
	Component  string
	Migrations fs.FS // NNNN_name.sql files at the root, as Migrate reads them
	Tables     []Table
}

// MigrationsDir returns the dir subtree of fsys, typically the embed.FS
// holding a component's migrations/*.sql. dir is a constant in every caller,
// so an invalid one is a programming error and panics, like
// regexp.MustCompile, instead of burdening every Schema() with an error.
func MigrationsDir(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("db.MigrationsDir(%q): %v", dir, err))
	}
	return sub
}

// plainIdent is an identifier both PostgreSQL and CockroachDB take unquoted
// with the same meaning. Declared names must be plain so that the generated
// SQL and the migrations name the same objects.
var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate checks the declarations alone, without reading the migrations.
func (s Schema) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if s.Component == "" {
		add("empty component")
	}
	if s.Migrations == nil {
		add("no migrations")
	}
	seen := map[string]bool{}
	for i, t := range s.Tables {
		if !plainIdent.MatchString(t.Name) {
			add("table %d: name %q is not a plain lower-case identifier", i, t.Name)
		}
		if seen[t.Name] {
			add("table %s declared twice", t.Name)
		}
		seen[t.Name] = true
		switch t.Locality {
		case Global, RegionalByRow:
		default:
			add("table %s: locality %v: want Global or RegionalByRow", t.Name, t.Locality)
		}
		if t.Locality == RegionalByRow && (t.PlayerColumn == "" || t.HomeColumn == "") {
			add("table %s: REGIONAL BY ROW needs PlayerColumn and HomeColumn", t.Name)
		}
		if (t.PlayerColumn == "") != (t.HomeColumn == "") {
			add("table %s: PlayerColumn and HomeColumn go together", t.Name)
		}
		if t.UpdatedColumn != "" && t.PlayerColumn == "" {
			add("table %s: UpdatedColumn without PlayerColumn is never written", t.Name)
		}
		for _, c := range []struct{ field, v string }{
			{"PlayerColumn", t.PlayerColumn}, {"HomeColumn", t.HomeColumn}, {"UpdatedColumn", t.UpdatedColumn},
		} {
			if c.v != "" && !plainIdent.MatchString(c.v) {
				add("table %s: %s %q is not a plain lower-case identifier", t.Name, c.field, c.v)
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("db: schema %q: %s", s.Component, strings.Join(probs, "; "))
	}
	return nil
}

// ValidateSchemas validates every schema and checks that no two share a
// component (they would share livecell_migrations rows) or a table (two
// owners of one table cannot both declare its placement).
func ValidateSchemas(schemas []Schema) error {
	var errs []error
	components := map[string]bool{}
	owner := map[string]string{}
	for _, s := range schemas {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
		if components[s.Component] {
			errs = append(errs, fmt.Errorf("db: component %q declared twice", s.Component))
		}
		components[s.Component] = true
		for _, t := range s.Tables {
			if prev, dup := owner[t.Name]; dup && prev != s.Component {
				errs = append(errs, fmt.Errorf("db: table %s declared by both %s and %s", t.Name, prev, s.Component))
			}
			owner[t.Name] = s.Component
		}
	}
	return errors.Join(errs...)
}

// CheckMigrations reports, as one error, every table the migrations leave
// created that Tables does not declare, and every declared table they do not
// create. Component tests call it so that a new table cannot ship without a
// placement.
func (s Schema) CheckMigrations() error {
	if err := s.Validate(); err != nil {
		return err
	}
	created, err := CreatedTables(s.Migrations)
	if err != nil {
		return fmt.Errorf("db: schema %q: %w", s.Component, err)
	}
	declared := make([]string, len(s.Tables))
	for i, t := range s.Tables {
		declared[i] = t.Name
	}
	var probs []string
	for _, name := range created {
		if !slices.Contains(declared, name) {
			probs = append(probs, fmt.Sprintf("table %s is created by the migrations but not declared in Tables (declare its Locality)", name))
		}
	}
	for _, name := range declared {
		if !slices.Contains(created, name) {
			probs = append(probs, fmt.Sprintf("table %s is declared but no migration creates it", name))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("db: schema %q: %s", s.Component, strings.Join(probs, "; "))
	}
	return nil
}

// Patterns for the statements that change which tables exist. They run on
// SQL with comments and literals blanked out (see blankNonCode), so text in
// a comment or a string never counts.
var (
	identPat     = `("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`
	qualifiedPat = identPat + `(?:\s*\.\s*` + identPat + `)?`
	createTable  = regexp.MustCompile(`(?i)\bCREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?` + qualifiedPat)
	dropTable    = regexp.MustCompile(`(?i)\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:` + qualifiedPat + `\s*,\s*)*` + qualifiedPat + `)`)
	renameTable  = regexp.MustCompile(`(?i)\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?` + qualifiedPat + `\s+RENAME\s+TO\s+` + identPat)
	oneQualified = regexp.MustCompile(qualifiedPat)
)

// CreatedTables returns the tables that exist after the migrations in fsys
// run in order, sorted: CREATE TABLE adds a name, DROP TABLE removes it,
// ALTER TABLE … RENAME TO renames it. Schema qualifiers are dropped and
// unquoted names fold to lower case, as both databases do.
//
// It reads SQL with patterns, not a parser: enough for migrations written as
// DDL statements, which is what livecell's are; a table created by dynamic
// SQL inside a function would be missed.
func CreatedTables(fsys fs.FS) ([]string, error) {
	ms, err := readMigrations(fsys)
	if err != nil {
		return nil, err
	}
	type event struct {
		at       int
		from, to string // create: to; drop: from; rename: both
	}
	tables := map[string]bool{}
	for _, m := range ms {
		code := blankNonCode(m.sql)
		var evs []event
		for _, loc := range createTable.FindAllStringSubmatchIndex(code, -1) {
			evs = append(evs, event{at: loc[0], to: lastName(code, loc[2:6])})
		}
		for _, loc := range dropTable.FindAllStringSubmatchIndex(code, -1) {
			for _, q := range oneQualified.FindAllStringSubmatchIndex(code[loc[2]:loc[3]], -1) {
				evs = append(evs, event{at: loc[0], from: lastName(code[loc[2]:loc[3]], q[2:6])})
			}
		}
		for _, loc := range renameTable.FindAllStringSubmatchIndex(code, -1) {
			evs = append(evs, event{at: loc[0], from: lastName(code, loc[2:6]), to: identName(code[loc[6]:loc[7]])})
		}
		slices.SortStableFunc(evs, func(a, b event) int { return a.at - b.at })
		for _, e := range evs {
			if e.from != "" {
				delete(tables, e.from)
			}
			if e.to != "" {
				tables[e.to] = true
			}
		}
	}
	out := make([]string, 0, len(tables))
	for name := range tables {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// lastName returns the unqualified name of a match of qualifiedPat whose two
// identifier groups sit at idx (start1, end1, start2, end2; -1 when absent).
func lastName(s string, idx []int) string {
	if idx[2] >= 0 {
		return identName(s[idx[2]:idx[3]])
	}
	return identName(s[idx[0]:idx[1]])
}

// identName folds an unquoted identifier to lower case and unquotes a quoted
// one, as PostgreSQL and CockroachDB do.
func identName(id string) string {
	if strings.HasPrefix(id, `"`) {
		return strings.ReplaceAll(id[1:len(id)-1], `""`, `"`)
	}
	return strings.ToLower(id)
}

// blankNonCode replaces comments and string literals ('…', E'…', $tag$…$tag$)
// with spaces, keeping newlines and every other byte where it was. Quoted
// identifiers stay, since they are names.
func blankNonCode(sql string) string {
	b := []byte(sql)
	blank := func(from, to int) {
		for i := from; i < min(to, len(b)); i++ {
			if b[i] != '\n' {
				b[i] = ' '
			}
		}
	}
	identChar := func(i int) bool {
		return i >= 0 && (b[i] == '_' || b[i] == '$' || b[i] >= 'a' && b[i] <= 'z' || b[i] >= 'A' && b[i] <= 'Z' || b[i] >= '0' && b[i] <= '9')
	}
	for i := 0; i < len(b); {
		switch {
		case strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(b) - i
			}
			blank(i, i+end)
			i += end
		case strings.HasPrefix(sql[i:], "/*"):
			// Block comments nest in both databases.
			depth, j := 1, i+2
			for j < len(b) && depth > 0 {
				switch {
				case strings.HasPrefix(sql[j:], "/*"):
					depth, j = depth+1, j+2
				case strings.HasPrefix(sql[j:], "*/"):
					depth, j = depth-1, j+2
				default:
					j++
				}
			}
			blank(i, j)
			i = j
		case b[i] == '\'':
			// E'…' strings take backslash escapes; standard ones do not.
			escapes := i > 0 && (b[i-1] == 'E' || b[i-1] == 'e') && !identChar(i-2)
			end := closingQuote(b, i, escapes)
			blank(i, end)
			i = end
		case b[i] == '"':
			i = closingQuote(b, i, false)
		case b[i] == '$' && !identChar(i-1):
			tag := dollarTag.FindString(sql[i:])
			if tag == "" {
				i++
				continue
			}
			end := len(b)
			if k := strings.Index(sql[i+len(tag):], tag); k >= 0 {
				end = i + len(tag) + k + len(tag)
			}
			blank(i, end)
			i = end
		default:
			i++
		}
	}
	return string(b)
}

// closingQuote returns the index just past the quote that closes the one at
// b[open], where a doubled quote stands for itself (and, with escapes, a
// backslash escapes the next byte); len(b) when it is never closed.
func closingQuote(b []byte, open int, escapes bool) int {
	q := b[open]
	for j := open + 1; j < len(b); j++ {
		switch {
		case escapes && b[j] == '\\':
			j++
		case b[j] == q && j+1 < len(b) && b[j+1] == q:
			j++
		case b[j] == q:
			return j + 1
		}
	}
	return len(b)
}

// dollarTag matches the opening of a dollar-quoted string: $$ or $tag$.
var dollarTag = regexp.MustCompile(`^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$`)

// MigrateSchemas validates schemas and applies each one's migrations in
// order: the PostgreSQL dialect, and the first half of the CockroachDB one.
func MigrateSchemas(ctx context.Context, pool *pgxpool.Pool, schemas []Schema) error {
	if err := ValidateSchemas(schemas); err != nil {
		return err
	}
	for _, s := range schemas {
		if err := Migrate(ctx, pool, s.Component, s.Migrations); err != nil {
			return err
		}
	}
	return nil
}

// WriteMigrations writes every schema's migrations, in the order
// MigrateSchemas applies them, each under a comment naming its component and
// file. This is the whole PostgreSQL dialect. It is for review and for
// checking with other tools: applied by hand it would not record the
// migrations in livecell_migrations, so apply with MigrateSchemas (livecell
// migrate) instead.
func WriteMigrations(w io.Writer, schemas []Schema) error {
	if err := ValidateSchemas(schemas); err != nil {
		return err
	}
	for _, s := range schemas {
		ms, err := readMigrations(s.Migrations)
		if err != nil {
			return fmt.Errorf("db.WriteMigrations %s: %w", s.Component, err)
		}
		for _, m := range ms {
			body := strings.TrimRight(m.sql, "\n")
			if _, err := fmt.Fprintf(w, "-- %s/%s\n%s\n\n", s.Component, m.name, body); err != nil {
				return fmt.Errorf("db.WriteMigrations: %w", err)
			}
		}
	}
	return nil
}
