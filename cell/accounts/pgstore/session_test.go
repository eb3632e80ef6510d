package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livecell/livecell/cell/accounts"
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
