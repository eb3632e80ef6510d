package router

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
)

// routerDocPath is the OpenAPI description of Handler. These tests keep it
// exact: its routes are the routes http.go registers, its schemas are the
// router's JSON types, and real answers match it.
const routerDocPath = "../docs/openapi/router.yaml"

// routerSchemaTypes maps every schema of the document to the Go type whose
// JSON it describes.
var routerSchemaTypes = map[string]reflect.Type{
	"ErrorBody":     reflect.TypeFor[httpapi.ErrorBody](),
	"Resolution":    reflect.TypeFor[Resolution](),
	"CellsResponse": reflect.TypeFor[CellsResponse](),
	"CellHealth":    reflect.TypeFor[CellHealth](),
}

func loadRouterDoc(t *testing.T) *openapitest.Doc {
	t.Helper()
	doc, err := openapitest.Load(routerDocPath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func reportDocProblems(t *testing.T, probs []string) {
	t.Helper()
	for _, p := range probs {
		t.Error(p)
	}
}

// wantDocProblem fails unless one of probs contains every fragment.
func wantDocProblem(t *testing.T, probs []string, fragments ...string) {
	t.Helper()
	for _, p := range probs {
		if !slices.ContainsFunc(fragments, func(f string) bool { return !strings.Contains(p, f) }) {
			return
		}
	}
	t.Errorf("got problems %q, want one containing %q", probs, fragments)
}

func TestOpenAPIRouterDocIsValid(t *testing.T) {
	doc := loadRouterDoc(t)
	reportDocProblems(t, doc.Check())
	var got []string
	for _, op := range doc.Operations() {
		got = append(got, op.Key())
	}
	if want := []string{"GET /v1/cells", "GET /v1/resolve"}; !slices.Equal(got, want) {
		t.Errorf("got operations %v, want %v", got, want)
	}
}

func routerRouteProblems(doc *openapitest.Doc, h http.Handler, regs []openapitest.Registration) []string {
	routes, probs := openapitest.Routes(h, regs)
	probs = append(probs, doc.CompareRoutes(routes)...)
	_, pp := doc.ProbeOperations(h)
	probs = append(probs, pp...)
	return append(probs, doc.CheckMethods(h)...)
}

// TestOpenAPIRouterRoutesMatchHandler: every route http.go registers is
// documented, and every documented operation is served by Handler (no
// catch-all 404 or 405), with the methods the document lists.
func TestOpenAPIRouterRoutesMatchHandler(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	h := f.r.Handler()
	regs, err := openapitest.Registrations(".")
	if err != nil {
		t.Fatal(err)
	}
	reportDocProblems(t, routerRouteProblems(loadRouterDoc(t), h, regs))
	routes, _ := openapitest.Routes(h, regs)
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	if want := []string{"GET /v1/resolve", "GET /v1/cells"}; !slices.Equal(got, want) {
		t.Errorf("got routes %v read from http.go, want %v", got, want)
	}
}

// TestOpenAPIRouterRouteCheckFails proves the route checks fail on drift in
// either direction.
func TestOpenAPIRouterRouteCheckFails(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	h := f.r.Handler()

	t.Run("route added to http.go without documenting it", func(t *testing.T) {
		src, err := os.ReadFile("http.go")
		if err != nil {
			t.Fatal(err)
		}
		const anchor = "mux := http.NewServeMux()\n"
		if !strings.Contains(string(src), anchor) {
			t.Fatalf("http.go no longer holds %q; update the test", anchor)
		}
		sources := map[string][]byte{
			"http.go": []byte(strings.Replace(string(src), anchor, anchor+"\tmux.HandleFunc(\"GET /v1/cells/{id}\", r.serveCells)\n", 1)),
		}
		regs, err := openapitest.RegistrationsFromSource(".", sources)
		if err != nil {
			t.Fatal(err)
		}
		// Serve the injected pattern too, by delegating to the real handler.
		mirror := http.NewServeMux()
		for _, reg := range regs {
			mirror.Handle(reg.Pattern, h)
		}
		wantDocProblem(t, routerRouteProblems(loadRouterDoc(t), mirror, regs), "route GET /v1/cells/{id} (http.go:", "is not documented")
	})
	t.Run("documented path that is not served", func(t *testing.T) {
		doc := loadRouterDoc(t)
		doc.Root["paths"].(map[string]any)["/v1/regions"] = map[string]any{"get": map[string]any{
			"responses": map[string]any{"200": map[string]any{"description": "Regions."}}}}
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		probs := routerRouteProblems(doc, h, regs)
		wantDocProblem(t, probs, "documented GET /v1/regions", "got the catch-all 404")
		wantDocProblem(t, probs, "documented GET /v1/regions is not a route")
	})
	t.Run("served route missing from the document", func(t *testing.T) {
		doc := loadRouterDoc(t)
		delete(doc.Root["paths"].(map[string]any), "/v1/cells")
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		wantDocProblem(t, routerRouteProblems(doc, h, regs), "route GET /v1/cells (http.go:", "is not documented")
	})
}

func TestOpenAPIRouterSchemasMatchWireTypes(t *testing.T) {
	doc := loadRouterDoc(t)
	reportDocProblems(t, doc.CompareSchemas(routerSchemaTypes))

	enum := func(schema, prop string) string {
		s, _ := doc.Schema(schema)
		p, _ := s["properties"].(map[string]any)[prop].(map[string]any)
		return fmt.Sprint(p["enum"])
	}
	if got, want := enum("Resolution", "placement"), fmt.Sprint([]Placement{PlacementExisting, PlacementFailover, PlacementNew, PlacementPinned, PlacementQuarantine}); got != want {
		t.Errorf("Resolution.placement: got enum %s, want %s", got, want)
	}
	for _, prop := range []string{"state", "config_state"} {
		if got, want := enum("CellHealth", prop), fmt.Sprint([]config.CellState{config.StateActive, config.StateDraining, config.StateDisabled}); got != want {
			t.Errorf("CellHealth.%s: got enum %s, want %s", prop, got, want)
		}
	}

	t.Run("fails on drift", func(t *testing.T) {
		types := map[string]reflect.Type{}
		for k, v := range routerSchemaTypes {
			types[k] = v
		}
		// FailoverFrom without omitempty: always sent, so it must be required.
		var fields []reflect.StructField
		for i := range reflect.TypeFor[Resolution]().NumField() {
			f := reflect.TypeFor[Resolution]().Field(i)
			if f.Name == "FailoverFrom" {
				f.Tag = `json:"failover_from"`
			}
			fields = append(fields, f)
		}
		types["Resolution"] = reflect.StructOf(fields)
		wantDocProblem(t, doc.CompareSchemas(types), `"failover_from" is always sent`)
	})
}

func TestOpenAPIRouterErrorCodes(t *testing.T) {
	_, probs := loadRouterDoc(t).CheckErrors("ErrorBody")
	reportDocProblems(t, probs)
}

// TestOpenAPIRouterAnswersMatchDoc drives both routes through every
// documented answer and checks each real answer against the document.
func TestOpenAPIRouterAnswersMatchDoc(t *testing.T) {
	doc := loadRouterDoc(t)
	covered := map[string]map[int]bool{}
	check := func(name string, f *fixture, target string, want int) {
		t.Helper()
		rec := get(f.r.Handler(), http.MethodGet, target)
		path, _, _ := strings.Cut(target, "?")
		op, ok := doc.Operation(http.MethodGet, path)
		if !ok {
			t.Fatalf("%s: GET %s is not documented", name, path)
		}
		if rec.Code != want {
			t.Errorf("%s: GET %s got %d %s, want %d", name, target, rec.Code, rec.Body, want)
		}
		for _, p := range doc.CheckResponse(op, rec.Code, rec.Header(), rec.Body.Bytes()) {
			t.Errorf("%s: %s", name, p)
		}
		if covered[op.Key()] == nil {
			covered[op.Key()] = map[int]bool{}
		}
		covered[op.Key()][rec.Code] = true
	}

	f := newFixture(t, Config{FailThreshold: 1})
	f.status.up("us-east", 250)
	f.status.down("eu-north")
	f.round(t, 1)
	check("existing player", f, "/v1/resolve?player="+playerEU, 200)
	check("new player with a hint", f, "/v1/resolve?region_hint=us-east1", 200)
	check("player not a UUID", f, "/v1/resolve?player=bob", 400)
	check("unknown parameter", f, "/v1/resolve?player_id="+playerEU, 400)
	check("unknown player", f, "/v1/resolve?player="+playerUnknown, 404)
	check("home not in cells.yaml", f, "/v1/resolve?player="+playerLost, 500)
	check("cells", f, "/v1/cells", 200)
	f.loadRouting(t, Routing{
		CellStates: map[string]config.CellState{"eu-north": config.StateDraining},
		Overrides:  map[string]Override{playerUS: {Kind: OverrideQuarantine}, playerAP: {Kind: OverridePin, Cell: "us-east"}},
	})
	check("quarantined", f, "/v1/resolve?player="+playerUS, 403)
	check("pinned", f, "/v1/resolve?player="+playerAP, 200)
	check("cells with a drain", f, "/v1/cells", 200)
	check("rtt report", f, "/v1/resolve?rtt=eu-west:20,us-east1:90", 200)
	check("negative rtt", f, "/v1/resolve?rtt=eu-west:-1", 400)
	check("absurd rtt", f, "/v1/resolve?rtt=eu-west:86400000", 400)
	f.status.down("eu-west")
	f.round(t, 1)
	check("failover", f, "/v1/resolve?player="+playerEU, 200)
	f.dir.err = errors.New("dial tcp 10.0.0.7:26257: connection refused")
	check("directory down", f, "/v1/resolve?player="+playerEU, 503)

	never := newFixture(t, Config{}) // no probe round yet: every cell is down
	check("no healthy cell", never, "/v1/resolve", 503)
	check("cells before the first probe", never, "/v1/cells", 200)

	// Each documented query parameter, given its example, is accepted.
	resolve, _ := doc.Operation(http.MethodGet, "/v1/resolve")
	params, _ := doc.Parameters(resolve)
	for _, p := range params {
		if p["in"] != "query" {
			continue
		}
		ex, ok := p["example"]
		if !ok {
			t.Errorf("query parameter %v has no example", p["name"])
			continue
		}
		target := "/v1/resolve?" + url.Values{fmt.Sprint(p["name"]): {fmt.Sprint(ex)}}.Encode()
		check("documented parameter "+fmt.Sprint(p["name"])+" with its example", newFixtureUp(t), target, 200)
	}

	for _, op := range doc.Operations() {
		for status := range op.Spec["responses"].(map[string]any) {
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Fatalf("%s: status %q: %v", op.Key(), status, err)
			}
			if !covered[op.Key()][code] {
				t.Errorf("documented answer %s %s was never exercised: add a scenario", op.Key(), status)
			}
		}
	}
}

// newFixtureUp is a fixture after one probe round, every cell healthy.
func newFixtureUp(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, Config{})
	f.round(t, 1)
	return f
}

// An answer that contradicts the document is reported.
func TestOpenAPIRouterConformanceFails(t *testing.T) {
	doc := loadRouterDoc(t)
	resolve, _ := doc.Operation(http.MethodGet, "/v1/resolve")
	rec := httptest.NewRecorder()
	newFixtureUp(t).r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/resolve?player="+playerEU, nil))
	reportDocProblems(t, doc.CheckResponse(resolve, rec.Code, rec.Header(), rec.Body.Bytes()))
	body := rec.Body.String()
	wantDocProblem(t, doc.CheckResponse(resolve, rec.Code, rec.Header(), []byte(strings.Replace(body, `"existing"`, `"sticky"`, 1))),
		`$.placement: got "sticky", want one of [existing failover new pinned quarantine]`)
	wantDocProblem(t, doc.CheckResponse(resolve, rec.Code, rec.Header(), []byte(strings.Replace(body, `"home_cell"`, `"cell"`, 1))),
		`required field "home_cell" is missing`)
	wantDocProblem(t, doc.CheckResponse(resolve, http.StatusTooManyRequests, rec.Header(), []byte(`{"code":"rate_limited","message":"m"}`)),
		"does not document status 429")
}
