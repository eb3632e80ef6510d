// Package storetest is the contract every catalog.Store implementation must
// pass. Each implementation's tests call Run with a constructor that returns
// a fresh, empty store.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalogapi"
)

// Run runs the contract suite.
func Run(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.Store)
	}{
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"Replace", testReplace},
		{"CheckSeesCatalogAndAborts", testCheckAborts},
		{"SQLMetacharacters", testMetacharacters},
		{"ConcurrentPuts", testConcurrentPuts},
		{"SnapshotsAreCopies", testSnapshotsAreCopies},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

func pass(catalogapi.Catalog) error { return nil }

// Hat is a cosmetic with every field set.
func Hat(id string) catalogapi.Item {
	return catalogapi.Item{
		ID: id, Kind: catalogapi.KindCosmetic, Rarity: catalogapi.RarityEpic, Slot: "head", LevelRequired: 5,
		Display: catalogapi.Display{Name: "Crimson hat", Description: "Red.", Icon: "icons/hat.png", Asset: "CosmeticItem:Hat_Crimson", Tags: []string{"red", "hat"}},
	}
}

// Offer sells one of itemID for 499 cents or euro cents, in a window.
func Offer(id, itemID string) catalogapi.Offer {
	from := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	until := from.Add(30 * 24 * time.Hour)
	return catalogapi.Offer{ID: id, ItemID: itemID, Quantity: 1, Prices: map[string]int64{"usd": 499, "eur": 459},
		AvailableFrom: &from, AvailableUntil: &until, Title: "Crimson hat"}
}

func mustCatalog(t *testing.T, s catalog.Store) catalogapi.Catalog {
	t.Helper()
	c, err := s.Catalog(t.Context())
	if err != nil {
		t.Fatalf("Catalog = %v, want nil", err)
	}
	return c
}

func testEmpty(t *testing.T, s catalog.Store) {
	c := mustCatalog(t, s)
	if c.Version != 0 || len(c.Items) != 0 || len(c.Offers) != 0 {
		t.Errorf("empty store: got %+v, want version 0 and nothing in it", c)
	}
	if c.Items == nil || c.Offers == nil {
		t.Errorf("empty store: items %v offers %v, want empty lists (they are JSON arrays)", c.Items, c.Offers)
	}
	v, err := s.Version(t.Context())
	if err != nil || v != 0 {
		t.Errorf("Version = %d, %v; want 0, nil", v, err)
	}
}

func testRoundTrip(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	gem := catalogapi.Item{ID: "gems.100", Kind: catalogapi.KindCurrencyPack, Rarity: catalogapi.RarityCommon, Display: catalogapi.Display{Name: "100 gems"}}
	bundle := catalogapi.Item{ID: "bundle.starter", Kind: catalogapi.KindBundle, Rarity: catalogapi.RarityRare,
		Display: catalogapi.Display{Name: "Starter"}, Contents: []catalogapi.Grant{{ItemID: "hat.crimson", Quantity: 1}, {ItemID: "gems.100", Quantity: 3}}}
	for i, it := range []catalogapi.Item{Hat("hat.crimson"), gem, bundle} {
		v, err := s.PutItem(ctx, it, pass)
		if err != nil || v != int64(i+1) {
			t.Fatalf("PutItem(%s) = %d, %v; want %d, nil", it.ID, v, err, i+1)
		}
	}
	open := catalogapi.Offer{ID: "gems.100.usd", ItemID: "gems.100", Quantity: 100, Prices: map[string]int64{"usd": 99}}
	for _, o := range []catalogapi.Offer{Offer("hat.crimson.launch", "hat.crimson"), open} {
		if _, err := s.PutOffer(ctx, o, pass); err != nil {
			t.Fatalf("PutOffer(%s) = %v", o.ID, err)
		}
	}
	c := mustCatalog(t, s)
	want := catalogapi.Catalog{
		Version: 5,
		Items:   []catalogapi.Item{bundle, gem, Hat("hat.crimson")},
		Offers:  []catalogapi.Offer{open, Offer("hat.crimson.launch", "hat.crimson")},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Catalog =\n%+v\nwant (sorted by id)\n%+v", c, want)
	}
	if v, err := s.Version(ctx); err != nil || v != 5 {
		t.Errorf("Version = %d, %v; want 5", v, err)
	}
}

func testReplace(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	if _, err := s.PutItem(ctx, Hat("hat"), pass); err != nil {
		t.Fatal(err)
	}
	changed := Hat("hat")
	changed.Rarity, changed.LevelRequired, changed.Display.Tags = catalogapi.RarityLegendary, 0, nil
	v, err := s.PutItem(ctx, changed, pass)
	if err != nil || v != 2 {
		t.Fatalf("second PutItem = %d, %v; want 2", v, err)
	}
	o := Offer("o", "hat")
	if _, err := s.PutOffer(ctx, o, pass); err != nil {
		t.Fatal(err)
	}
	o.Prices, o.AvailableFrom, o.AvailableUntil = map[string]int64{"gbp": 399}, nil, nil
	if _, err := s.PutOffer(ctx, o, pass); err != nil {
		t.Fatal(err)
	}
	c := mustCatalog(t, s)
	if len(c.Items) != 1 || !reflect.DeepEqual(c.Items[0], changed) {
		t.Errorf("items = %+v, want only %+v", c.Items, changed)
	}
	if len(c.Offers) != 1 || !reflect.DeepEqual(c.Offers[0], o) {
		t.Errorf("offers = %+v, want only %+v", c.Offers, o)
	}
	if c.Version != 4 {
		t.Errorf("version = %d, want 4", c.Version)
	}
}

func testCheckAborts(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	if _, err := s.PutItem(ctx, Hat("a"), pass); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused by check")
	var seen catalogapi.Catalog
	_, err := s.PutItem(ctx, Hat("b"), func(c catalogapi.Catalog) error { seen = c; return refuse })
	if !errors.Is(err, refuse) {
		t.Fatalf("PutItem with a failing check = %v, want the check's error", err)
	}
	if seen.Version != 1 || len(seen.Items) != 1 || seen.Items[0].ID != "a" {
		t.Errorf("check saw %+v, want version 1 holding item a", seen)
	}
	if _, err := s.PutOffer(ctx, Offer("o", "a"), func(catalogapi.Catalog) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("PutOffer with a failing check = %v, want the check's error", err)
	}
	c := mustCatalog(t, s)
	if c.Version != 1 || len(c.Items) != 1 || len(c.Offers) != 0 {
		t.Errorf("after refused writes: %+v, want version 1, item a only", c)
	}
}

func testMetacharacters(t *testing.T, s catalog.Store) {
	it := Hat("quote")
	it.Display.Name = `Robert'); DROP TABLE catalog_items;-- "é" \ %`
	it.Display.Description = "line\nbreak\ttab ünïcode 🎩"
	if _, err := s.PutItem(t.Context(), it, pass); err != nil {
		t.Fatal(err)
	}
	c := mustCatalog(t, s)
	if len(c.Items) != 1 || !reflect.DeepEqual(c.Items[0], it) {
		t.Errorf("got %+v, want %+v", c.Items, it)
	}
}

func testConcurrentPuts(t *testing.T, s catalog.Store) {
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := s.PutItem(t.Context(), Hat(fmt.Sprintf("hat.%02d", i)), pass); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent PutItem = %v", err)
	}
	c := mustCatalog(t, s)
	if c.Version != n || len(c.Items) != n {
		t.Errorf("after %d concurrent puts: version %d, %d items; want %d and %d", n, c.Version, len(c.Items), n, n)
	}
}

func testSnapshotsAreCopies(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	if _, err := s.PutItem(ctx, Hat("hat"), pass); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutOffer(ctx, Offer("o", "hat"), pass); err != nil {
		t.Fatal(err)
	}
	c := mustCatalog(t, s)
	c.Items[0].Display.Tags[0] = "changed"
	c.Offers[0].Prices["usd"] = 1
	again := mustCatalog(t, s)
	if again.Items[0].Display.Tags[0] != "red" || again.Offers[0].Prices["usd"] != 499 {
		t.Errorf("changing a returned catalog changed the store: %+v", again)
	}
}
