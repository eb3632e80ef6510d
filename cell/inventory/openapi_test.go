package inventory_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
)

const docPath = "../../docs/openapi/inventory.yaml"

var schemaTypes = map[string]reflect.Type{
	"ErrorBody":    reflect.TypeFor[httpapi.ErrorBody](),
	"Inventory":    reflect.TypeFor[inventoryapi.Inventory](),
	"OwnedItem":    reflect.TypeFor[inventoryapi.OwnedItem](),
	"EquipRequest": reflect.TypeFor[inventoryapi.EquipRequest](),
	"Updated":      reflect.TypeFor[inventoryapi.Updated](),
}

func TestOpenAPIInventoryMatchesTheService(t *testing.T) {
	doc, err := openapitest.Load(docPath)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1)
	regs, err := openapitest.Registrations(".")
	if err != nil {
		t.Fatal(err)
	}
	routes, probs := openapitest.Routes(e.h, regs)
	probs = append(probs, doc.Check()...)
	probs = append(probs, doc.CompareRoutes(routes)...)
	_, pp := doc.ProbeOperations(e.h)
	probs = append(probs, pp...)
	probs = append(probs, doc.CheckMethods(e.h)...)
	probs = append(probs, doc.CompareSchemas(schemaTypes)...)
	_, ep := doc.CheckErrors("ErrorBody")
	probs = append(probs, ep...)
	for _, p := range probs {
		t.Error(p)
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	for _, want := range []string{"GET " + inventoryapi.PathInventory, "PUT " + inventoryapi.PathLoadout} {
		if !slices.Contains(got, want) {
			t.Errorf("routes %v lack %s", got, want)
		}
	}

	// Real answers match the document.
	if err := e.svc.HandleEvent(t.Context(), purchaseEvent(t, storeapi.TypePurchaseCompleted, "pur-1", "p1", catalogapi.Grant{ItemID: "hat.crimson", Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	get, _ := doc.Operation("GET", inventoryapi.PathInventory)
	put, _ := doc.Operation("PUT", inventoryapi.PathLoadout)
	for _, c := range []struct {
		op         openapitest.Operation
		tok, body  string
		wantStatus int
	}{
		{get, "tok-p1", "", 200},
		{get, "", "", 401},
		{put, "tok-p1", `{"slot":"head","item_id":"hat.crimson"}`, 200},
		{put, "tok-p2", `{"slot":"head","item_id":"hat.crimson"}`, 403},
		{put, "tok-p1", `{"slot":"body","item_id":"hat.crimson"}`, 400},
		{put, "tok-p1", `{"slot":"head","item_id":"nope"}`, 404},
	} {
		rec, _ := do(t, e.h, c.op.Method, c.op.Path, c.tok, c.body)
		if rec.Code != c.wantStatus {
			t.Errorf("%s %s: %d, want %d", c.op.Method, c.body, rec.Code, c.wantStatus)
		}
		for _, p := range doc.CheckResponse(c.op, rec.Code, rec.Header(), rec.Body.Bytes()) {
			t.Error(p)
		}
	}
	// The push's data is documented too.
	pushes, _ := e.pushes.all()
	if s, ok := doc.Schema("Updated"); !ok || len(pushes) == 0 {
		t.Fatal("no Updated schema or no push")
	} else {
		for _, p := range doc.ValidateJSON(s, pushes[0].Data) {
			t.Errorf("push data: %s", p)
		}
	}
}
