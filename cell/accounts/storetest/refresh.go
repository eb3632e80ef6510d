package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/apierr"
)

// t0 is the contract's clock: stores take "now" as an argument, so no test
// here depends on the wall clock.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// hashOf is a realistic digest for a readable name.
func hashOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

func refreshToken(name, family, playerID string) accounts.RefreshToken {
	return accounts.RefreshToken{
		Hash: hashOf(name), FamilyID: family, PlayerID: playerID, HomeCell: "eu-west",
		IssuedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour),
	}
}

// successor is the next token the service would offer at time at.
func successor(name string, at time.Time) accounts.RefreshToken {
	return accounts.RefreshToken{Hash: hashOf(name), IssuedAt: at, ExpiresAt: at.Add(30 * 24 * time.Hour)}
}

func outcomeName(o accounts.RefreshOutcome) string {
	switch o {
	case accounts.RefreshRotated:
		return "rotated"
	case accounts.RefreshReused:
		return "reused"
	case accounts.RefreshUnknown:
		return "unknown"
	case accounts.RefreshExpired:
		return "expired"
	case accounts.RefreshRevoked:
		return "revoked"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// rotate presents name and offers next, expecting outcome want.
func rotate(t *testing.T, s accounts.Store, name, next string, at time.Time, want accounts.RefreshOutcome) accounts.RefreshResult {
	t.Helper()
	res, err := s.RotateRefreshToken(t.Context(), hashOf(name), successor(next, at), at)
	if err != nil {
		t.Fatalf("RotateRefreshToken(%s) = %v, want nil error", name, err)
	}
	if res.Outcome != want {
		t.Fatalf("RotateRefreshToken(%s) outcome = %s, want %s", name, outcomeName(res.Outcome), outcomeName(want))
	}
	return res
}

// withPlayer stores a player for refresh tests.
func withPlayer(t *testing.T, s accounts.Store, id, home string) accounts.Player {
	t.Helper()
	p := player(id, "user-"+id)
	p.HomeCell = home
	if err := s.CreatePlayer(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCreateRefresh(t *testing.T, s accounts.Store, rt accounts.RefreshToken) {
	t.Helper()
	if err := s.CreateRefreshToken(t.Context(), rt); err != nil {
		t.Fatalf("CreateRefreshToken(%s) = %v, want nil", rt.Hash[:8], err)
	}
}

func testRefreshRotate(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "ap-south")
	first := refreshToken("t1", "fam-1", p.ID)
	mustCreateRefresh(t, s, first)

	at := t0.Add(time.Hour)
	res := rotate(t, s, "t1", "t2", at, accounts.RefreshRotated)
	samePlayer(t, "rotated Player", res.Player, p)
	want := successor("t2", at)
	want.FamilyID, want.PlayerID, want.HomeCell = "fam-1", p.ID, p.HomeCell
	if res.Next.Hash != want.Hash || res.Next.FamilyID != want.FamilyID || res.Next.PlayerID != want.PlayerID ||
		res.Next.HomeCell != want.HomeCell || !res.Next.IssuedAt.Equal(want.IssuedAt) || !res.Next.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("Next = %+v, want %+v (family, player and the player's home cell filled in)", res.Next, want)
	}
	if res.FamilyID != "fam-1" || res.PlayerID != p.ID {
		t.Errorf("result family/player = %s/%s, want fam-1/%s", res.FamilyID, res.PlayerID, p.ID)
	}
	// The successor works in turn, and so on down the chain.
	rotate(t, s, "t2", "t3", at.Add(time.Hour), accounts.RefreshRotated)
	rotate(t, s, "t3", "t4", at.Add(2*time.Hour), accounts.RefreshRotated)
}

func testRefreshOutcomes(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	short := refreshToken("short", "fam-short", p.ID)
	short.ExpiresAt = t0.Add(time.Hour)
	mustCreateRefresh(t, s, short)
	mustCreateRefresh(t, s, refreshToken("live", "fam-live", p.ID))
	mustCreateRefresh(t, s, refreshToken("revoked", "fam-revoked", p.ID))
	if found, err := s.RevokeRefreshFamily(t.Context(), hashOf("revoked"), t0); !found || err != nil {
		t.Fatalf("RevokeRefreshFamily = %v, %v; want true, nil", found, err)
	}

	tests := []struct {
		name, token string
		at          time.Time
		want        accounts.RefreshOutcome
	}{
		{"unknown", "nope", t0, accounts.RefreshUnknown},
		{"unstorable", "\x00", t0, accounts.RefreshUnknown},
		{"empty", "", t0, accounts.RefreshUnknown},
		{"expired exactly at ExpiresAt", "short", t0.Add(time.Hour), accounts.RefreshExpired},
		{"expired later", "short", t0.Add(2 * time.Hour), accounts.RefreshExpired},
		{"revoked", "revoked", t0, accounts.RefreshRevoked},
		{"revoked stays revoked", "revoked", t0.Add(time.Minute), accounts.RefreshRevoked},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := hashOf(tt.token)
			if tt.token == "\x00" || tt.token == "" {
				hash = tt.token
			}
			res, err := s.RotateRefreshToken(t.Context(), hash, successor(fmt.Sprintf("next-%d", i), tt.at), tt.at)
			if err != nil || res.Outcome != tt.want {
				t.Fatalf("RotateRefreshToken = %s, %v; want %s", outcomeName(res.Outcome), err, outcomeName(tt.want))
			}
			// Nothing was written: the offered successor does not exist.
			res, err = s.RotateRefreshToken(t.Context(), hashOf(fmt.Sprintf("next-%d", i)), successor("x", tt.at), tt.at)
			if err != nil || res.Outcome != accounts.RefreshUnknown {
				t.Errorf("successor offered to a refused rotation: %s, %v; want unknown", outcomeName(res.Outcome), err)
			}
		})
	}
	// The live token was never touched by the refusals above.
	rotate(t, s, "live", "live-2", t0.Add(time.Minute), accounts.RefreshRotated)
	if found, err := s.RevokeRefreshFamily(t.Context(), hashOf("nope"), t0); found || err != nil {
		t.Errorf("RevokeRefreshFamily(unknown) = %v, %v; want false, nil", found, err)
	}
}

func testRefreshReuseRevokesWholeFamily(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	mustCreateRefresh(t, s, refreshToken("a1", "fam-a", p.ID))
	mustCreateRefresh(t, s, refreshToken("b1", "fam-b", p.ID)) // another device's login
	rotate(t, s, "a1", "a2", t0.Add(time.Minute), accounts.RefreshRotated)
	rotate(t, s, "a2", "a3", t0.Add(2*time.Minute), accounts.RefreshRotated)

	// The thief (or the victim) presents a1 again.
	res := rotate(t, s, "a1", "thief", t0.Add(3*time.Minute), accounts.RefreshReused)
	if res.FamilyID != "fam-a" || res.PlayerID != p.ID {
		t.Errorf("reuse result family/player = %s/%s, want fam-a/%s", res.FamilyID, res.PlayerID, p.ID)
	}
	// The newest token of the family is dead. a2, used before, is reuse
	// again: every presentation of a used token is reported.
	rotate(t, s, "a3", "a4", t0.Add(4*time.Minute), accounts.RefreshRevoked)
	rotate(t, s, "a2", "x", t0.Add(4*time.Minute), accounts.RefreshReused)
	rotate(t, s, "a3", "a4", t0.Add(4*time.Minute), accounts.RefreshRevoked)
	rotate(t, s, "thief", "x", t0.Add(4*time.Minute), accounts.RefreshUnknown)
	// The other login is untouched.
	rotate(t, s, "b1", "b2", t0.Add(5*time.Minute), accounts.RefreshRotated)
}

func testRefreshRevokeFamily(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	mustCreateRefresh(t, s, refreshToken("a1", "fam-a", p.ID))
	mustCreateRefresh(t, s, refreshToken("b1", "fam-b", p.ID))
	rotate(t, s, "a1", "a2", t0.Add(time.Minute), accounts.RefreshRotated)

	// Logging out with an old token of the family still ends the family,
	// and doing it again is fine.
	for range 2 {
		if found, err := s.RevokeRefreshFamily(t.Context(), hashOf("a1"), t0.Add(2*time.Minute)); !found || err != nil {
			t.Fatalf("RevokeRefreshFamily(a1) = %v, %v; want true, nil", found, err)
		}
	}
	rotate(t, s, "a2", "a3", t0.Add(3*time.Minute), accounts.RefreshRevoked)
	rotate(t, s, "b1", "b2", t0.Add(3*time.Minute), accounts.RefreshRotated)
	for _, h := range []string{hashOf("nope"), "", "\x00", "' OR '1'='1"} {
		if found, err := s.RevokeRefreshFamily(t.Context(), h, t0); found || err != nil {
			t.Errorf("RevokeRefreshFamily(%+q) = %v, %v; want false, nil", h, found, err)
		}
	}
	rotate(t, s, "b2", "b3", t0.Add(4*time.Minute), accounts.RefreshRotated)
}

func testRefreshCreateErrors(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	mustCreateRefresh(t, s, refreshToken("t1", "fam-1", p.ID))
	tests := []struct {
		name string
		rt   accounts.RefreshToken
		want apierr.Code
	}{
		{"duplicate hash", refreshToken("t1", "fam-2", p.ID), apierr.Conflict},
		{"unknown player", refreshToken("t2", "fam-2", "id-ghost"), apierr.NotFound},
		{"empty hash", func() accounts.RefreshToken { r := refreshToken("t3", "fam-3", p.ID); r.Hash = ""; return r }(), apierr.BadRequest},
		{"empty family", refreshToken("t4", "", p.ID), apierr.BadRequest},
		{"nul in family", refreshToken("t5", "f\x00", p.ID), apierr.BadRequest},
		{"no home cell", func() accounts.RefreshToken { r := refreshToken("t6", "fam-6", p.ID); r.HomeCell = ""; return r }(), apierr.BadRequest},
		{"expires before issued", func() accounts.RefreshToken {
			r := refreshToken("t7", "fam-7", p.ID)
			r.ExpiresAt = r.IssuedAt
			return r
		}(), apierr.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, "CreateRefreshToken", s.CreateRefreshToken(t.Context(), tt.rt), tt.want)
			if tt.rt.Hash != hashOf("t1") && tt.rt.Hash != "" {
				// Nothing was stored under the refused token's hash.
				res, err := s.RotateRefreshToken(t.Context(), tt.rt.Hash, successor("x-"+tt.name, t0), t0)
				if err != nil || res.Outcome != accounts.RefreshUnknown {
					t.Errorf("refused token rotates: %s, %v; want unknown", outcomeName(res.Outcome), err)
				}
			}
		})
	}
	// The first token survived the duplicate.
	res := rotate(t, s, "t1", "t1-next", t0.Add(time.Minute), accounts.RefreshRotated)
	if res.FamilyID != "fam-1" {
		t.Errorf("family of t1 = %s, want fam-1 (not overwritten by the duplicate)", res.FamilyID)
	}
}

// A successor whose hash collides with a stored token is refused as a
// whole: the presented token stays live.
func testRefreshNextHashCollision(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	mustCreateRefresh(t, s, refreshToken("t1", "fam-1", p.ID))
	mustCreateRefresh(t, s, refreshToken("other", "fam-2", p.ID))
	_, err := s.RotateRefreshToken(t.Context(), hashOf("t1"), successor("other", t0), t0)
	wantCode(t, "RotateRefreshToken(colliding successor)", err, apierr.Conflict)
	rotate(t, s, "t1", "t2", t0.Add(time.Minute), accounts.RefreshRotated)
	rotate(t, s, "other", "other-2", t0.Add(time.Minute), accounts.RefreshRotated)

	bad := successor("t3", t0)
	bad.ExpiresAt = bad.IssuedAt
	_, err = s.RotateRefreshToken(t.Context(), hashOf("t2"), bad, t0)
	wantCode(t, "RotateRefreshToken(successor expiring at once)", err, apierr.BadRequest)
	rotate(t, s, "t2", "t3", t0.Add(2*time.Minute), accounts.RefreshRotated)
}

// Concurrent presentations of one token: exactly one rotates, every other
// one is reuse, and the winner's successor ends up revoked with the family.
func testConcurrentRefreshSameToken(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	mustCreateRefresh(t, s, refreshToken("t1", "fam-1", p.ID))
	const n = 8
	results := make([]accounts.RefreshResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.RotateRefreshToken(t.Context(), hashOf("t1"), successor(fmt.Sprintf("next-%d", i), t0), t0)
		})
	}
	wg.Wait()
	winner := -1
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Errorf("RotateRefreshToken #%d = %v, want a result", i, errs[i])
		case results[i].Outcome == accounts.RefreshRotated && winner >= 0:
			t.Errorf("RotateRefreshToken #%d and #%d both rotated, want one", winner, i)
		case results[i].Outcome == accounts.RefreshRotated:
			winner = i
		case results[i].Outcome != accounts.RefreshReused:
			t.Errorf("RotateRefreshToken #%d outcome = %s, want rotated or reused", i, outcomeName(results[i].Outcome))
		}
	}
	if winner < 0 {
		t.Fatalf("no concurrent rotation won")
	}
	rotate(t, s, fmt.Sprintf("next-%d", winner), "later", t0.Add(time.Minute), accounts.RefreshRevoked)
	for i := range n {
		if i != winner {
			rotate(t, s, fmt.Sprintf("next-%d", i), "later", t0.Add(time.Minute), accounts.RefreshUnknown)
		}
	}
}

// A logout racing a refresh of the same family must not leave a live token
// behind: whichever commits first, the family ends revoked.
func testConcurrentRefreshAndLogout(t *testing.T, s accounts.Store) {
	p := withPlayer(t, s, "id-1", "eu-west")
	for round := range 8 {
		first := fmt.Sprintf("r%d-t1", round)
		mustCreateRefresh(t, s, refreshToken(first, fmt.Sprintf("fam-%d", round), p.ID))
		next := fmt.Sprintf("r%d-t2", round)
		var (
			wg     sync.WaitGroup
			res    accounts.RefreshResult
			rotErr error
			revErr error
		)
		wg.Go(func() { res, rotErr = s.RotateRefreshToken(t.Context(), hashOf(first), successor(next, t0), t0) })
		wg.Go(func() { _, revErr = s.RevokeRefreshFamily(t.Context(), hashOf(first), t0) })
		wg.Wait()
		if rotErr != nil || revErr != nil {
			t.Fatalf("round %d: rotate = %v, revoke = %v; want nil errors", round, rotErr, revErr)
		}
		if res.Outcome != accounts.RefreshRotated && res.Outcome != accounts.RefreshRevoked {
			t.Errorf("round %d: rotate outcome = %s, want rotated or revoked", round, outcomeName(res.Outcome))
		}
		if res.Outcome == accounts.RefreshRotated {
			rotate(t, s, next, fmt.Sprintf("r%d-t3", round), t0.Add(time.Minute), accounts.RefreshRevoked)
		}
	}
}
