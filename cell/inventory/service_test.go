package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventory/memstore"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

type fixedCatalog catalogapi.Catalog

func (c fixedCatalog) Catalog(context.Context) (catalogapi.Catalog, error) {
	return catalogapi.Catalog(c), nil
}

func testCatalog() fixedCatalog {
	return fixedCatalog{Version: 1, Items: []catalogapi.Item{
		{ID: "hat.crimson", Kind: catalogapi.KindCosmetic, Rarity: catalogapi.RarityEpic, Slot: "head", Display: catalogapi.Display{Name: "Hat"}},
		{ID: "crown.aurora", Kind: catalogapi.KindCosmetic, Rarity: catalogapi.RarityLegendary, Slot: "head", LevelRequired: 20, Display: catalogapi.Display{Name: "Crown"}},
		{ID: "gems.100", Kind: catalogapi.KindCurrencyPack, Rarity: catalogapi.RarityCommon, Display: catalogapi.Display{Name: "Gems"}},
	}}
}

// tokens: "tok-<player>" is a player of eu-west, "far-<player>" one of us-east.
type tokens struct{}

func (tokens) VerifyPlayer(tok string) (string, string, error) {
	switch {
	case strings.HasPrefix(tok, "tok-"):
		return strings.TrimPrefix(tok, "tok-"), "eu-west", nil
	case strings.HasPrefix(tok, "far-"):
		return strings.TrimPrefix(tok, "far-"), "us-east", nil
	}
	return "", "", apierr.New(apierr.InvalidToken, "bad token")
}

type pushes struct {
	mu  sync.Mutex
	got []protocol.Push
	to  []string
}

func (p *pushes) Push(ctx context.Context, playerID string, push protocol.Push) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, push)
	p.to = append(p.to, playerID)
	return nil
}

func (p *pushes) all() ([]protocol.Push, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]protocol.Push(nil), p.got...), append([]string(nil), p.to...)
}

type env struct {
	svc    *inventory.Service
	store  *memstore.Store
	pushes *pushes
	h      http.Handler
}

func newEnv(t *testing.T, level int) *env {
	t.Helper()
	e := &env{store: memstore.New(), pushes: &pushes{}}
	svc, err := inventory.New(inventory.Config{CellID: "eu-west"}, inventory.Deps{
		Store: e.store, Catalog: testCatalog(), Levels: inventory.FixedLevel(level), Push: e.pushes, Verify: tokens{},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, e.h = svc, svc.Handler()
	return e
}

func purchaseEvent(t *testing.T, typ, purchaseID, player string, grants ...catalogapi.Grant) events.Event {
	t.Helper()
	e, err := events.New(typ, player, "eu-west", time.Now(), storeapi.PurchaseEvent{
		PurchaseID: purchaseID, PlayerID: player, HomeCell: "eu-west", OfferID: "o", Grants: grants, PaidAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestFulfillmentGrantsOncePushesAndRefundRevokes(t *testing.T) {
	e := newEnv(t, 1)
	ctx := t.Context()
	grant := purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1", catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1})
	for range 2 { // a redelivery changes nothing
		if err := e.svc.HandleEvent(ctx, grant); err != nil {
			t.Fatal(err)
		}
	}
	inv, _ := e.svc.Inventory(ctx, "p1")
	if inv.Owns("hat.crimson") != 1 || inv.Version != 1 {
		t.Fatalf("after a purchase delivered twice: %+v, want one hat at version 1", inv)
	}
	if _, err := e.svc.Equip(ctx, "p1", "eu-west", inventoryapi.EquipRequest{Slot: "head", ItemID: "hat.crimson"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.HandleEvent(ctx, purchaseEvent(t, storeapi.TypePurchaseRefunded, "pur-1", "p1")); err != nil {
		t.Fatal(err)
	}
	inv, _ = e.svc.Inventory(ctx, "p1")
	if inv.Owns("hat.crimson") != 0 || len(inv.Loadout) != 0 {
		t.Fatalf("after the refund: %+v, want the hat gone and unequipped", inv)
	}
	got, to := e.pushes.all()
	if len(got) != 3 {
		t.Fatalf("pushes = %+v, want three (grant, its redelivery, refund)", got)
	}
	for i, p := range got {
		if p.Topic != inventoryapi.TopicUpdated || to[i] != "p1" {
			t.Errorf("push %d = %s to %s, want %s to p1", i, p.Topic, to[i], inventoryapi.TopicUpdated)
		}
	}
	if got[0].ID != grant.ID || got[1].ID != grant.ID {
		t.Errorf("push ids %q %q, want the event id %q on both so the client can skip the repeat", got[0].ID, got[1].ID, grant.ID)
	}
	var last inventoryapi.Updated
	if err := json.Unmarshal(got[2].Data, &last); err != nil || last.Reason != inventoryapi.ReasonRefund || last.PurchaseID != "pur-1" || last.Version != inv.Version {
		t.Errorf("refund push data = %s (%v), want reason refund, purchase pur-1, version %d", got[2].Data, err, inv.Version)
	}
}

func TestPoisonEventsArePermanent(t *testing.T) {
	e := newEnv(t, 1)
	good := purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1", catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1})
	tests := map[string]func(*events.Event){
		"not JSON":     func(ev *events.Event) { ev.Payload = []byte(`"x"`) },
		"other player": func(ev *events.Event) { ev.PlayerID = "p2" },
		"unknown type": func(ev *events.Event) { ev.Type = "store.purchase.exploded" },
		"no purchase id": func(ev *events.Event) {
			ev.Payload = []byte(`{"player_id":"p1","home_cell":"eu-west","grants":[{"item_id":"hat.crimson","quantity":1}]}`)
		},
		"nothing granted": func(ev *events.Event) {
			ev.Payload = []byte(`{"purchase_id":"x","player_id":"p1","home_cell":"eu-west","grants":[]}`)
		},
		"negative quantity": func(ev *events.Event) {
			ev.Payload = []byte(`{"purchase_id":"x","player_id":"p1","home_cell":"eu-west","grants":[{"item_id":"gems.100","quantity":-5}]}`)
		},
		"absurd quantity": func(ev *events.Event) {
			ev.Payload = []byte(`{"purchase_id":"x","player_id":"p1","home_cell":"eu-west","grants":[{"item_id":"gems.100","quantity":2000000000}]}`)
		},
	}
	for name, mutate := range tests {
		ev := good
		mutate(&ev)
		if err := e.svc.HandleEvent(t.Context(), ev); !events.IsPermanent(err) {
			t.Errorf("%s: HandleEvent = %v, want a Permanent error", name, err)
		}
	}
	for _, p := range []string{"p1", "p2"} {
		if inv, _ := e.svc.Inventory(t.Context(), p); len(inv.Items) != 0 {
			t.Errorf("poison events granted %s %+v", p, inv.Items)
		}
	}
}

type failingStore struct{ *memstore.Store }

func (failingStore) Grant(context.Context, inventory.Grant) (bool, inventoryapi.Inventory, error) {
	return false, inventoryapi.Inventory{}, errors.New("connection refused")
}

func TestStoreFailureIsTransient(t *testing.T) {
	svc, err := inventory.New(inventory.Config{CellID: "eu-west"}, inventory.Deps{Store: failingStore{memstore.New()}, Catalog: testCatalog(), Verify: tokens{}})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.HandleEvent(t.Context(), purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1", catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1}))
	if err == nil || events.IsPermanent(err) {
		t.Fatalf("HandleEvent with the database down = %v, want a transient error (retried, not dead-lettered)", err)
	}
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (*httptest.ResponseRecorder, httpapi.ErrorBody) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var eb httpapi.ErrorBody
	if rec.Code >= 400 {
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
	}
	return rec, eb
}

func TestEquipIsValidatedServerSide(t *testing.T) {
	e := newEnv(t, 1)
	if err := e.svc.HandleEvent(t.Context(), purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1",
		catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1}, catalogapi.Grant{ItemID: "crown.aurora", Quantity: 1}, catalogapi.Grant{ItemID: "gems.100", Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, body string
		code              apierr.Code
		msg               string
	}{
		{"no token", "", `{"slot":"head","item_id":"hat.crimson"}`, apierr.Unauthenticated, "bearer"},
		{"bad token", "junk", `{"slot":"head","item_id":"hat.crimson"}`, apierr.InvalidToken, ""},
		{"other cell's player", "far-p1", `{"slot":"head","item_id":"hat.crimson"}`, apierr.PermissionDenied, "us-east"},
		{"not owned", "tok-p2", `{"slot":"head","item_id":"hat.crimson"}`, apierr.PermissionDenied, "do not own"},
		{"unknown item", "tok-p1", `{"slot":"head","item_id":"hat.nope"}`, apierr.NotFound, "not in the catalog"},
		{"wrong slot", "tok-p1", `{"slot":"body","item_id":"hat.crimson"}`, apierr.BadRequest, `goes in slot "head"`},
		{"not equippable", "tok-p1", `{"slot":"head","item_id":"gems.100"}`, apierr.BadRequest, "cannot be equipped"},
		{"level too low", "tok-p1", `{"slot":"head","item_id":"crown.aurora"}`, apierr.PermissionDenied, "needs level 20; you are level 1"},
		{"bad slot name", "tok-p1", `{"slot":"Head!","item_id":"hat.crimson"}`, apierr.BadRequest, "slot"},
		{"unknown field", "tok-p1", `{"slot":"head","item":"hat.crimson"}`, apierr.BadRequest, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, eb := do(t, e.h, "PUT", inventoryapi.PathLoadout, tt.token, tt.body)
			if eb.Code != tt.code || !strings.Contains(eb.Message, tt.msg) {
				t.Errorf("PUT loadout: %d %s, want %s mentioning %q", rec.Code, rec.Body, tt.code, tt.msg)
			}
		})
	}
	inv, _ := e.svc.Inventory(t.Context(), "p1")
	if len(inv.Loadout) != 0 || inv.Version != 1 {
		t.Fatalf("refused equips changed the inventory: %+v", inv)
	}
	rec, _ := do(t, e.h, "PUT", inventoryapi.PathLoadout, "tok-p1", `{"slot":"head","item_id":"hat.crimson"}`)
	var got inventoryapi.Inventory
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.Loadout["head"] != "hat.crimson" {
		t.Fatalf("valid equip: %d %s", rec.Code, rec.Body)
	}
	rec, _ = do(t, e.h, "GET", inventoryapi.PathInventory, "tok-p1", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"head":"hat.crimson"`) {
		t.Fatalf("GET inventory: %d %s", rec.Code, rec.Body)
	}

	// A higher level unlocks the crown.
	high := newEnv(t, 20)
	if err := high.svc.HandleEvent(t.Context(), purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-9", "p1", catalogapi.Grant{ItemID: "crown.aurora", Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	if _, err := high.svc.Equip(t.Context(), "p1", "eu-west", inventoryapi.EquipRequest{Slot: "head", ItemID: "crown.aurora"}); err != nil {
		t.Fatalf("level-20 player equipping the crown = %v, want nil", err)
	}
}

func TestOps(t *testing.T) {
	e := newEnv(t, 1)
	if err := e.svc.HandleEvent(t.Context(), purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1", catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	ops := e.svc.Ops()
	caller := protocol.Caller{PlayerID: "p1", Cell: "eu-west"}
	b, err := ops[protocol.OpInventoryEquip](t.Context(), caller, []byte(`{"slot":"head","item_id":"hat.crimson"}`))
	if err != nil || !strings.Contains(string(b), `"head":"hat.crimson"`) {
		t.Fatalf("inventory.equip = %s, %v", b, err)
	}
	b, err = ops[protocol.OpInventoryGet](t.Context(), caller, nil)
	var inv inventoryapi.Inventory
	if err != nil || json.Unmarshal(b, &inv) != nil || inv.Owns("hat.crimson") != 1 {
		t.Fatalf("inventory.get = %s, %v", b, err)
	}
	if _, err := ops[protocol.OpInventoryEquip](t.Context(), protocol.Caller{PlayerID: "p2"}, []byte(`{"slot":"head","item_id":"hat.crimson"}`)); apierr.CodeOf(err) != apierr.PermissionDenied {
		t.Fatalf("equip of another's item over the gateway = %v, want permission_denied", err)
	}
	if _, err := ops[protocol.OpInventoryGet](t.Context(), caller, []byte(`{"player_id":"p2"}`)); apierr.CodeOf(err) != apierr.BadRequest {
		t.Fatalf("inventory.get naming another player = %v, want bad_request", err)
	}
}
