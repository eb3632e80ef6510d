package store_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/store/stripetest"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
)

const docPath = "../../docs/openapi/store.yaml"

var schemaTypes = map[string]reflect.Type{
	"ErrorBody":        reflect.TypeFor[httpapi.ErrorBody](),
	"CheckoutRequest":  reflect.TypeFor[storeapi.CheckoutRequest](),
	"CheckoutResponse": reflect.TypeFor[storeapi.CheckoutResponse](),
	"Purchase":         reflect.TypeFor[storeapi.Purchase](),
	"Grant":            reflect.TypeFor[catalogapi.Grant](),
	"Purchases":        reflect.TypeFor[storeapi.Purchases](),
	"WebhookAnswer":    reflect.TypeFor[storeapi.WebhookAnswer](),
	"Return":           reflect.TypeFor[storeapi.Return](),
}

func TestOpenAPIStoreMatchesTheService(t *testing.T) {
	doc, err := openapitest.Load(docPath)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
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
	for _, want := range []string{"POST " + storeapi.PathCheckout, "POST " + storeapi.PathWebhook, "GET " + storeapi.PathPurchases} {
		if !slices.Contains(got, want) {
			t.Errorf("routes %v lack %s", got, want)
		}
	}

	// Real answers match the document.
	op := func(method, path string) openapitest.Operation {
		o, ok := doc.Operation(method, path)
		if !ok {
			t.Fatalf("no operation %s %s", method, path)
		}
		return o
	}
	check := func(o openapitest.Operation, path, tok, body string, want int, header ...string) []byte {
		t.Helper()
		rec, _ := do(t, e.h, o.Method, path, tok, body, header...)
		if rec.Code != want {
			t.Errorf("%s %s: %d %s, want %d", o.Method, path, rec.Code, rec.Body, want)
		}
		for _, p := range doc.CheckResponse(o, rec.Code, rec.Header(), rec.Body.Bytes()) {
			t.Error(p)
		}
		return rec.Body.Bytes()
	}
	co := op("POST", storeapi.PathCheckout)
	b := check(co, storeapi.PathCheckout, "tok-p1", `{"offer_id":"hat.crimson","currency":"usd"}`, 201)
	check(co, storeapi.PathCheckout, "tok-p1", `{"offer_id":"nope","currency":"usd"}`, 404)
	check(co, storeapi.PathCheckout, "tok-p1", `{"offer_id":"gems.100","currency":"usd","quantity":-1}`, 400)
	check(co, storeapi.PathCheckout, "tok-p1", `{"offer_id":"gems.100","currency":"usd","player_id":"p2"}`, 403)
	check(co, storeapi.PathCheckout, "", `{}`, 401)
	var resp storeapi.CheckoutResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	pay := strings.TrimPrefix(resp.CheckoutURL, "http://cell.test")
	check(op("POST", storeapi.PathTestModePay+"/{purchase}"), pay, "", "", 200)
	check(op("POST", storeapi.PathTestModePay+"/{purchase}"), storeapi.PathTestModePay+"/nope", "", "", 404)
	check(op("GET", storeapi.PathPurchases), storeapi.PathPurchases, "tok-p1", "", 200)
	check(op("GET", storeapi.PathReturn+"/{result}"), storeapi.PathReturn+"/success?purchase="+resp.PurchaseID, "", "", 200)
	wh := op("POST", storeapi.PathWebhook)
	unsigned := stripetest.Event("", "customer.created", map[string]string{"id": "cus_1"}, time.Now())
	check(wh, storeapi.PathWebhook, "", string(unsigned), 401)
}
