package db

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/apierr"
)

// Rehome moves playerID to newCell: in one transaction it rewrites the home
// column of every row of the player in every table of schemas that declares
// a PlayerColumn, the REGIONAL BY ROW tables and the directory alike.
//
// On CockroachDB the region column of a REGIONAL BY ROW table is computed
// from its home column (see internal/db/crdb), so rewriting the home cell is
// what moves the rows to the new cell's region; the directory (GLOBAL) row
// changes in the same transaction, so no reader ever sees the directory
// point at a cell whose region does not hold the player's rows yet, nor the
// other way round. On PostgreSQL the same statements only rewrite the column.
//
// A player with no row in any table is apierr.UnknownPlayer and nothing is
// written. Any failure rolls the whole move back; serialization failures
// are retried by RunTx. Validating newCell against cells.yaml is the
// caller's job: this layer does not know the cells.
func Rehome(ctx context.Context, pool *pgxpool.Pool, schemas []Schema, playerID, newCell string) error {
	const op = "db.Rehome"
	if !storableID(playerID) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid player id", nil)
	}
	if !storableID(newCell) {
		return apierr.Wrap(op, apierr.BadRequest, "invalid cell id", nil)
	}
	if err := ValidateSchemas(schemas); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var stmts []rehomeStmt
	for _, s := range schemas {
		for _, t := range s.Tables {
			if t.Rehomed() {
				stmts = append(stmts, rehomeStmt{table: t.Name, sql: rehomeSQL(t)})
			}
		}
	}
	if len(stmts) == 0 {
		return fmt.Errorf("%s: no table declares a PlayerColumn", op)
	}
	return RunTx(ctx, pool, func(ctx context.Context, tx pgx.Tx) error {
		var moved int64
		for _, st := range stmts {
			tag, err := tx.Exec(ctx, st.sql, playerID, newCell)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", op, st.table, err)
			}
			moved += tag.RowsAffected()
		}
		if moved == 0 {
			// Returning an error rolls back, though nothing was written.
			return apierr.Wrap(op, apierr.UnknownPlayer, "unknown player", nil)
		}
		return nil
	})
}

type rehomeStmt struct{ table, sql string }

// rehomeSQL updates every row of $1 in t to home cell $2. Rows already in
// $2 are rewritten too: they count towards "the player exists", and the
// write is a no-op move.
func rehomeSQL(t Table) string {
	set := pgx.Identifier{t.HomeColumn}.Sanitize() + " = $2"
	if t.UpdatedColumn != "" {
		set += ", " + pgx.Identifier{t.UpdatedColumn}.Sanitize() + " = now()"
	}
	return "UPDATE " + pgx.Identifier{t.Name}.Sanitize() + " SET " + set +
		" WHERE " + pgx.Identifier{t.PlayerColumn}.Sanitize() + " = $1"
}

// storableID rejects what a TEXT column cannot hold (NUL, invalid UTF-8) so
// the database never sees it, and the empty id.
func storableID(id string) bool {
	if id == "" || !utf8.ValidString(id) {
		return false
	}
	for i := range len(id) {
		if id[i] == 0 {
			return false
		}
	}
	return true
}
