package pgstore

import (
	"testing"

	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventory/storetest"
	"github.com/livecell/livecell/internal/db/dbtest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s := New(dbtest.Pool(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate = %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) inventory.Store { return newStore(t) })
}

func TestSchemaDeclaresEveryTable(t *testing.T) {
	if err := Schema().CheckMigrations(); err != nil {
		t.Fatal(err)
	}
}
