// Package db opens connection pools, applies schema migrations and runs
// transactions for every livecell component that keeps state in SQL.
//
// Production runs on CockroachDB; developers and CI run PostgreSQL 15. Both
// go through the same code path here: pgx v5 speaking the PostgreSQL wire
// protocol, SERIALIZABLE transactions by default (CockroachDB's only strong
// level), and whole-transaction retries on serialization failures. There is
// no CockroachDB binary on the development machines, so PostgreSQL stands in
// for it in tests; the retry and migration logic is written for both (see
// RunTx and Migrate for where they differ).
package db

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool defaults, applied only when the connection string does not set them.
const (
	// HealthCheckPeriod is shorter than pgxpool's minute so that connections
	// to a CockroachDB node that was drained are noticed quickly.
	defaultHealthCheckPeriod = 15 * time.Second
	// CockroachDB rebalances connections only when clients reconnect, so a
	// bounded lifetime spreads load onto nodes added after start-up.
	defaultMaxConnLifetime       = 30 * time.Minute
	defaultMaxConnLifetimeJitter = 5 * time.Minute
)

// ParseConfig parses a PostgreSQL connection string (URL or key=value) and
// fills in livecell's pool defaults for anything the string leaves unset:
// MaxConns 4×GOMAXPROCS, a 15 s health check and a 30 min connection
// lifetime with jitter.
func ParseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db.ParseConfig: %w", err)
	}
	// pgxpool removes its pool_* keys while parsing, so look at them in a
	// plain connection config to learn what the operator set explicitly.
	raw, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db.ParseConfig: %w", err)
	}
	set := func(key string) bool { _, ok := raw.RuntimeParams[key]; return ok }
	if !set("pool_max_conns") {
		cfg.MaxConns = int32(4 * runtime.GOMAXPROCS(0))
	}
	if !set("pool_health_check_period") {
		cfg.HealthCheckPeriod = defaultHealthCheckPeriod
	}
	if !set("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = defaultMaxConnLifetime
	}
	if !set("pool_max_conn_lifetime_jitter") {
		cfg.MaxConnLifetimeJitter = defaultMaxConnLifetimeJitter
	}
	return cfg, nil
}

// Open parses url with ParseConfig and returns a pool that has answered a
// ping, so a wrong address or credential fails at start-up rather than on the
// first player request.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db.Open: %w", err)
	}
	return OpenConfig(ctx, cfg)
}

// OpenConfig is Open for a config the caller has adjusted (for example a
// search_path in tests).
func OpenConfig(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db.Open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db.Open: ping %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}
