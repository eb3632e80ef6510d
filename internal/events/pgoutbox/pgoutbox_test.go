package pgoutbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/eventstest"
)

func TestContract(t *testing.T) {
	eventstest.RunOutbox(t, func(t *testing.T) (events.Outbox, func(...events.Event)) {
		pool := dbtest.Pool(t)
		if err := Migrate(t.Context(), pool); err != nil {
			t.Fatal(err)
		}
		add := func(evs ...events.Event) {
			t.Helper()
			if err := db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error { return Insert(ctx, tx, evs...) }); err != nil {
				t.Fatalf("Insert: %v", err)
			}
		}
		return New(pool, "eu-west"), add
	})
}

func TestSchemaDeclaresEveryTable(t *testing.T) {
	if err := Schema().CheckMigrations(); err != nil {
		t.Fatal(err)
	}
}

// A rolled-back transaction leaves no event behind: the outbox never
// announces a change that did not happen.
func TestInsertRollsBackWithItsTransaction(t *testing.T) {
	pool := dbtest.Pool(t)
	if err := Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("the state change failed")
	err := db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error {
		if err := Insert(ctx, tx, eventstest.Event(1)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("RunTx = %v, want %v", err, boom)
	}
	if n, err := New(pool, "eu-west").Pending(t.Context()); err != nil || n != 0 {
		t.Fatalf("Pending after rollback = %d, %v; want 0", n, err)
	}
	bad := eventstest.Event(2)
	bad.Type = "Not A Type"
	err = db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error { return Insert(ctx, tx, bad) })
	if err == nil {
		t.Fatal("Insert of an invalid event = nil, want an error")
	}
}

// Each cell's relay sees only its own players' events.
func TestOutboxIsPerCell(t *testing.T) {
	pool := dbtest.Pool(t)
	if err := Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	eu, us := eventstest.Event(1), eventstest.Event(2)
	us.HomeCell = "us-east"
	if err := db.RunTx(t.Context(), pool, func(ctx context.Context, tx pgx.Tx) error { return Insert(ctx, tx, eu, us) }); err != nil {
		t.Fatal(err)
	}
	got, err := New(pool, "us-east").Claim(t.Context(), 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != us.ID {
		t.Fatalf("us-east claimed %v, %v; want only its own event", got, err)
	}
}
