package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// identity returns a valid identity of provider/subject for playerID.
func identity(provider, subject, playerID string) accounts.Identity {
	return accounts.Identity{
		Provider:    provider,
		Subject:     subject,
		PlayerID:    playerID,
		DisplayName: "Gordon " + subject,
		CreatedAt:   time.Date(2025, 6, 1, 12, 30, 45, 123456000, time.UTC),
	}
}

// platformPlayer returns a player without a password, as a first platform
// login creates it.
func platformPlayer(id, username string) accounts.Player {
	p := player(id, username)
	p.PasswordHash = ""
	return p
}

func sameIdentity(t *testing.T, what string, got, want accounts.Identity) {
	t.Helper()
	if got.Provider != want.Provider || got.Subject != want.Subject || got.PlayerID != want.PlayerID ||
		got.HomeCell != want.HomeCell || got.DisplayName != want.DisplayName || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// wantIdentities checks a player's identities, in order, by provider/subject.
func wantIdentities(t *testing.T, s accounts.Store, playerID string, want ...string) {
	t.Helper()
	ids, err := s.Identities(t.Context(), playerID)
	if err != nil {
		t.Fatalf("Identities(%s) = %v, want nil", playerID, err)
	}
	got := make([]string, len(ids))
	for i, id := range ids {
		got[i] = id.Provider + "/" + id.Subject
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Identities(%s) = %v, want %v", playerID, got, want)
	}
	if ids == nil {
		t.Errorf("Identities(%s) = nil slice, want a non-nil (possibly empty) one", playerID)
	}
}

// mustCreate stores p with its first identity of provider/subject.
func mustCreate(t *testing.T, s accounts.Store, p accounts.Player, provider, subject string) accounts.Identity {
	t.Helper()
	id := identity(provider, subject, p.ID)
	if err := s.CreatePlayerWithIdentity(t.Context(), p, id); err != nil {
		t.Fatalf("CreatePlayerWithIdentity(%s, %s/%s) = %v, want nil", p.ID, provider, subject, err)
	}
	id.HomeCell = p.HomeCell
	return id
}

func testCreateWithIdentity(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	p := platformPlayer("id-1", "steam#abc")
	p.HomeCell = "ap-south"
	id := identity("steam", "76561198000000001", "ignored: taken from the player")
	id.HomeCell = "ignored too"
	if err := s.CreatePlayerWithIdentity(ctx, p, id); err != nil {
		t.Fatalf("CreatePlayerWithIdentity = %v, want nil", err)
	}
	got, err := s.PlayerByIdentity(ctx, "steam", "76561198000000001")
	if err != nil {
		t.Fatalf("PlayerByIdentity = %v, want nil", err)
	}
	samePlayer(t, "PlayerByIdentity", got, p)
	got, err = s.PlayerByID(ctx, p.ID)
	if err != nil {
		t.Fatalf("PlayerByID = %v, want nil", err)
	}
	samePlayer(t, "PlayerByID", got, p)
	ids, err := s.Identities(ctx, p.ID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Identities = %v, %v; want one identity", ids, err)
	}
	want := id
	want.PlayerID, want.HomeCell = p.ID, p.HomeCell
	sameIdentity(t, "Identities[0]", ids[0], want)

	for _, k := range [][2]string{{"epic", "76561198000000001"}, {"steam", "76561198000000002"}, {"STEAM", "76561198000000001"}, {"steam", ""}} {
		_, err := s.PlayerByIdentity(ctx, k[0], k[1])
		wantCode(t, fmt.Sprintf("PlayerByIdentity(%q, %q)", k[0], k[1]), err, apierr.NotFound)
	}
	wantIdentities(t, s, "no-such-player")
}

func testCreateWithIdentityIsAtomic(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	mustCreate(t, s, platformPlayer("id-1", "steam#one"), "steam", "s-1")

	// The identity is taken: the new player must not be stored either.
	err := s.CreatePlayerWithIdentity(ctx, platformPlayer("id-2", "steam#two"), identity("steam", "s-1", "id-2"))
	wantCode(t, "CreatePlayerWithIdentity(taken identity)", err, apierr.Conflict)
	_, err = s.PlayerByID(ctx, "id-2")
	wantCode(t, "PlayerByID(loser of identity conflict)", err, apierr.NotFound)
	_, err = s.PlayerByUsername(ctx, "steam#two")
	wantCode(t, "PlayerByUsername(loser of identity conflict)", err, apierr.NotFound)

	// The username is taken: the identity must not be stored either.
	err = s.CreatePlayerWithIdentity(ctx, platformPlayer("id-3", "steam#one"), identity("steam", "s-3", "id-3"))
	wantCode(t, "CreatePlayerWithIdentity(taken username)", err, apierr.Conflict)
	_, err = s.PlayerByIdentity(ctx, "steam", "s-3")
	wantCode(t, "PlayerByIdentity(loser of username conflict)", err, apierr.NotFound)
	wantIdentities(t, s, "id-3")

	// The player id is taken.
	err = s.CreatePlayerWithIdentity(ctx, platformPlayer("id-1", "steam#four"), identity("epic", "e-4", "id-1"))
	wantCode(t, "CreatePlayerWithIdentity(taken id)", err, apierr.Conflict)
	wantIdentities(t, s, "id-1", "steam/s-1")
	_, err = s.PlayerByIdentity(ctx, "epic", "e-4")
	wantCode(t, "PlayerByIdentity(loser of id conflict)", err, apierr.NotFound)
}

func testLinkIdentity(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	alice := player("id-alice", "alice")
	alice.HomeCell = "us-east"
	if err := s.CreatePlayer(ctx, alice); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, platformPlayer("id-bob", "steam#bob"), "steam", "s-bob")

	link := identity("steam", "s-alice", alice.ID)
	link.HomeCell = "wrong: the store copies the player's"
	got, created, err := s.LinkIdentity(ctx, link)
	if err != nil || !created {
		t.Fatalf("LinkIdentity(new) = %+v, %v, %v; want created", got, created, err)
	}
	want := link
	want.HomeCell = alice.HomeCell
	sameIdentity(t, "LinkIdentity(new)", got, want)

	tests := []struct {
		name     string
		id       accounts.Identity
		wantCode apierr.Code // "" means success without creating
		wantMsg  string
	}{
		{"same again is idempotent", identity("steam", "s-alice", alice.ID), "", ""},
		{"same again, other display name", func() accounts.Identity {
			i := identity("steam", "s-alice", alice.ID)
			i.DisplayName = "renamed"
			return i
		}(), "", ""},
		{"owned by another player", identity("steam", "s-bob", alice.ID), apierr.Conflict, "another player"},
		{"second account of one provider", identity("steam", "s-alice-2", alice.ID), apierr.Conflict, "already linked"},
		{"unknown player", identity("epic", "e-ghost", "id-ghost"), apierr.NotFound, ""},
		{"other player takes alice's", identity("steam", "s-alice", "id-bob"), apierr.Conflict, "another player"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, created, err := s.LinkIdentity(ctx, tt.id)
			if tt.wantCode == "" {
				if err != nil || created {
					t.Fatalf("LinkIdentity = %+v, %v, %v; want the existing identity, not created", got, created, err)
				}
				sameIdentity(t, "LinkIdentity(again)", got, want)
				return
			}
			wantCode(t, "LinkIdentity", err, tt.wantCode)
			if created {
				t.Errorf("LinkIdentity reported created with error %v", err)
			}
			if tt.wantMsg != "" && !containsMsg(err, tt.wantMsg) {
				t.Errorf("LinkIdentity message = %q, want it to mention %q", apierr.MessageOf(err), tt.wantMsg)
			}
		})
	}
	// Nothing moved or merged.
	wantIdentities(t, s, alice.ID, "steam/s-alice")
	wantIdentities(t, s, "id-bob", "steam/s-bob")
	wantIdentities(t, s, "id-ghost")
	for subject, owner := range map[string]string{"s-alice": alice.ID, "s-bob": "id-bob"} {
		p, err := s.PlayerByIdentity(ctx, "steam", subject)
		if err != nil || p.ID != owner {
			t.Errorf("PlayerByIdentity(steam, %s) = %s, %v; want %s", subject, p.ID, err, owner)
		}
	}
	_, err = s.PlayerByIdentity(ctx, "steam", "s-alice-2")
	wantCode(t, "PlayerByIdentity(refused link)", err, apierr.NotFound)

	// A second provider is fine.
	if _, created, err := s.LinkIdentity(ctx, identity("epic", "e-alice", alice.ID)); err != nil || !created {
		t.Errorf("LinkIdentity(epic) = %v, %v; want created", created, err)
	}
}

func containsMsg(err error, sub string) bool { return strings.Contains(apierr.MessageOf(err), sub) }

func testUnlinkIdentity(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	withPassword := player("id-pw", "haspw")
	if err := s.CreatePlayer(ctx, withPassword); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LinkIdentity(ctx, identity("steam", "s-pw", withPassword.ID)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, platformPlayer("id-one", "steam#one"), "steam", "s-one")
	mustCreate(t, s, platformPlayer("id-two", "steam#two"), "steam", "s-two")
	if _, _, err := s.LinkIdentity(ctx, identity("epic", "e-two", "id-two")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		player         string
		provider       string
		passwordSignIn bool
		wantCode       apierr.Code // "" means success
		wantLeft       []string
	}{
		{"last identity, password off on the cell", "id-pw", "steam", false, apierr.Conflict, []string{"steam/s-pw"}},
		{"last identity, no password", "id-one", "steam", true, apierr.Conflict, []string{"steam/s-one"}},
		{"not linked", "id-one", "epic", true, apierr.NotFound, []string{"steam/s-one"}},
		{"unknown provider", "id-one", "' OR '1'='1", true, apierr.NotFound, []string{"steam/s-one"}},
		{"unknown player", "id-ghost", "steam", true, apierr.NotFound, []string{}},
		{"one of two", "id-two", "steam", true, "", []string{"epic/e-two"}},
		{"then the last", "id-two", "epic", true, apierr.Conflict, []string{"epic/e-two"}},
		{"last identity, password counts", "id-pw", "steam", true, "", []string{}},
		{"again", "id-pw", "steam", true, apierr.NotFound, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.UnlinkIdentity(ctx, tt.player, tt.provider, tt.passwordSignIn)
			if tt.wantCode == "" {
				if err != nil {
					t.Errorf("UnlinkIdentity = %v, want nil", err)
				}
			} else {
				wantCode(t, "UnlinkIdentity", err, tt.wantCode)
			}
			wantIdentities(t, s, tt.player, tt.wantLeft...)
		})
	}
	// An unlinked identity is free to sign in a new player.
	if err := s.CreatePlayerWithIdentity(ctx, platformPlayer("id-new", "steam#new"), identity("steam", "s-two", "id-new")); err != nil {
		t.Errorf("CreatePlayerWithIdentity(unlinked identity) = %v, want nil", err)
	}
}

func testIdentitiesOrder(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	p := player("id-1", "alice")
	if err := s.CreatePlayer(ctx, p); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, provider := range []string{"zeta", "epic", "alpha", "steam"} {
		id := identity(provider, "sub-"+provider, p.ID)
		id.CreatedAt = base.Add(time.Duration(3-i) * time.Hour) // steam oldest, zeta newest
		if provider == "alpha" {
			id.CreatedAt = base.Add(2 * time.Hour) // ties with epic: provider order
		}
		if _, _, err := s.LinkIdentity(ctx, id); err != nil {
			t.Fatalf("LinkIdentity(%s) = %v", provider, err)
		}
	}
	wantIdentities(t, s, p.ID, "steam/sub-steam", "alpha/sub-alpha", "epic/sub-epic", "zeta/sub-zeta")
}

func testIdentitySQLMetacharacters(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	victim := mustCreate(t, s, platformPlayer("id-victim", "steam#victim"), "steam", "victim")
	nasty := []string{
		`x'); DROP TABLE identities;--`,
		`' OR '1'='1`,
		`"; DELETE FROM players WHERE ''='`,
		`back\slash\\ and 100% _wild_ $1 $$dollar$$`,
		"naïve 名前 🎮 \u202e",
	}
	for i, v := range nasty {
		p := platformPlayer(fmt.Sprintf("id-%d", i), fmt.Sprintf("steam#%d", i))
		id := identity("steam", v, p.ID)
		id.DisplayName = v
		if err := s.CreatePlayerWithIdentity(ctx, p, id); err != nil {
			t.Fatalf("CreatePlayerWithIdentity(subject %q) = %v, want nil", v, err)
		}
		got, err := s.PlayerByIdentity(ctx, "steam", v)
		if err != nil || got.ID != p.ID {
			t.Errorf("PlayerByIdentity(steam, %q) = %s, %v; want %s", v, got.ID, err, p.ID)
		}
		ids, err := s.Identities(ctx, p.ID)
		if err != nil || len(ids) != 1 || ids[0].Subject != v || ids[0].DisplayName != v {
			t.Errorf("Identities(%s) = %+v, %v; want subject and display name %q", p.ID, ids, err, v)
		}
	}
	for _, v := range []string{"%", "_", "victi_", "victim%"} {
		_, err := s.PlayerByIdentity(ctx, "steam", v)
		wantCode(t, fmt.Sprintf("PlayerByIdentity(steam, %q)", v), err, apierr.NotFound)
	}
	got, err := s.PlayerByIdentity(ctx, "steam", "victim")
	if err != nil || got.ID != victim.PlayerID {
		t.Errorf("victim after injection attempts = %s, %v; want %s", got.ID, err, victim.PlayerID)
	}
	wantIdentities(t, s, victim.PlayerID, "steam/victim")
}

func testIdentityUnstorableText(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	if err := s.CreatePlayer(ctx, player("id-1", "alice")); err != nil {
		t.Fatal(err)
	}
	bad := []accounts.Identity{
		identity("steam", "a\x00b", "id-1"),
		identity("steam", "bad\xffutf8", "id-1"),
		identity("st\x00eam", "s", "id-1"),
		identity("", "s", "id-1"),
		identity("steam", "", "id-1"),
		identity("steam", "s", ""), // CreatePlayerWithIdentity fills the player id: last, skipped there
		func() accounts.Identity { i := identity("steam", "s", "id-1"); i.DisplayName = "x\x00y"; return i }(),
	}
	for i, id := range bad {
		_, created, err := s.LinkIdentity(ctx, id)
		wantCode(t, fmt.Sprintf("LinkIdentity(bad #%d %+q)", i, id.Subject), err, apierr.BadRequest)
		if created {
			t.Errorf("LinkIdentity(bad #%d) reported created", i)
		}
		if id.PlayerID == "" {
			continue
		}
		p := platformPlayer(fmt.Sprintf("id-new-%d", i), fmt.Sprintf("steam#%d", i))
		wantCode(t, fmt.Sprintf("CreatePlayerWithIdentity(bad #%d)", i), s.CreatePlayerWithIdentity(ctx, p, id), apierr.BadRequest)
		_, err = s.PlayerByID(ctx, p.ID)
		wantCode(t, fmt.Sprintf("PlayerByID(rejected #%d)", i), err, apierr.NotFound)
	}
	wantIdentities(t, s, "id-1")
	for _, v := range []string{"a\x00b", "bad\xffutf8"} {
		_, err := s.PlayerByIdentity(ctx, "steam", v)
		wantCode(t, fmt.Sprintf("PlayerByIdentity(%+q)", v), err, apierr.NotFound)
		_, err = s.PlayerByIdentity(ctx, v, "s")
		wantCode(t, fmt.Sprintf("PlayerByIdentity(provider %+q)", v), err, apierr.NotFound)
		wantCode(t, fmt.Sprintf("UnlinkIdentity(%+q)", v), s.UnlinkIdentity(ctx, v, "steam", true), apierr.NotFound)
		wantIdentities(t, s, v)
	}
}

// Two first logins with one platform account race: exactly one creates a
// player, and no second player is left behind.
func testConcurrentFirstLogin(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := platformPlayer(fmt.Sprintf("id-%d", i), fmt.Sprintf("steam#%d", i))
			errs[i] = s.CreatePlayerWithIdentity(ctx, p, identity("steam", "contested", p.ID))
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("CreatePlayerWithIdentity #%d and #%d both succeeded, want one", winner, i)
		case err == nil:
			winner = i
		case apierr.CodeOf(err) != apierr.Conflict:
			t.Errorf("CreatePlayerWithIdentity #%d = %v, want nil or code %q", i, err, apierr.Conflict)
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent first login succeeded: %v", errs)
	}
	got, err := s.PlayerByIdentity(ctx, "steam", "contested")
	if err != nil || got.ID != fmt.Sprintf("id-%d", winner) {
		t.Errorf("PlayerByIdentity = %s, %v; want id-%d", got.ID, err, winner)
	}
	for i := range n {
		if i == winner {
			continue
		}
		if _, err := s.PlayerByID(ctx, fmt.Sprintf("id-%d", i)); apierr.CodeOf(err) != apierr.NotFound {
			t.Errorf("PlayerByID(loser id-%d) = %v, want not_found", i, err)
		}
	}
}

func testConcurrentLinkSameIdentity(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	const n = 8
	for i := range n {
		if err := s.CreatePlayer(ctx, player(fmt.Sprintf("id-%d", i), fmt.Sprintf("user%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Every player tries to link the same Steam account twice at once.
	type result struct {
		created bool
		err     error
	}
	results := make([]result, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			_, created, err := s.LinkIdentity(ctx, identity("steam", "contested", fmt.Sprintf("id-%d", i%n)))
			results[i] = result{created, err}
		})
	}
	wg.Wait()
	owner, err := s.PlayerByIdentity(ctx, "steam", "contested")
	if err != nil {
		t.Fatalf("PlayerByIdentity = %v, want an owner", err)
	}
	created := 0
	for i, r := range results {
		mine := fmt.Sprintf("id-%d", i%n) == owner.ID
		switch {
		case r.created:
			created++
			if !mine {
				t.Errorf("link #%d by %s created, but the owner is %s", i, fmt.Sprintf("id-%d", i%n), owner.ID)
			}
		case mine && r.err != nil:
			t.Errorf("link #%d by the owner = %v, want nil (idempotent) or created", i, r.err)
		case !mine && apierr.CodeOf(r.err) != apierr.Conflict:
			t.Errorf("link #%d by a non-owner = %v, want code %q", i, r.err, apierr.Conflict)
		}
	}
	if created != 1 {
		t.Errorf("%d links created the identity, want exactly 1", created)
	}
	for i := range n {
		id := fmt.Sprintf("id-%d", i)
		if id == owner.ID {
			wantIdentities(t, s, id, "steam/contested")
		} else {
			wantIdentities(t, s, id)
		}
	}
}

// A passwordless player with two identities unlinks both at once: one must
// be refused, or the player could never sign in again.
func testConcurrentUnlinkLastTwo(t *testing.T, s accounts.Store) {
	ctx := t.Context()
	for round := range 5 {
		p := platformPlayer(fmt.Sprintf("id-%d", round), fmt.Sprintf("steam#%d", round))
		mustCreate(t, s, p, "steam", fmt.Sprintf("s-%d", round))
		if _, _, err := s.LinkIdentity(ctx, identity("epic", fmt.Sprintf("e-%d", round), p.ID)); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, provider := range []string{"steam", "epic"} {
			wg.Go(func() { errs[i] = s.UnlinkIdentity(ctx, p.ID, provider, true) })
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case apierr.CodeOf(err) != apierr.Conflict:
				t.Errorf("round %d: UnlinkIdentity #%d = %v, want nil or code %q", round, i, err, apierr.Conflict)
			}
		}
		ids, err := s.Identities(ctx, p.ID)
		if ok != 1 || err != nil || len(ids) != 1 {
			t.Errorf("round %d: %d unlinks succeeded and %d identities remain (%v); want 1 and 1", round, ok, len(ids), err)
		}
	}
}
