package db

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SQLSTATE codes the helpers below recognise.
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeUniqueViolation      = "23505"
)

// Retry schedule for RunTx.
const (
	defaultMaxAttempts = 10
	backoffBase        = 5 * time.Millisecond
	backoffCap         = time.Second
)

type txConfig struct {
	maxAttempts int
	opts        pgx.TxOptions
}

// TxOption adjusts one RunTx call.
type TxOption func(*txConfig)

// WithMaxAttempts bounds how many times RunTx starts the transaction
// (default 10). Values below 1 mean 1.
func WithMaxAttempts(n int) TxOption {
	return func(c *txConfig) { c.maxAttempts = max(n, 1) }
}

// WithIsoLevel sets the isolation level (default SERIALIZABLE). CockroachDB
// runs weaker levels as SERIALIZABLE unless read committed is enabled on the
// cluster, so code must be correct at SERIALIZABLE either way.
func WithIsoLevel(l pgx.TxIsoLevel) TxOption {
	return func(c *txConfig) { c.opts.IsoLevel = l }
}

// RunTx runs fn in a transaction and commits it. When any step fails with a
// serialization failure (40001) or a deadlock (40P01), the transaction is
// rolled back and the whole of it, fn included, runs again after a jittered
// exponential backoff (5 ms doubling to 1 s).
//
// Whole-transaction retry is deliberate: CockroachDB's savepoint-based
// cockroach_restart protocol does not recover on PostgreSQL, where the retried
// savepoint sees the same snapshot and fails again. fn must therefore have no
// side effects outside tx (no publishing, no pushes, no HTTP calls); use the
// outbox for those.
//
// An error returned by fn is returned as is when it is not retryable, so
// callers can match it with errors.Is / errors.As; errors from BEGIN and COMMIT
// are wrapped. When attempts run out the last error is wrapped with the
// attempt count.
func RunTx(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context, tx pgx.Tx) error, opts ...TxOption) error {
	cfg := txConfig{maxAttempts: defaultMaxAttempts, opts: pgx.TxOptions{IsoLevel: pgx.Serializable}}
	for _, o := range opts {
		o(&cfg)
	}
	for attempt := 1; ; attempt++ {
		err := runOnce(ctx, pool, cfg.opts, fn)
		if err == nil || !IsRetryable(err) {
			return err
		}
		if attempt >= cfg.maxAttempts {
			return fmt.Errorf("db.RunTx: giving up after %d attempts: %w", attempt, err)
		}
		if werr := sleep(ctx, backoff(attempt)); werr != nil {
			return fmt.Errorf("db.RunTx: %w (after %d attempts, last error: %w)", werr, attempt, err)
		}
	}
}

func runOnce(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(context.Context, pgx.Tx) error) error {
	tx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("db.RunTx: begin: %w", err)
	}
	// Also covers a panic in fn; after a successful Commit this is a no-op.
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("db.RunTx: commit: %w", err)
	}
	return nil
}

// backoff returns the pause before attempt+1: exponential with equal jitter,
// so competing transactions spread out instead of colliding again in step.
func backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 20 { // 5ms<<20 is already far past the cap
		d = min(backoffBase<<(attempt-1), backoffCap)
	}
	half := d / 2
	return half + rand.N(half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsRetryable reports whether err (anywhere in its chain) is a PostgreSQL or
// CockroachDB error that a fresh attempt of the same transaction may not hit:
// serialization failure (40001, CockroachDB's "restart transaction") or
// deadlock (40P01).
func IsRetryable(err error) bool {
	code := sqlState(err)
	return code == codeSerializationFailure || code == codeDeadlockDetected
}

// IsUniqueViolation reports whether err is a unique constraint violation
// (23505), the usual signal for "already exists" on insert.
func IsUniqueViolation(err error) bool {
	return sqlState(err) == codeUniqueViolation
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
