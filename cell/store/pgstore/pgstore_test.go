package pgstore

import (
	"testing"

	"github.com/livecell/livecell/cell/store"
	"github.com/livecell/livecell/cell/store/storetest"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/pgoutbox"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, events.Outbox) {
		pool := dbtest.Pool(t)
		s := New(pool)
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s, pgoutbox.New(pool, "eu-west")
	})
}

func TestSchemaDeclaresEveryTable(t *testing.T) {
	if err := Schema().CheckMigrations(); err != nil {
		t.Fatal(err)
	}
}
