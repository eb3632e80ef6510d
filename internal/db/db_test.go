package db_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
)

func TestParseConfigDefaults(t *testing.T) {
	const base = "postgres://u@127.0.0.1:5432/game?sslmode=disable"
	tests := []struct {
		name         string
		url          string
		wantMaxConns int32
		wantHealth   time.Duration
		wantLifetime time.Duration
	}{
		{"defaults", base, int32(4 * runtime.GOMAXPROCS(0)), 15 * time.Second, 30 * time.Minute},
		{"explicit settings win", base + "&pool_max_conns=3&pool_health_check_period=1m&pool_max_conn_lifetime=2h", 3, time.Minute, 2 * time.Hour},
		{"key=value form", "host=127.0.0.1 user=u pool_max_conns=5", 5, 15 * time.Second, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := db.ParseConfig(tt.url)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if cfg.MaxConns != tt.wantMaxConns {
				t.Errorf("MaxConns = %d, want %d", cfg.MaxConns, tt.wantMaxConns)
			}
			if cfg.HealthCheckPeriod != tt.wantHealth {
				t.Errorf("HealthCheckPeriod = %v, want %v", cfg.HealthCheckPeriod, tt.wantHealth)
			}
			if cfg.MaxConnLifetime != tt.wantLifetime {
				t.Errorf("MaxConnLifetime = %v, want %v", cfg.MaxConnLifetime, tt.wantLifetime)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		url  string
	}{
		{"unparsable", "postgres://u@127.0.0.1:notaport/db"},
		{"nothing listening", "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := db.Open(ctx, tt.url)
			if err == nil {
				pool.Close()
				t.Fatal("Open: got nil error, want one")
			}
			if !strings.HasPrefix(err.Error(), "db.Open: ") {
				t.Errorf("got error %q, want it to start with db.Open", err)
			}
		})
	}
}

func TestOpenPings(t *testing.T) {
	pool, err := db.Open(t.Context(), dbtest.URL(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer pool.Close()
	var one int
	if err := pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1 = %d, %v; want 1, nil", one, err)
	}
}
