package catalog_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalog/memstore"
	"github.com/livecell/livecell/cell/catalog/storetest"
	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/protocol"
)

// admins accepts "admin-token" with every scope, "ops-token" with no
// catalog scope, and nothing else.
type admins struct{}

func (admins) VerifyServer(tok, scope string) (string, error) {
	switch tok {
	case "admin-token":
		return "ops-console", nil
	case "ops-token":
		return "", apierr.New(apierr.PermissionDenied, "token lacks scope %s", scope)
	default:
		return "", apierr.New(apierr.InvalidToken, "bad signature")
	}
}

func newService(t *testing.T) (*catalog.Service, http.Handler) {
	t.Helper()
	svc, err := catalog.New(catalog.Config{CacheFor: -1}, catalog.Deps{Store: memstore.New(), Admin: admins{}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, svc.Handler()
}

func do(t *testing.T, h http.Handler, method, path, token string, body any, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		r = httptest.NewRequest(method, path, strings.NewReader(string(b)))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) apierr.Code {
	t.Helper()
	var b httpapi.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	return b.Code
}

func TestCatalogETag(t *testing.T) {
	_, h := newService(t)
	rec := do(t, h, "GET", catalogapi.PathCatalog, "", nil)
	if rec.Code != 200 || rec.Header().Get("ETag") != catalogapi.ETag(0) {
		t.Fatalf("GET empty catalog: %d ETag %q, want 200 %s", rec.Code, rec.Header().Get("ETag"), catalogapi.ETag(0))
	}
	if rec := do(t, h, "GET", catalogapi.PathCatalog, "", nil, "If-None-Match", catalogapi.ETag(0)); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("GET with the current ETag: %d %q, want 304 and no body", rec.Code, rec.Body)
	}
	if rec := do(t, h, "PUT", catalogapi.PathAdminItems+"/hat", "admin-token", storetest.Hat("hat")); rec.Code != 200 || rec.Header().Get("ETag") != catalogapi.ETag(1) {
		t.Fatalf("PUT item: %d %s ETag %q, want 200 with ETag %s", rec.Code, rec.Body, rec.Header().Get("ETag"), catalogapi.ETag(1))
	}
	rec = do(t, h, "GET", catalogapi.PathCatalog, "", nil, "If-None-Match", `W/"x", `+catalogapi.ETag(0))
	if rec.Code != 200 || rec.Header().Get("ETag") != catalogapi.ETag(1) {
		t.Fatalf("GET with a stale ETag: %d ETag %q, want 200 %s", rec.Code, rec.Header().Get("ETag"), catalogapi.ETag(1))
	}
	var c catalogapi.Catalog
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || c.Version != 1 || len(c.Items) != 1 {
		t.Fatalf("catalog body %s (%v), want version 1 with one item", rec.Body, err)
	}
}

func TestAdminNeedsServerCredentialWithScope(t *testing.T) {
	_, h := newService(t)
	tests := []struct {
		token string
		want  int
		code  apierr.Code
	}{
		{"", 401, apierr.Unauthenticated},
		{"player-token", 401, apierr.InvalidToken},
		{"ops-token", 403, apierr.PermissionDenied},
	}
	for _, tt := range tests {
		for _, path := range []string{catalogapi.PathAdminItems + "/hat", catalogapi.PathAdminOffers + "/o"} {
			rec := do(t, h, "PUT", path, tt.token, storetest.Hat("hat"))
			if rec.Code != tt.want || errorCode(t, rec) != tt.code {
				t.Errorf("PUT %s with token %q: %d %s, want %d %s", path, tt.token, rec.Code, rec.Body, tt.want, tt.code)
			}
		}
	}
	rec := do(t, h, "GET", catalogapi.PathCatalog, "", nil)
	if rec.Header().Get("ETag") != catalogapi.ETag(0) {
		t.Errorf("refused writes changed the catalog: ETag %q", rec.Header().Get("ETag"))
	}
}

func TestAdminRefusesBadEntries(t *testing.T) {
	_, h := newService(t)
	if rec := do(t, h, "PUT", catalogapi.PathAdminItems+"/hat", "admin-token", storetest.Hat("hat")); rec.Code != 200 {
		t.Fatalf("PUT hat: %d %s", rec.Code, rec.Body)
	}
	gems := catalogapi.Item{ID: "gems", Kind: catalogapi.KindCurrencyPack, Rarity: catalogapi.RarityCommon, Display: catalogapi.Display{Name: "Gems"}}
	if rec := do(t, h, "PUT", catalogapi.PathAdminItems+"/gems", "admin-token", gems); rec.Code != 200 {
		t.Fatalf("PUT gems: %d %s", rec.Code, rec.Body)
	}
	item := func(f func(*catalogapi.Item)) catalogapi.Item { it := storetest.Hat("x"); f(&it); return it }
	offer := func(f func(*catalogapi.Offer)) catalogapi.Offer { o := storetest.Offer("o", "hat"); f(&o); return o }
	tests := []struct {
		name, path string
		body       any
		code       apierr.Code
		msg        string
	}{
		{"id mismatch", "/x", item(func(it *catalogapi.Item) { it.ID = "y" }), apierr.BadRequest, "differs from the path"},
		{"bad id", "/X!", item(func(it *catalogapi.Item) { it.ID = "" }), apierr.BadRequest, "id"},
		{"unknown kind", "/x", item(func(it *catalogapi.Item) { it.Kind = "weapon" }), apierr.BadRequest, "kind"},
		{"unknown rarity", "/x", item(func(it *catalogapi.Item) { it.Rarity = "mythic" }), apierr.BadRequest, "rarity"},
		{"negative level", "/x", item(func(it *catalogapi.Item) { it.LevelRequired = -1 }), apierr.BadRequest, "level_required"},
		{"absurd level", "/x", item(func(it *catalogapi.Item) { it.LevelRequired = 1 << 30 }), apierr.BadRequest, "level_required"},
		{"no name", "/x", item(func(it *catalogapi.Item) { it.Display.Name = " " }), apierr.BadRequest, "display.name"},
		{"slot on currency", "/x", item(func(it *catalogapi.Item) { it.Kind = catalogapi.KindCurrencyPack }), apierr.BadRequest, "slot"},
		{"bundle of nothing", "/x", item(func(it *catalogapi.Item) { it.Kind, it.Slot = catalogapi.KindBundle, "" }), apierr.BadRequest, "contents"},
		{"bundle of unknown item", "/x", item(func(it *catalogapi.Item) {
			it.Kind, it.Slot, it.Contents = catalogapi.KindBundle, "", []catalogapi.Grant{{ItemID: "nope", Quantity: 1}}
		}), apierr.BadRequest, "not in the catalog"},
		{"bundle with two hats", "/x", item(func(it *catalogapi.Item) {
			it.Kind, it.Slot, it.Contents = catalogapi.KindBundle, "", []catalogapi.Grant{{ItemID: "hat", Quantity: 2}}
		}), apierr.BadRequest, "quantity must be 1"},
		{"kind change", "/hat", item(func(it *catalogapi.Item) { it.ID, it.Kind, it.Slot = "hat", catalogapi.KindCurrencyPack, "" }), apierr.Conflict, "never changes"},
		{"unknown field", "/x", `{"id":"x","price":1}`, apierr.BadRequest, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, h, "PUT", catalogapi.PathAdminItems+tt.path, "admin-token", tt.body)
			if errorCode(t, rec) != tt.code || !strings.Contains(rec.Body.String(), tt.msg) {
				t.Errorf("PUT item: %d %s, want %s mentioning %q", rec.Code, rec.Body, tt.code, tt.msg)
			}
		})
	}
	offers := []struct {
		name string
		body catalogapi.Offer
		msg  string
	}{
		{"unknown item", offer(func(o *catalogapi.Offer) { o.ItemID = "nope" }), "not in the catalog"},
		{"no price", offer(func(o *catalogapi.Offer) { o.Prices = nil }), "prices"},
		{"negative price", offer(func(o *catalogapi.Offer) { o.Prices = map[string]int64{"usd": -5} }), "amount"},
		{"absurd price", offer(func(o *catalogapi.Offer) { o.Prices = map[string]int64{"usd": 1 << 40} }), "amount"},
		{"bad currency", offer(func(o *catalogapi.Offer) { o.Prices = map[string]int64{"US$": 5} }), "currency"},
		{"zero quantity", offer(func(o *catalogapi.Offer) { o.Quantity = 0 }), "quantity"},
		{"absurd quantity", offer(func(o *catalogapi.Offer) { o.ItemID, o.Quantity = "gems", 1<<31-1 }), "quantity"},
		{"two of a hat", offer(func(o *catalogapi.Offer) { o.Quantity = 2 }), "owned once"},
		{"window backwards", offer(func(o *catalogapi.Offer) { o.AvailableFrom, o.AvailableUntil = o.AvailableUntil, o.AvailableFrom }), "available_until"},
	}
	for _, tt := range offers {
		t.Run("offer "+tt.name, func(t *testing.T) {
			rec := do(t, h, "PUT", catalogapi.PathAdminOffers+"/o", "admin-token", tt.body)
			if errorCode(t, rec) != apierr.BadRequest || !strings.Contains(rec.Body.String(), tt.msg) {
				t.Errorf("PUT offer: %d %s, want bad_request mentioning %q", rec.Code, rec.Body, tt.msg)
			}
		})
	}
	rec := do(t, h, "GET", catalogapi.PathCatalog, "", nil)
	if rec.Header().Get("ETag") != catalogapi.ETag(2) {
		t.Errorf("refused writes changed the catalog: ETag %q, want %s", rec.Header().Get("ETag"), catalogapi.ETag(2))
	}
}

func TestOpGet(t *testing.T) {
	svc, _ := newService(t)
	if err := svc.Seed(t.Context(), mustDev(t)); err != nil {
		t.Fatal(err)
	}
	get := svc.Ops()[protocol.OpCatalogGet]
	b, err := get(t.Context(), protocol.Caller{PlayerID: "p"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c catalogapi.Catalog
	if err := json.Unmarshal(b, &c); err != nil || c.Version == 0 || len(c.Offers) == 0 {
		t.Fatalf("catalog.get = %s (%v), want the seeded catalog", b, err)
	}
	b, err = get(t.Context(), protocol.Caller{PlayerID: "p"}, []byte(`{"if_version":`+itoa(c.Version)+`}`))
	var nm catalogapi.NotModified
	if err != nil || json.Unmarshal(b, &nm) != nil || !nm.NotModified || nm.Version != c.Version {
		t.Fatalf("catalog.get with the current version = %s, %v; want not_modified", b, err)
	}
	if _, err := get(t.Context(), protocol.Caller{PlayerID: "p"}, []byte(`{"if_version":"x"}`)); apierr.CodeOf(err) != apierr.BadRequest {
		t.Fatalf("catalog.get with a bad payload = %v, want bad_request", err)
	}
}

func mustDev(t *testing.T) catalogapi.Catalog {
	t.Helper()
	c, err := catalog.DevCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestSeedDevCatalog(t *testing.T) {
	svc, _ := newService(t)
	dev := mustDev(t)
	if err := svc.Seed(t.Context(), dev); err != nil {
		t.Fatalf("Seed(dev catalog) = %v", err)
	}
	c, err := svc.Catalog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Items) != len(dev.Items) || len(c.Offers) != len(dev.Offers) {
		t.Fatalf("seeded %d items and %d offers, want %d and %d", len(c.Items), len(c.Offers), len(dev.Items), len(dev.Offers))
	}
	if err := svc.Seed(t.Context(), dev); err != nil {
		t.Fatal(err)
	}
	again, _ := svc.Catalog(t.Context())
	if again.Version != c.Version {
		t.Errorf("second Seed changed the version from %d to %d, want no change", c.Version, again.Version)
	}
}
