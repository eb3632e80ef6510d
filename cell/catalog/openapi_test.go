package catalog_test

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/livecell/livecell/cell/catalog/storetest"
	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
)

// docPath describes Handler; these tests keep it exact.
const docPath = "../../docs/openapi/catalog.yaml"

var schemaTypes = map[string]reflect.Type{
	"ErrorBody": reflect.TypeFor[httpapi.ErrorBody](),
	"Catalog":   reflect.TypeFor[catalogapi.Catalog](),
	"Item":      reflect.TypeFor[catalogapi.Item](),
	"Display":   reflect.TypeFor[catalogapi.Display](),
	"Grant":     reflect.TypeFor[catalogapi.Grant](),
	"Offer":     reflect.TypeFor[catalogapi.Offer](),
}

func TestOpenAPICatalogMatchesTheService(t *testing.T) {
	doc, err := openapitest.Load(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, h := newService(t)
	regs, err := openapitest.Registrations(".")
	if err != nil {
		t.Fatal(err)
	}
	routes, probs := openapitest.Routes(h, regs)
	probs = append(probs, doc.Check()...)
	probs = append(probs, doc.CompareRoutes(routes)...)
	_, pp := doc.ProbeOperations(h)
	probs = append(probs, pp...)
	probs = append(probs, doc.CheckMethods(h)...)
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
	for _, want := range []string{"GET " + catalogapi.PathCatalog, "PUT " + catalogapi.PathAdminItems + "/{id}", "PUT " + catalogapi.PathAdminOffers + "/{id}"} {
		if !slices.Contains(got, want) {
			t.Errorf("routes read from http.go are %v, want them to include %s", got, want)
		}
	}
}

// Real answers match the document.
func TestOpenAPICatalogAnswers(t *testing.T) {
	doc, err := openapitest.Load(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, h := newService(t)
	check := func(method, path string, rec interface {
		Result() *http.Response
	}, body []byte) {
		t.Helper()
		tmpl := path
		if i := strings.LastIndex(path, "/"); strings.HasPrefix(path, "/v1/admin/") {
			tmpl = path[:i] + "/{id}"
		}
		op, ok := doc.Operation(method, tmpl)
		if !ok {
			t.Fatalf("no operation %s %s", method, tmpl)
		}
		res := rec.Result()
		for _, p := range doc.CheckResponse(op, res.StatusCode, res.Header, body) {
			t.Error(p)
		}
	}
	rec := do(t, h, "PUT", catalogapi.PathAdminItems+"/hat", "admin-token", storetest.Hat("hat"))
	check("PUT", catalogapi.PathAdminItems+"/hat", rec, rec.Body.Bytes())
	rec = do(t, h, "PUT", catalogapi.PathAdminOffers+"/o", "admin-token", storetest.Offer("o", "hat"))
	check("PUT", catalogapi.PathAdminOffers+"/o", rec, rec.Body.Bytes())
	rec = do(t, h, "PUT", catalogapi.PathAdminItems+"/x", "ops-token", storetest.Hat("x"))
	check("PUT", catalogapi.PathAdminItems+"/x", rec, rec.Body.Bytes())
	rec = do(t, h, "PUT", catalogapi.PathAdminItems+"/x", "admin-token", `{"id":"x","kind":"weapon"}`)
	check("PUT", catalogapi.PathAdminItems+"/x", rec, rec.Body.Bytes())
	rec = do(t, h, "GET", catalogapi.PathCatalog, "", nil)
	check("GET", catalogapi.PathCatalog, rec, rec.Body.Bytes())
}
