package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// barrierTimeout only keeps a broken test from hanging; it is not a
// performance assertion.
const barrierTimeout = 30 * time.Second

func exec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// wait blocks until ch is closed; a retried attempt never waits, so only the
// first attempts of the two transactions are lined up.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(barrierTimeout):
		return errors.New("barrier timed out")
	}
}

// TestRunTxRetriesRealSerializationFailure forces write skew: two doctors
// are on call, each transaction goes off call only if both still are. Both
// read before either writes, so SERIALIZABLE must abort one with 40001; the
// retry then sees the other's commit and stays on call.
func TestRunTxRetriesRealSerializationFailure(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	exec(t, pool, "CREATE TABLE doctors (name TEXT PRIMARY KEY, on_call BOOL NOT NULL)")
	exec(t, pool, "INSERT INTO doctors VALUES ('alice', true), ('bob', true)")

	names := []string{"alice", "bob"}
	read := map[string]chan struct{}{"alice": make(chan struct{}), "bob": make(chan struct{})}
	var attempts [2]atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range names {
		other := names[1-i]
		wg.Go(func() {
			errs[i] = db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
				n := attempts[i].Add(1)
				var onCall int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM doctors WHERE on_call").Scan(&onCall); err != nil {
					return err
				}
				if n == 1 {
					close(read[name])
					if err := wait(ctx, read[other]); err != nil {
						return err
					}
				}
				if onCall < 2 {
					return nil
				}
				_, err := tx.Exec(ctx, "UPDATE doctors SET on_call = false WHERE name = $1", name)
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RunTx for %s: %v", names[i], err)
		}
	}
	total := attempts[0].Load() + attempts[1].Load()
	if total < 3 {
		t.Errorf("got %d + %d attempts, want one transaction to run at least twice", attempts[0].Load(), attempts[1].Load())
	}
	var onCall int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM doctors WHERE on_call").Scan(&onCall); err != nil {
		t.Fatalf("count: %v", err)
	}
	if onCall != 1 {
		t.Errorf("got %d doctors on call, want 1 (write skew slipped through)", onCall)
	}
}

// TestRunTxRetriesRealDeadlock locks two rows in opposite orders; PostgreSQL
// aborts one transaction with 40P01 and RunTx runs it again.
func TestRunTxRetriesRealDeadlock(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	exec(t, pool, "CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
	exec(t, pool, "INSERT INTO counters VALUES (1, 0), (2, 0)")

	locked := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var attempts [2]atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		first, second := i+1, 2-i
		wg.Go(func() {
			errs[i] = db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
				n := attempts[i].Add(1)
				if _, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", first); err != nil {
					return err
				}
				if n == 1 {
					close(locked[i])
					if err := wait(ctx, locked[1-i]); err != nil {
						return err
					}
				}
				_, err := tx.Exec(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", second)
				return err
			}, db.WithIsoLevel(pgx.ReadCommitted))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RunTx %d: %v", i, err)
		}
	}
	if total := attempts[0].Load() + attempts[1].Load(); total < 3 {
		t.Errorf("got %d + %d attempts, want the deadlock victim to run again", attempts[0].Load(), attempts[1].Load())
	}
	var sum int
	if err := pool.QueryRow(t.Context(), "SELECT sum(n) FROM counters").Scan(&sum); err != nil {
		t.Fatalf("sum: %v", err)
	}
	if sum != 4 {
		t.Errorf("got counter sum %d, want 4 (each transaction's two updates exactly once)", sum)
	}
}

func TestRunTxNonRetryableErrorReturnedAfterOneAttempt(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	exec(t, pool, "CREATE TABLE names (name TEXT PRIMARY KEY)")
	exec(t, pool, "INSERT INTO names VALUES ('taken')")

	sentinel := errors.New("boom")
	tests := []struct {
		name  string
		fn    func(ctx context.Context, tx pgx.Tx) error
		check func(error) bool
	}{
		{"plain error", func(context.Context, pgx.Tx) error { return sentinel },
			func(err error) bool { return errors.Is(err, sentinel) }},
		{"apierr keeps its code", func(context.Context, pgx.Tx) error { return apierr.New(apierr.Conflict, "name taken") },
			func(err error) bool { return apierr.CodeOf(err) == apierr.Conflict }},
		{"unique violation", func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO names VALUES ('taken')")
			return err
		}, db.IsUniqueViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			err := db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
				attempts++
				return tt.fn(ctx, tx)
			})
			if !tt.check(err) {
				t.Errorf("got error %v, want the fn's error back", err)
			}
			if attempts != 1 {
				t.Errorf("got %d attempts, want 1", attempts)
			}
		})
	}
}

func TestRunTxGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	attempts := 0
	err := db.RunTx(t.Context(), pool, func(context.Context, pgx.Tx) error {
		attempts++
		return &pgconn.PgError{Code: "40001", Message: "synthetic"}
	}, db.WithMaxAttempts(3))
	if attempts != 3 {
		t.Errorf("got %d attempts, want 3", attempts)
	}
	if !db.IsRetryable(err) || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Errorf("got error %v, want the wrapped 40001 after 3 attempts", err)
	}
}

func TestRunTxContextCancellationStopsRetrying(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	attempts := 0
	err := db.RunTx(ctx, pool, func(context.Context, pgx.Tx) error {
		attempts++
		cancel()
		return &pgconn.PgError{Code: "40001", Message: "synthetic"}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
	if attempts != 1 {
		t.Errorf("got %d attempts, want 1", attempts)
	}
}

func TestRunTxCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	exec(t, pool, "CREATE TABLE events (id INT PRIMARY KEY)")

	insert := func(id int, fail error) error {
		return db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO events VALUES ($1)", id); err != nil {
				return err
			}
			return fail
		})
	}
	if err := insert(1, nil); err != nil {
		t.Fatalf("insert 1: %v", err)
	}
	if err := insert(2, errors.New("abort")); err == nil {
		t.Fatal("insert 2: got nil error, want abort")
	}
	var ids []int
	rows, _ := pool.Query(t.Context(), "SELECT id FROM events ORDER BY id")
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if len(ids) != 1 || ids[0] != 1 {
		t.Errorf("got ids %v, want [1]", ids)
	}
}

func TestRunTxIsolationLevel(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	tests := []struct {
		name string
		opts []db.TxOption
		want string
	}{
		{"default", nil, "serializable"},
		{"read committed", []db.TxOption{db.WithIsoLevel(pgx.ReadCommitted)}, "read committed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			err := db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
				return tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&got)
			}, tt.opts...)
			if err != nil {
				t.Fatalf("RunTx: %v", err)
			}
			if got != tt.want {
				t.Errorf("got isolation %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorClassifiers(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code} }
	tests := []struct {
		name          string
		err           error
		wantRetryable bool
		wantUnique    bool
	}{
		{"nil", nil, false, false},
		{"plain", errors.New("x"), false, false},
		{"serialization failure", pg("40001"), true, false},
		{"wrapped serialization failure", fmt.Errorf("op: %w", pg("40001")), true, false},
		{"deadlock", pg("40P01"), true, false},
		{"unique violation", fmt.Errorf("insert: %w", pg("23505")), false, true},
		{"foreign key violation", pg("23503"), false, false},
		{"ambiguous commit is not safe to retry", pg("40003"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := db.IsRetryable(tt.err); got != tt.wantRetryable {
				t.Errorf("IsRetryable = %v, want %v", got, tt.wantRetryable)
			}
			if got := db.IsUniqueViolation(tt.err); got != tt.wantUnique {
				t.Errorf("IsUniqueViolation = %v, want %v", got, tt.wantUnique)
			}
		})
	}
}
