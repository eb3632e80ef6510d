package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// runSessions runs the SessionStore contract on newStore's own
// implementation, when it has one, and on the adapter accounts.Sessions
// builds from the Store methods. The adapter is not atomic across its two
// steps (its documentation says so), so the atomicity tests run on native
// implementations only.
func runSessions(t *testing.T, newStore func(t *testing.T) accounts.Store) {
	tests := []struct {
		name   string
		fn     func(t *testing.T, s accounts.Store, ss accounts.SessionStore)
		atomic bool
	}{
		{"SignInByIdentity", testSignInByIdentity, false},
		{"SignInByIdentityErrors", testSignInByIdentityErrors, false},
		{"CreatePlayerWithIdentityAndToken", testCreateWithToken, false},
		{"CreatePlayerWithIdentityAndTokenIsAtomic", testCreateWithTokenIsAtomic, true},
		{"ConcurrentFirstLoginWithToken", testConcurrentFirstLoginWithToken, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("native", func(t *testing.T) {
				s := newStore(t)
				ss, ok := s.(accounts.SessionStore)
				if !ok {
					t.Skipf("%T does not implement accounts.SessionStore", s)
				}
				tt.fn(t, s, ss)
			})
			if tt.atomic {
				return
			}
			t.Run("composed", func(t *testing.T) {
				s := newStore(t)
				// Hiding the store's own methods makes Sessions compose.
				tt.fn(t, s, accounts.Sessions(struct{ accounts.Store }{s}))
			})
		})
	}
}

// unbound is the first token of a new family as the service makes it: no
// player or home cell yet.
func unbound(name, family string) accounts.RefreshToken {
	rt := refreshToken(name, family, "")
	rt.HomeCell = ""
	return rt
}

func testSignInByIdentity(t *testing.T, s accounts.Store, ss accounts.SessionStore) {
	ctx := t.Context()
	p := platformPlayer("id-1", "steam#abc")
	p.HomeCell = "ap-south"
	mustCreate(t, s, p, "steam", "s-1")

	got, err := ss.SignInByIdentity(ctx, "steam", "s-1", unbound("t1", "fam-1"))
	if err != nil {
		t.Fatalf("SignInByIdentity = %v, want nil", err)
	}
	samePlayer(t, "SignInByIdentity", got, p)
	// The token was stored for the player, in the player's home cell.
	res := rotate(t, s, "t1", "t1-next", t0.Add(1), accounts.RefreshRotated)
	samePlayer(t, "rotated Player", res.Player, p)
	if res.FamilyID != "fam-1" || res.Next.PlayerID != p.ID || res.Next.HomeCell != p.HomeCell {
		t.Errorf("rotated family %s, successor player %s home %s; want fam-1, %s, %s",
			res.FamilyID, res.Next.PlayerID, res.Next.HomeCell, p.ID, p.HomeCell)
	}
	// Every sign-in starts a family of its own.
	if _, err := ss.SignInByIdentity(ctx, "steam", "s-1", unbound("t2", "fam-2")); err != nil {
		t.Fatalf("second SignInByIdentity = %v, want nil", err)
	}
	rotate(t, s, "t2", "t2-next", t0.Add(1), accounts.RefreshRotated)
}

func testSignInByIdentityErrors(t *testing.T, s accounts.Store, ss accounts.SessionStore) {
	ctx := t.Context()
	p := platformPlayer("id-1", "steam#abc")
	mustCreate(t, s, p, "steam", "s-1")
	mustCreateRefresh(t, s, refreshToken("taken", "fam-0", p.ID))

	noRow := func(name string) {
		t.Helper()
		res, err := s.RotateRefreshToken(ctx, hashOf(name), successor(name+"-next", t0), t0)
		if err != nil || res.Outcome != accounts.RefreshUnknown {
			t.Errorf("token %s after a refused sign-in: %s, %v; want unknown (nothing stored)", name, outcomeName(res.Outcome), err)
		}
	}
	for _, k := range [][2]string{{"epic", "s-1"}, {"steam", "s-2"}, {"STEAM", "s-1"}, {"steam", ""},
		{"steam", "' OR '1'='1"}, {"steam", "s-1\x00"}, {"steam", "\xff"}} {
		name := fmt.Sprintf("t-%q-%q", k[0], k[1])
		_, err := ss.SignInByIdentity(ctx, k[0], k[1], unbound(name, "fam-x"))
		wantCode(t, fmt.Sprintf("SignInByIdentity(%q, %q)", k[0], k[1]), err, apierr.NotFound)
		noRow(name)
	}

	_, err := ss.SignInByIdentity(ctx, "steam", "s-1", unbound("taken", "fam-1"))
	wantCode(t, "SignInByIdentity(taken token hash)", err, apierr.Conflict)
	res := rotate(t, s, "taken", "taken-next", t0.Add(1), accounts.RefreshRotated)
	if res.FamilyID != "fam-0" {
		t.Errorf("family of the taken token = %s, want fam-0 (not overwritten)", res.FamilyID)
	}

	bad := unbound("bad", "fam-2")
	bad.ExpiresAt = bad.IssuedAt
	_, err = ss.SignInByIdentity(ctx, "steam", "s-1", bad)
	wantCode(t, "SignInByIdentity(token expiring at once)", err, apierr.BadRequest)
	noRow("bad")
	noFamily := unbound("nofam", "")
	_, err = ss.SignInByIdentity(ctx, "steam", "s-1", noFamily)
	wantCode(t, "SignInByIdentity(token without family)", err, apierr.BadRequest)
	noRow("nofam")
}

func testCreateWithToken(t *testing.T, s accounts.Store, ss accounts.SessionStore) {
	ctx := t.Context()
	p := platformPlayer("id-1", "steam#abc")
	p.HomeCell = "ap-south"
	id := identity("steam", "s-1", "ignored: taken from the player")
	id.HomeCell = "ignored too"
	rt := unbound("t1", "fam-1")
	rt.PlayerID, rt.HomeCell = "ignored", "ignored"
	if err := ss.CreatePlayerWithIdentityAndToken(ctx, p, id, rt); err != nil {
		t.Fatalf("CreatePlayerWithIdentityAndToken = %v, want nil", err)
	}
	got, err := s.PlayerByIdentity(ctx, "steam", "s-1")
	if err != nil {
		t.Fatalf("PlayerByIdentity = %v, want nil", err)
	}
	samePlayer(t, "PlayerByIdentity", got, p)
	ids, err := s.Identities(ctx, p.ID)
	if err != nil || len(ids) != 1 {
		t.Fatalf("Identities = %v, %v; want one identity", ids, err)
	}
	want := id
	want.PlayerID, want.HomeCell = p.ID, p.HomeCell
	sameIdentity(t, "Identities[0]", ids[0], want)
	res := rotate(t, s, "t1", "t1-next", t0.Add(1), accounts.RefreshRotated)
	if res.FamilyID != "fam-1" || res.Next.PlayerID != p.ID || res.Next.HomeCell != p.HomeCell {
		t.Errorf("rotated family %s, successor player %s home %s; want fam-1, %s, %s",
			res.FamilyID, res.Next.PlayerID, res.Next.HomeCell, p.ID, p.HomeCell)
	}

	bad := unbound("bad", "fam-2")
	bad.ExpiresAt = bad.IssuedAt
	err = ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-2", "steam#two"), identity("steam", "s-2", ""), bad)
	wantCode(t, "CreatePlayerWithIdentityAndToken(token expiring at once)", err, apierr.BadRequest)
	_, err = s.PlayerByID(ctx, "id-2")
	wantCode(t, "PlayerByID(refused for its token)", err, apierr.NotFound)
	err = ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-3", "steam#three"), identity("steam", "s\x00", ""), unbound("t3", "fam-3"))
	wantCode(t, "CreatePlayerWithIdentityAndToken(NUL in subject)", err, apierr.BadRequest)
	_, err = s.PlayerByID(ctx, "id-3")
	wantCode(t, "PlayerByID(refused for its identity)", err, apierr.NotFound)
}

func testCreateWithTokenIsAtomic(t *testing.T, s accounts.Store, ss accounts.SessionStore) {
	ctx := t.Context()
	if err := ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-1", "steam#one"), identity("steam", "s-1", ""), unbound("t1", "fam-1")); err != nil {
		t.Fatalf("CreatePlayerWithIdentityAndToken = %v, want nil", err)
	}
	gone := func(what, playerID, provider, subject, token string) {
		t.Helper()
		if playerID != "" {
			_, err := s.PlayerByID(ctx, playerID)
			wantCode(t, what+": PlayerByID", err, apierr.NotFound)
		}
		if provider != "" {
			if p, err := s.PlayerByIdentity(ctx, provider, subject); apierr.CodeOf(err) != apierr.NotFound && p.ID != "id-1" {
				t.Errorf("%s: PlayerByIdentity(%s/%s) = %s, %v; want not_found or id-1", what, provider, subject, p.ID, err)
			}
		}
		res, err := s.RotateRefreshToken(ctx, hashOf(token), successor(token+"-next", t0), t0)
		if err != nil || res.Outcome != accounts.RefreshUnknown {
			t.Errorf("%s: token %s rotates: %s, %v; want unknown", what, token, outcomeName(res.Outcome), err)
		}
	}

	err := ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-2", "steam#two"), identity("steam", "s-1", ""), unbound("t2", "fam-2"))
	wantCode(t, "taken identity", err, apierr.Conflict)
	gone("taken identity", "id-2", "", "", "t2")

	err = ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-3", "steam#one"), identity("steam", "s-3", ""), unbound("t3", "fam-3"))
	wantCode(t, "taken username", err, apierr.Conflict)
	gone("taken username", "id-3", "steam", "s-3", "t3")

	err = ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-1", "steam#four"), identity("epic", "e-4", ""), unbound("t4", "fam-4"))
	wantCode(t, "taken player id", err, apierr.Conflict)
	gone("taken player id", "", "epic", "e-4", "t4")
	wantIdentities(t, s, "id-1", "steam/s-1")

	err = ss.CreatePlayerWithIdentityAndToken(ctx, platformPlayer("id-5", "steam#five"), identity("steam", "s-5", ""), unbound("t1", "fam-5"))
	wantCode(t, "taken token hash", err, apierr.Conflict)
	gone("taken token hash", "id-5", "steam", "s-5", "none")
	res := rotate(t, s, "t1", "t1-next", t0.Add(1), accounts.RefreshRotated)
	if res.FamilyID != "fam-1" || res.PlayerID != "id-1" {
		t.Errorf("taken token now family %s player %s, want fam-1 id-1 (not overwritten)", res.FamilyID, res.PlayerID)
	}
}

// Concurrent first logins with one platform account, as the service runs
// them: each tries to create a player; the losers sign in to the winner.
// One player, and every login's token works.
func testConcurrentFirstLoginWithToken(t *testing.T, s accounts.Store, ss accounts.SessionStore) {
	ctx := t.Context()
	const n = 12
	players := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := platformPlayer(fmt.Sprintf("id-%d", i), fmt.Sprintf("steam#%d", i))
			rt := unbound(fmt.Sprintf("t%d", i), fmt.Sprintf("fam-%d", i))
			err := ss.CreatePlayerWithIdentityAndToken(ctx, p, identity("steam", "contested", ""), rt)
			if err == nil {
				players[i] = p.ID
				return
			}
			if apierr.CodeOf(err) != apierr.Conflict {
				errs[i] = err
				return
			}
			w, err := ss.SignInByIdentity(ctx, "steam", "contested", rt)
			players[i], errs[i] = w.ID, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("login #%d: %v", i, err)
		}
	}
	winner, err := s.PlayerByIdentity(ctx, "steam", "contested")
	if err != nil {
		t.Fatalf("PlayerByIdentity = %v", err)
	}
	for i := range n {
		if players[i] != winner.ID {
			t.Errorf("login #%d signed in to %s, want the winner %s", i, players[i], winner.ID)
		}
		res := rotate(t, s, fmt.Sprintf("t%d", i), fmt.Sprintf("t%d-next", i), t0.Add(1), accounts.RefreshRotated)
		if res.PlayerID != winner.ID {
			t.Errorf("token of login #%d belongs to %s, want %s", i, res.PlayerID, winner.ID)
		}
		if players[i] != winner.ID {
			continue
		}
		if id := fmt.Sprintf("id-%d", i); id != winner.ID {
			if _, err := s.PlayerByID(ctx, id); apierr.CodeOf(err) != apierr.NotFound {
				t.Errorf("PlayerByID(loser %s) = %v, want not_found", id, err)
			}
		}
	}
}
