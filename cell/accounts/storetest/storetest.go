// Package storetest is the contract every accounts.Store implementation
// must pass. Each implementation's tests call Run with a constructor that
// returns a fresh, empty store.
package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// Run runs the contract suite; newStore must return an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) accounts.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s accounts.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"DuplicateUsername", testDuplicateUsername},
		{"DuplicateID", testDuplicateID},
		{"NotFound", testNotFound},
		{"UsernamesAreExact", testUsernamesAreExact},
		{"SQLMetacharacters", testSQLMetacharacters},
		{"UnstorableText", testUnstorableText},
		{"ConcurrentSameUsername", testConcurrentSameUsername},
		{"ConcurrentDistinct", testConcurrentDistinct},

		{"CreateWithIdentity", testCreateWithIdentity},
		{"CreateWithIdentityIsAtomic", testCreateWithIdentityIsAtomic},
		{"LinkIdentity", testLinkIdentity},
		{"UnlinkIdentity", testUnlinkIdentity},
		{"IdentitiesOrder", testIdentitiesOrder},
		{"IdentitySQLMetacharacters", testIdentitySQLMetacharacters},
		{"IdentityUnstorableText", testIdentityUnstorableText},
		{"ConcurrentFirstLogin", testConcurrentFirstLogin},
		{"ConcurrentLinkSameIdentity", testConcurrentLinkSameIdentity},
		{"ConcurrentUnlinkLastTwo", testConcurrentUnlinkLastTwo},

		{"RefreshRotate", testRefreshRotate},
		{"RefreshOutcomes", testRefreshOutcomes},
		{"RefreshReuseRevokesWholeFamily", testRefreshReuseRevokesWholeFamily},
		{"RefreshRevokeFamily", testRefreshRevokeFamily},
		{"RefreshCreateErrors", testRefreshCreateErrors},
		{"RefreshNextHashCollision", testRefreshNextHashCollision},
		{"ConcurrentRefreshSameToken", testConcurrentRefreshSameToken},
		{"ConcurrentRefreshAndLogout", testConcurrentRefreshAndLogout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
	t.Run("Sessions", func(t *testing.T) { runSessions(t, newStore) })
}

// player returns a valid player; created is at microsecond precision,
// which is what SQL timestamps keep and what the service stores.
func player(id, username string) accounts.Player {
	return accounts.Player{
		ID:           id,
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		HomeCell:     "eu-west",
		CreatedAt:    time.Date(2025, 6, 1, 12, 30, 45, 123456000, time.UTC),
	}
}

func samePlayer(t *testing.T, what string, got, want accounts.Player) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || got.PasswordHash != want.PasswordHash ||
		got.HomeCell != want.HomeCell || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func wantCode(t *testing.T, what string, err error, want apierr.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: err = nil, want code %q", what, want)
		return
	}
	if got := apierr.CodeOf(err); got != want {
		t.Errorf("%s: code = %q (err %v), want %q", what, got, err, want)
	}
}

func testCreateAndRead(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	alice, bob := player("01970000-0000-7000-8000-000000000001", "alice"), player("01970000-0000-7000-8000-000000000002", "bob")
	bob.HomeCell = "us-east"
	bob.PasswordHash = "" // accounts without a password (platform logins) are storable
	for _, p := range []accounts.Player{alice, bob} {
		if err := s.CreatePlayer(ctx, p); err != nil {
			t.Fatalf("CreatePlayer(%s) = %v, want nil", p.Username, err)
		}
	}
	for _, p := range []accounts.Player{alice, bob} {
		got, err := s.PlayerByID(ctx, p.ID)
		if err != nil {
			t.Fatalf("PlayerByID(%s) = %v, want nil", p.ID, err)
		}
		samePlayer(t, "PlayerByID("+p.ID+")", got, p)
		got, err = s.PlayerByUsername(ctx, p.Username)
		if err != nil {
			t.Fatalf("PlayerByUsername(%s) = %v, want nil", p.Username, err)
		}
		samePlayer(t, "PlayerByUsername("+p.Username+")", got, p)
	}
}

func testDuplicateUsername(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	first := player("id-1", "alice")
	if err := s.CreatePlayer(ctx, first); err != nil {
		t.Fatalf("CreatePlayer(first) = %v, want nil", err)
	}
	second := player("id-2", "alice")
	second.PasswordHash = "other"
	wantCode(t, "CreatePlayer(same username)", s.CreatePlayer(ctx, second), apierr.Conflict)
	got, err := s.PlayerByUsername(ctx, "alice")
	if err != nil {
		t.Fatalf("PlayerByUsername(alice) = %v, want nil", err)
	}
	samePlayer(t, "PlayerByUsername after conflict", got, first)
	_, err = s.PlayerByID(ctx, "id-2")
	wantCode(t, "PlayerByID(loser of conflict)", err, apierr.NotFound)
}

func testDuplicateID(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	if err := s.CreatePlayer(ctx, player("id-1", "alice")); err != nil {
		t.Fatalf("CreatePlayer = %v, want nil", err)
	}
	wantCode(t, "CreatePlayer(same id)", s.CreatePlayer(ctx, player("id-1", "bob")), apierr.Conflict)
	_, err := s.PlayerByUsername(ctx, "bob")
	wantCode(t, "PlayerByUsername(loser of id conflict)", err, apierr.NotFound)
}

func testNotFound(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	_, err := s.PlayerByID(ctx, "no-such-id")
	wantCode(t, "PlayerByID(empty store)", err, apierr.NotFound)
	_, err = s.PlayerByUsername(ctx, "nobody")
	wantCode(t, "PlayerByUsername(empty store)", err, apierr.NotFound)
	_, err = s.PlayerByID(ctx, "")
	wantCode(t, `PlayerByID("")`, err, apierr.NotFound)
}

// The service lower-cases usernames; a store compares them exactly, so
// the same letters in another case are another (absent) username.
func testUsernamesAreExact(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	if err := s.CreatePlayer(ctx, player("id-1", "alice")); err != nil {
		t.Fatalf("CreatePlayer = %v, want nil", err)
	}
	for _, u := range []string{"ALICE", "Alice", "alice ", " alice", "alic"} {
		_, err := s.PlayerByUsername(ctx, u)
		wantCode(t, fmt.Sprintf("PlayerByUsername(%q)", u), err, apierr.NotFound)
	}
}

func testSQLMetacharacters(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	victim := player("id-victim", "victim")
	if err := s.CreatePlayer(ctx, victim); err != nil {
		t.Fatalf("CreatePlayer(victim) = %v, want nil", err)
	}
	nasty := []string{
		`x'); DROP TABLE players;--`,
		`' OR '1'='1`,
		`"; DELETE FROM players WHERE ''='`,
		`back\slash\\ and 100% _wild_ $1 $$dollar$$`,
		"naïve 名前 🎮 \u202e",
	}
	for i, v := range nasty {
		p := player(fmt.Sprintf("%s-%d", v, i), v)
		p.PasswordHash, p.HomeCell = v+"-hash", v+"-cell"
		if err := s.CreatePlayer(ctx, p); err != nil {
			t.Fatalf("CreatePlayer(%q) = %v, want nil", v, err)
		}
		got, err := s.PlayerByUsername(ctx, v)
		if err != nil {
			t.Fatalf("PlayerByUsername(%q) = %v, want nil", v, err)
		}
		samePlayer(t, fmt.Sprintf("PlayerByUsername(%q)", v), got, p)
		got, err = s.PlayerByID(ctx, p.ID)
		if err != nil {
			t.Fatalf("PlayerByID(%q) = %v, want nil", p.ID, err)
		}
		samePlayer(t, fmt.Sprintf("PlayerByID(%q)", p.ID), got, p)
	}
	// LIKE wildcards must not match: lookups are equality.
	_, err := s.PlayerByUsername(ctx, "%")
	wantCode(t, `PlayerByUsername("%")`, err, apierr.NotFound)
	got, err := s.PlayerByID(ctx, victim.ID)
	if err != nil {
		t.Fatalf("PlayerByID(victim) after injection attempts = %v, want nil", err)
	}
	samePlayer(t, "victim after injection attempts", got, victim)
}

func testUnstorableText(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	for _, p := range []accounts.Player{
		player("id-nul", "a\x00b"),
		player("id-utf8", "bad\xffutf8"),
		player("", "noid"),
		{ID: "id-empty", Username: "empty"},
	} {
		wantCode(t, fmt.Sprintf("CreatePlayer(%+q)", p.Username), s.CreatePlayer(ctx, p), apierr.BadRequest)
	}
	for _, v := range []string{"a\x00b", "bad\xffutf8"} {
		_, err := s.PlayerByUsername(ctx, v)
		wantCode(t, fmt.Sprintf("PlayerByUsername(%+q)", v), err, apierr.NotFound)
		_, err = s.PlayerByID(ctx, v)
		wantCode(t, fmt.Sprintf("PlayerByID(%+q)", v), err, apierr.NotFound)
	}
	_, err := s.PlayerByID(ctx, "id-empty")
	wantCode(t, "PlayerByID(rejected player)", err, apierr.NotFound)
}

func testConcurrentSameUsername(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.CreatePlayer(ctx, player(fmt.Sprintf("id-%d", i), "contested")) })
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case apierr.CodeOf(err) != apierr.Conflict:
			t.Errorf("CreatePlayer #%d = %v, want nil or code %q", i, err, apierr.Conflict)
		}
	}
	if winners != 1 {
		t.Fatalf("%d of %d concurrent creates of one username succeeded, want exactly 1", winners, n)
	}
	got, err := s.PlayerByUsername(ctx, "contested")
	if err != nil {
		t.Fatalf("PlayerByUsername(contested) = %v, want nil", err)
	}
	if errs[indexOf(got.ID)] != nil {
		t.Errorf("stored player %s is not the create that succeeded", got.ID)
	}
}

func indexOf(id string) int {
	var i int
	fmt.Sscanf(id, "id-%d", &i)
	return i
}

func testConcurrentDistinct(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.CreatePlayer(ctx, player(fmt.Sprintf("id-%d", i), fmt.Sprintf("user%d", i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreatePlayer(user%d) = %v, want nil", i, err)
		}
	}
	for i := range n {
		got, err := s.PlayerByUsername(ctx, fmt.Sprintf("user%d", i))
		if err != nil || got.ID != fmt.Sprintf("id-%d", i) {
			t.Errorf("PlayerByUsername(user%d) = %s, %v; want id-%d, nil", i, got.ID, err, i)
		}
	}
}
