package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/db/dbtest"
)

// The sign-in statement commits asynchronously through a transaction-local
// setting: the connection it ran on must be back to synchronous commits
// afterwards, for whatever statement runs on it next.
func TestSignInAsyncCommitStaysLocal(t *testing.T) {
	ctx := t.Context()
	cfg := dbtest.Pool(t).Config()
	cfg.MaxConns = 1 // every statement below runs on the same connection
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := New(pool)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := accounts.Player{ID: "id-1", Username: "steam#one", HomeCell: "eu-west", CreatedAt: now}
	if err := s.CreatePlayerWithIdentity(ctx, p, accounts.Identity{Provider: "steam", Subject: "s-1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	syncCommit := func(what string) {
		t.Helper()
		var v string
		if err := pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Errorf("after %s: synchronous_commit = %q, want on (the sign-in's setting must not outlive it)", what, v)
		}
	}
	syncCommit("set-up")
	rt := accounts.RefreshToken{Hash: "h1", FamilyID: "f1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := s.SignInByIdentity(ctx, "steam", "s-1", rt); err != nil {
		t.Fatalf("SignInByIdentity = %v", err)
	}
	syncCommit("a sign-in")
	rt.Hash = "h2"
	if _, err := s.SignInByIdentity(ctx, "steam", "s-unknown", rt); err == nil {
		t.Fatal("SignInByIdentity(unknown identity) = nil error")
	}
	syncCommit("a sign-in without a player")
	rt.Hash = "h1"
	if _, err := s.SignInByIdentity(context.WithoutCancel(ctx), "steam", "s-1", rt); err == nil {
		t.Fatal("SignInByIdentity(taken hash) = nil error")
	}
	syncCommit("a failed sign-in")
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE player_id = 'id-1'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("refresh tokens stored = %d, %v; want 1", n, err)
	}
}

// countingTracer counts the statements a pool sends.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (*countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Concurrent sign-ins share statements, and each caller still gets its own
// answer: its player, not_found for an unknown identity, conflict for a
// token hash that exists (which must not fail the others of its batch).
func TestSignInBatches(t *testing.T) {
	ctx := t.Context()
	cfg := dbtest.Pool(t).Config()
	cfg.MaxConns = 2 // both sign-in statements wait for connections: the rest queue and batch
	tracer := &countingTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := New(pool)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	const players = 20
	for i := range players {
		p := accounts.Player{ID: fmt.Sprintf("id-%d", i), Username: fmt.Sprintf("steam#%d", i), HomeCell: "eu-west", CreatedAt: now}
		if err := s.CreatePlayerWithIdentity(ctx, p, accounts.Identity{Provider: "steam", Subject: fmt.Sprintf("s-%d", i), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	taken := accounts.RefreshToken{Hash: "taken", FamilyID: "f", PlayerID: "id-0", HomeCell: "eu-west", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateRefreshToken(ctx, taken); err != nil {
		t.Fatal(err)
	}

	const n = 200
	type result struct {
		p   accounts.Player
		err error
	}
	results := make([]result, n)
	before := tracer.n.Load()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			subject, hash := fmt.Sprintf("s-%d", i%(players+5)), fmt.Sprintf("h-%d", i) // s-20..s-24 have no player
			if i == 77 {
				hash = "taken"
			}
			rt := accounts.RefreshToken{Hash: hash, FamilyID: fmt.Sprintf("f-%d", i), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
			p, err := s.SignInByIdentity(ctx, "steam", subject, rt)
			results[i] = result{p, err}
		})
	}
	wg.Wait()
	statements := tracer.n.Load() - before

	stored := 0
	for i, r := range results {
		k := i % (players + 5)
		switch {
		case i == 77:
			if apierr.CodeOf(r.err) != apierr.Conflict {
				t.Errorf("sign-in #%d with a taken token hash = %v, want conflict", i, r.err)
			}
		case k >= players:
			if apierr.CodeOf(r.err) != apierr.NotFound {
				t.Errorf("sign-in #%d of an unknown identity = %+v, %v; want not_found", i, r.p, r.err)
			}
		case r.err != nil || r.p.ID != fmt.Sprintf("id-%d", k):
			t.Errorf("sign-in #%d = %+v, %v; want player id-%d", i, r.p, r.err, k)
		default:
			stored++
			var owner string
			if err := pool.QueryRow(ctx, `SELECT player_id FROM refresh_tokens WHERE token_hash = $1`, fmt.Sprintf("h-%d", i)).Scan(&owner); err != nil || owner != r.p.ID {
				t.Errorf("token of sign-in #%d: owner %q, %v; want %s", i, owner, err, r.p.ID)
			}
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens`).Scan(&rows); err != nil || rows != stored+1 {
		t.Errorf("refresh tokens stored = %d, %v; want %d (one per successful sign-in, plus the taken one)", rows, err, stored+1)
	}
	if statements >= n {
		t.Errorf("%d sign-ins sent %d statements, want fewer (batched)", n, statements)
	}
	t.Logf("%d sign-ins, %d statements", n, statements)
}

// A caller that gives up gets its context's error at once; the batcher
// goes on serving the others.
func TestSignInAbandoned(t *testing.T) {
	s := New(dbtest.Pool(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	now := time.Now()
	rt := accounts.RefreshToken{Hash: "h", FamilyID: "f", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := s.SignInByIdentity(ctx, "steam", "s", rt); !errors.Is(err, context.Canceled) {
		t.Errorf("SignInByIdentity(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := s.SignInByIdentity(t.Context(), "steam", "s", rt); apierr.CodeOf(err) != apierr.NotFound {
		t.Errorf("SignInByIdentity after an abandoned one = %v, want not_found", err)
	}
}

// Concurrent first-login creations share statements, and each caller gets
// its own answer: a creation whose username or identity is taken gets
// conflict and stores nothing, and does not fail the others of its batch.
func TestCreateBatches(t *testing.T) {
	ctx := t.Context()
	cfg := dbtest.Pool(t).Config()
	cfg.MaxConns = 2
	tracer := &countingTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := New(pool)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreatePlayerWithIdentity(ctx, accounts.Player{ID: "old", Username: "taken", HomeCell: "eu-west", CreatedAt: now},
		accounts.Identity{Provider: "steam", Subject: "linked", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	const n = 120
	errs := make([]error, n)
	before := tracer.n.Load()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := accounts.Player{ID: fmt.Sprintf("p-%d", i), Username: fmt.Sprintf("u-%d", i), HomeCell: "eu-west", CreatedAt: now}
			id := accounts.Identity{Provider: "steam", Subject: fmt.Sprintf("s-%d", i), CreatedAt: now}
			switch i {
			case 13:
				p.Username = "taken"
			case 42:
				id.Subject = "linked"
			}
			rt := accounts.RefreshToken{Hash: fmt.Sprintf("h-%d", i), FamilyID: fmt.Sprintf("f-%d", i), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
			errs[i] = s.CreatePlayerWithIdentityAndToken(ctx, p, id, rt)
		})
	}
	wg.Wait()
	statements := tracer.n.Load() - before

	for i, err := range errs {
		var players, identities, tokens int
		if qerr := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM players WHERE id = $1), (SELECT count(*) FROM identities WHERE player_id = $1), (SELECT count(*) FROM refresh_tokens WHERE player_id = $1)`,
			fmt.Sprintf("p-%d", i)).Scan(&players, &identities, &tokens); qerr != nil {
			t.Fatal(qerr)
		}
		if i == 13 || i == 42 {
			if apierr.CodeOf(err) != apierr.Conflict {
				t.Errorf("creation #%d = %v, want conflict", i, err)
			}
			if players+identities+tokens != 0 {
				t.Errorf("refused creation #%d stored %d players, %d identities, %d tokens; want none", i, players, identities, tokens)
			}
			continue
		}
		if err != nil || players != 1 || identities != 1 || tokens != 1 {
			t.Errorf("creation #%d = %v, stored %d players, %d identities, %d tokens; want nil and one each", i, err, players, identities, tokens)
		}
	}
	if statements >= n {
		t.Errorf("%d creations sent %d statements, want fewer (batched)", n, statements)
	}
	t.Logf("%d creations, %d statements", n, statements)
}
