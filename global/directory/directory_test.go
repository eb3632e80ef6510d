package directory_test

import (
	"context"
	"testing"
	"time"

	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/global/directory/directorytest"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db/dbtest"
)

var (
	_ directorytest.Store = (*directory.Memory)(nil)
	_ directorytest.Store = (*directory.Postgres)(nil)
)

func TestMemory(t *testing.T) {
	directorytest.Run(t, func(*testing.T) directorytest.Store { return directory.NewMemory() })
}

func newPostgres(t *testing.T) *directory.Postgres {
	t.Helper()
	d := directory.NewPostgres(dbtest.Pool(t))
	if err := d.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return d
}

func TestPostgres(t *testing.T) {
	dbtest.URL(t) // skip (or fail in CI) once, not per subtest
	directorytest.Run(t, func(t *testing.T) directorytest.Store { return newPostgres(t) })
}

func TestPostgresMigrateIsIdempotent(t *testing.T) {
	d := newPostgres(t)
	ctx := t.Context()
	if err := d.SetHome(ctx, "p1", "eu-west"); err != nil {
		t.Fatal(err)
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	got, err := d.Home(ctx, "p1")
	if err != nil || got != "eu-west" {
		t.Errorf("Home(p1) after re-migrating = %q, %v; want eu-west, nil", got, err)
	}
}

func TestPostgresRehomeBumpsUpdatedAt(t *testing.T) {
	pool := dbtest.Pool(t)
	d := directory.NewPostgres(pool)
	ctx := t.Context()
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	updatedAt := func() time.Time {
		t.Helper()
		var at time.Time
		if err := pool.QueryRow(ctx, "SELECT updated_at FROM player_homes WHERE player_id = 'p1'").Scan(&at); err != nil {
			t.Fatalf("read updated_at: %v", err)
		}
		return at
	}
	if err := d.SetHome(ctx, "p1", "eu-west"); err != nil {
		t.Fatal(err)
	}
	first := updatedAt()
	// Backdate instead of sleeping, so the comparison cannot depend on
	// clock resolution.
	if _, err := pool.Exec(ctx, "UPDATE player_homes SET updated_at = updated_at - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	if err := d.SetHome(ctx, "p1", "us-east"); err != nil {
		t.Fatal(err)
	}
	if second := updatedAt(); !second.After(first.Add(-time.Hour)) {
		t.Errorf("updated_at after rehome = %v, want later than the backdated %v", second, first.Add(-time.Hour))
	}
}

func TestPostgresUnavailable(t *testing.T) {
	d := newPostgres(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// A failing database is Unavailable (retryable), never UnknownPlayer:
	// the router must not place an existing player anew because of it.
	_, homeErr := d.Home(ctx, "p1")
	_, countErr := d.CountByCell(ctx)
	setErr := d.SetHome(ctx, "p1", "c1")
	for name, err := range map[string]error{"Home": homeErr, "CountByCell": countErr, "SetHome": setErr} {
		if code := apierr.CodeOf(err); code != apierr.Unavailable {
			t.Errorf("%s with a cancelled context: code %q (err %v), want %q", name, code, err, apierr.Unavailable)
		}
	}
}
