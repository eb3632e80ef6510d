package pgstore

import (
	"io/fs"
	"testing"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/storetest"
	"github.com/livecell/livecell/internal/db/dbtest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s := New(dbtest.Pool(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate = %v, want nil", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) accounts.Store { return newStore(t) })
}

func TestMigrateTwice(t *testing.T) {
	s := newStore(t)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate = %v, want nil (migrations are idempotent)", err)
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM livecell_migrations WHERE component = $1`, component).Scan(&n); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil || len(files) < 3 {
		t.Fatalf("embedded migrations = %v, %v; want at least 0001..0003", files, err)
	}
	if n != len(files) {
		t.Errorf("livecell_migrations has %d accounts rows, want %d (one per file)", n, len(files))
	}
}

func TestZeroCreatedAtUsesDatabaseClock(t *testing.T) {
	s := newStore(t)
	p := accounts.Player{ID: "id-1", Username: "alice", PasswordHash: "h", HomeCell: "eu-west"}
	if err := s.CreatePlayer(t.Context(), p); err != nil {
		t.Fatalf("CreatePlayer = %v, want nil", err)
	}
	got, err := s.PlayerByID(t.Context(), "id-1")
	if err != nil {
		t.Fatalf("PlayerByID = %v, want nil", err)
	}
	if got.CreatedAt.IsZero() || got.CreatedAt.Year() < 2024 {
		t.Errorf("CreatedAt = %v, want the database's now()", got.CreatedAt)
	}
}
