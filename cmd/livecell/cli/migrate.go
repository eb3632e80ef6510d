package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/cell/accounts/pgstore"
	catalogpg "github.com/livecell/livecell/cell/catalog/pgstore"
	inventorypg "github.com/livecell/livecell/cell/inventory/pgstore"
	storepg "github.com/livecell/livecell/cell/store/pgstore"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/crdb"
	"github.com/livecell/livecell/internal/events/pgoutbox"
)

// schemas lists every component's SQL schema, in the order their migrations
// apply. This composition root is the one place that knows them all; a new
// component with tables adds one line here.
func schemas() []db.Schema {
	return []db.Schema{
		pgstore.Schema(),
		directory.Schema(),
		catalogpg.Schema(),
		inventorypg.Schema(),
		storepg.Schema(),
		pgoutbox.Schema(),
	}
}

// SQL dialects livecell generates.
const (
	dialectPostgres  = "postgres"
	dialectCockroach = "cockroach"
)

type migrateFlags struct {
	dialect       string
	print         bool
	database      string
	dbName        string
	primaryRegion string
	survive       string
}

func newMigrateCmd(g *globals) *cobra.Command {
	f := &migrateFlags{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply or print the database schema (PostgreSQL, or CockroachDB with its multi-region overlay)",
		Long: `Migrate applies every component's migrations to --database, or prints the SQL
with --print (without connecting).

--dialect postgres (the default) is the migrations alone: the schema used
locally and in CI. --dialect cockroach adds the overlay generated from
cells.yaml: the database's regions (one per distinct db_region), its survival
goal, and each table's locality (GLOBAL, or REGIONAL BY ROW on a region column
computed from the player's home cell). Every statement is idempotent: run it
again after every change to cells.yaml.

The primary region is the db_region of the first active cell unless
--primary-region names another; pin it once the deployment has more than one
cell, so that draining the first cell does not move it.`,
		Example: `  livecell migrate --dialect cockroach --print > schema.sql
  livecell migrate --database postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
  livecell migrate --dialect cockroach --database "postgresql://root@crdb:26257/livecell?sslmode=verify-full" --primary-region us-east1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dialect, "dialect", dialectPostgres, "SQL dialect: postgres or cockroach")
	fl.BoolVar(&f.print, "print", false, "print the SQL instead of applying it; does not connect")
	fl.StringVar(&f.database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL to migrate (env LIVECELL_DATABASE_URL)")
	fl.StringVar(&f.dbName, "db-name", "", "cockroach: database the overlay configures (default: the one --database connects to, or "+crdb.DefaultDatabase+" with --print)")
	fl.StringVar(&f.primaryRegion, "primary-region", "", "cockroach: primary region (default: db_region of the first active cell)")
	fl.StringVar(&f.survive, "survive", "zone", "cockroach: survival goal, zone or region (region needs 3 or more regions)")
	return cmd
}

func runMigrate(ctx context.Context, g *globals, f *migrateFlags) error {
	if f.dialect != dialectPostgres && f.dialect != dialectCockroach {
		return fmt.Errorf("--dialect %q: want %s or %s", f.dialect, dialectPostgres, dialectCockroach)
	}
	if f.survive != "zone" && f.survive != "region" {
		return fmt.Errorf("--survive %q: want zone or region", f.survive)
	}
	if f.dialect == dialectPostgres && (f.dbName != "" || f.primaryRegion != "" || f.survive != "zone") {
		return errors.New("--db-name, --primary-region and --survive apply to --dialect cockroach only")
	}
	if f.print == (f.database != "") {
		return errors.New("give exactly one of --print and --database")
	}
	all := schemas()

	if f.print {
		if f.dialect == dialectPostgres {
			return db.WriteMigrations(g.stdout, all)
		}
		o, err := overlay(g, f, f.dbName)
		if err != nil {
			return err
		}
		return o.WriteScript(g.stdout, all)
	}

	pool, err := db.Open(ctx, f.database)
	if err != nil {
		return err
	}
	defer pool.Close()
	target := hostOf(pool)
	if f.dialect == dialectPostgres {
		if err := db.MigrateSchemas(ctx, pool, all); err != nil {
			return err
		}
	} else {
		name := f.dbName
		if name == "" {
			if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
				return fmt.Errorf("current database: %w", err)
			}
		}
		o, err := overlay(g, f, name)
		if err != nil {
			return err
		}
		if err := o.Apply(ctx, pool, all); err != nil {
			return err
		}
	}
	components := make([]string, len(all))
	for i, s := range all {
		components[i] = s.Component
	}
	fmt.Fprintf(g.stdout, "migrated %s (%s dialect): %s\n", target, f.dialect, strings.Join(components, ", "))
	return nil
}

func overlay(g *globals, f *migrateFlags, dbName string) (*crdb.Overlay, error) {
	cells, err := g.cells()
	if err != nil {
		return nil, err
	}
	return crdb.New(cells, schemas(), crdb.Options{
		Database:             dbName,
		PrimaryRegion:        f.primaryRegion,
		SurviveRegionFailure: f.survive == "region",
	})
}
