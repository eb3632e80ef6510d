// Package storetest is the contract every inventory.Store implementation
// must pass, the exactly-once properties of grants and revokes first.
package storetest

import (
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/internal/apierr"
)

// Run runs the contract suite; newStore returns an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) inventory.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s inventory.Store)
	}{
		{"Empty", testEmpty},
		{"GrantOnce", testGrantOnce},
		{"GrantsAccumulate", testGrantsAccumulate},
		{"RevokeTakesBackAndUnequips", testRevoke},
		{"RevokeBeforeGrantBlocksIt", testRevokeBeforeGrant},
		{"RevokeOneOfTwoKeepsTheItem", testRevokeOneOfTwo},
		{"Equip", testEquip},
		{"PlayersAreSeparate", testPlayersSeparate},
		{"ConcurrentSameGrant", testConcurrentSameGrant},
		{"ConcurrentGrantAndRevoke", testConcurrentGrantAndRevoke},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

const home = "eu-west"

func grant(id, player string, items ...catalogapi.Grant) inventory.Grant {
	return inventory.Grant{ID: id, PlayerID: player, HomeCell: home, Items: items}
}

func hat(n int) catalogapi.Grant  { return catalogapi.Grant{ItemID: "hat.crimson", Quantity: n} }
func gems(n int) catalogapi.Grant { return catalogapi.Grant{ItemID: "gems.100", Quantity: n} }

func mustGrant(t *testing.T, s inventory.Store, g inventory.Grant, wantApplied bool) inventoryapi.Inventory {
	t.Helper()
	applied, inv, err := s.Grant(t.Context(), g)
	if err != nil || applied != wantApplied {
		t.Fatalf("Grant(%s) = %v, %v; want applied=%v", g.ID, applied, err, wantApplied)
	}
	return inv
}

func mustRevoke(t *testing.T, s inventory.Store, id, player string, wantApplied bool) inventoryapi.Inventory {
	t.Helper()
	applied, inv, err := s.Revoke(t.Context(), inventory.Revoke{ID: id, PlayerID: player, HomeCell: home})
	if err != nil || applied != wantApplied {
		t.Fatalf("Revoke(%s) = %v, %v; want applied=%v", id, applied, err, wantApplied)
	}
	return inv
}

func mustInventory(t *testing.T, s inventory.Store, player string) inventoryapi.Inventory {
	t.Helper()
	inv, err := s.Inventory(t.Context(), player)
	if err != nil {
		t.Fatalf("Inventory(%s) = %v", player, err)
	}
	return inv
}

// owned summarises an inventory as item → quantity.
func owned(inv inventoryapi.Inventory) map[string]int {
	out := map[string]int{}
	for _, it := range inv.Items {
		out[it.ItemID] = it.Quantity
	}
	return out
}

func testEmpty(t *testing.T, s inventory.Store) {
	inv := mustInventory(t, s, "p1")
	if inv.PlayerID != "p1" || inv.Version != 0 || len(inv.Items) != 0 || len(inv.Loadout) != 0 {
		t.Errorf("unknown player: %+v, want p1 at version 0 with nothing", inv)
	}
	if inv.Items == nil || inv.Loadout == nil {
		t.Errorf("unknown player: items %v loadout %v, want empty (JSON [] and {}), not nil", inv.Items, inv.Loadout)
	}
}

func testGrantOnce(t *testing.T, s inventory.Store) {
	inv := mustGrant(t, s, grant("pur-1", "p1", hat(1), gems(3)), true)
	if got, want := owned(inv), map[string]int{"hat.crimson": 1, "gems.100": 3}; !maps.Equal(got, want) || inv.Version != 1 {
		t.Fatalf("after grant: %v at version %d, want %v at version 1", got, inv.Version, want)
	}
	for _, it := range inv.Items {
		if it.AcquiredAt.IsZero() {
			t.Errorf("item %s has no acquired_at", it.ItemID)
		}
	}
	again := mustGrant(t, s, grant("pur-1", "p1", hat(1), gems(3)), false)
	if !reflect.DeepEqual(again, inv) {
		t.Fatalf("redelivered grant changed the inventory: %+v, want %+v", again, inv)
	}
}

func testGrantsAccumulate(t *testing.T, s inventory.Store) {
	mustGrant(t, s, grant("pur-1", "p1", gems(1)), true)
	inv := mustGrant(t, s, grant("pur-2", "p1", gems(2)), true)
	if owned(inv)["gems.100"] != 3 || inv.Version != 2 {
		t.Fatalf("two grants: %v at version %d, want 3 gems at version 2", owned(inv), inv.Version)
	}
}

func testRevoke(t *testing.T, s inventory.Store) {
	mustGrant(t, s, grant("pur-1", "p1", hat(1)), true)
	mustGrant(t, s, grant("pur-2", "p1", catalogapi.Grant{ItemID: "jacket.ember", Quantity: 1}), true)
	if _, err := s.Equip(t.Context(), "p1", home, "head", "hat.crimson"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Equip(t.Context(), "p1", home, "body", "jacket.ember"); err != nil {
		t.Fatal(err)
	}
	inv := mustRevoke(t, s, "pur-1", "p1", true)
	if got := owned(inv); !maps.Equal(got, map[string]int{"jacket.ember": 1}) {
		t.Fatalf("after revoking the hat: owned %v, want only the jacket", got)
	}
	if !maps.Equal(inv.Loadout, map[string]string{"body": "jacket.ember"}) {
		t.Fatalf("after revoking the hat: loadout %v, want the hat unequipped and the jacket kept", inv.Loadout)
	}
	if inv.Version != 5 {
		t.Errorf("version = %d, want 5 (two grants, two equips, one revoke)", inv.Version)
	}
	again := mustRevoke(t, s, "pur-1", "p1", false)
	if !reflect.DeepEqual(again, inv) {
		t.Fatalf("redelivered revoke changed the inventory: %+v, want %+v", again, inv)
	}
	if _, err := s.Equip(t.Context(), "p1", home, "head", "hat.crimson"); apierr.CodeOf(err) != apierr.PermissionDenied {
		t.Fatalf("equipping a revoked item = %v, want permission_denied", err)
	}
}

func testRevokeBeforeGrant(t *testing.T, s inventory.Store) {
	inv := mustRevoke(t, s, "pur-1", "p1", false)
	if len(inv.Items) != 0 {
		t.Fatalf("revoke of an unknown grant gave %+v", inv)
	}
	inv = mustGrant(t, s, grant("pur-1", "p1", hat(1)), false)
	if len(inv.Items) != 0 {
		t.Fatalf("a grant arriving after its refund was applied: %+v", inv)
	}
}

func testRevokeOneOfTwo(t *testing.T, s inventory.Store) {
	mustGrant(t, s, grant("pur-1", "p1", hat(1)), true)
	mustGrant(t, s, grant("pur-2", "p1", hat(1)), true)
	if _, err := s.Equip(t.Context(), "p1", home, "head", "hat.crimson"); err != nil {
		t.Fatal(err)
	}
	inv := mustRevoke(t, s, "pur-2", "p1", true)
	if owned(inv)["hat.crimson"] != 1 || inv.Loadout["head"] != "hat.crimson" {
		t.Fatalf("refunding one of two hats: %v, loadout %v; want one hat, still worn", owned(inv), inv.Loadout)
	}
}

func testEquip(t *testing.T, s inventory.Store) {
	ctx := t.Context()
	if _, err := s.Equip(ctx, "p1", home, "head", "hat.crimson"); apierr.CodeOf(err) != apierr.PermissionDenied {
		t.Fatalf("equip of an item not owned = %v, want permission_denied", err)
	}
	if inv := mustInventory(t, s, "p1"); inv.Version != 0 || len(inv.Loadout) != 0 {
		t.Fatalf("refused equip changed the inventory: %+v", inv)
	}
	mustGrant(t, s, grant("pur-1", "p1", hat(1)), true)
	inv, err := s.Equip(ctx, "p1", home, "head", "hat.crimson")
	if err != nil || inv.Loadout["head"] != "hat.crimson" || inv.Version != 2 {
		t.Fatalf("equip = %+v, %v; want the hat worn at version 2", inv, err)
	}
	if inv, err = s.Equip(ctx, "p1", home, "head", "hat.crimson"); err != nil || inv.Version != 2 {
		t.Fatalf("equip of what is already worn = %+v, %v; want no change (version 2)", inv, err)
	}
	if inv, err = s.Equip(ctx, "p1", home, "head", ""); err != nil || len(inv.Loadout) != 0 || inv.Version != 3 {
		t.Fatalf("clearing the slot = %+v, %v; want an empty loadout at version 3", inv, err)
	}
	if inv, err = s.Equip(ctx, "p1", home, "head", ""); err != nil || inv.Version != 3 {
		t.Fatalf("clearing an empty slot = %+v, %v; want no change", inv, err)
	}
}

func testPlayersSeparate(t *testing.T, s inventory.Store) {
	mustGrant(t, s, grant("pur-1", "p1", hat(1)), true)
	if inv := mustInventory(t, s, "p2"); len(inv.Items) != 0 {
		t.Fatalf("p2 sees p1's items: %+v", inv)
	}
	if _, err := s.Equip(t.Context(), "p2", home, "head", "hat.crimson"); apierr.CodeOf(err) != apierr.PermissionDenied {
		t.Fatalf("p2 equipping p1's hat = %v, want permission_denied", err)
	}
}

// The heart of exactly-once: one purchase delivered many times at once.
func testConcurrentSameGrant(t *testing.T, s inventory.Store) {
	const n = 8
	var (
		wg      sync.WaitGroup
		applied atomic.Int32
	)
	for range n {
		wg.Go(func() {
			ok, _, err := s.Grant(t.Context(), grant("pur-1", "p1", gems(5)))
			if err != nil {
				t.Error(err)
			}
			if ok {
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	inv := mustInventory(t, s, "p1")
	if applied.Load() != 1 || owned(inv)["gems.100"] != 5 || inv.Version != 1 {
		t.Fatalf("%d concurrent deliveries: applied %d times, %v at version %d; want once, 5 gems, version 1", n, applied.Load(), owned(inv), inv.Version)
	}
}

func testConcurrentGrantAndRevoke(t *testing.T, s inventory.Store) {
	for i := range 6 {
		id := "pur-" + string(rune('a'+i))
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, _, err := s.Grant(t.Context(), grant(id, "p1", gems(1))); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, _, err := s.Revoke(t.Context(), inventory.Revoke{ID: id, PlayerID: "p1", HomeCell: home}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}
	// Whichever came first, a refunded purchase leaves nothing behind.
	if inv := mustInventory(t, s, "p1"); len(inv.Items) != 0 {
		t.Fatalf("after granting and refunding six purchases concurrently: %v, want nothing", owned(inv))
	}
}
