package pgstore

import (
	"testing"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalog/storetest"
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
	storetest.Run(t, func(t *testing.T) catalog.Store { return newStore(t) })
}

func TestSchemaDeclaresEveryTable(t *testing.T) {
	if err := Schema().CheckMigrations(); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateTwice(t *testing.T) {
	s := newStore(t)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate = %v, want nil", err)
	}
	if v, err := s.Version(t.Context()); err != nil || v != 0 {
		t.Fatalf("Version after two migrations = %d, %v; want 0 (the seed row is inserted once)", v, err)
	}
}
