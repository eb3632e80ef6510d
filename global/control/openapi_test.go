package control_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// controlDocPath is the OpenAPI description of Server.Handler. These tests
// keep it exact: its routes are the routes control.go registers, its
// schemas are the control plane's JSON types, and real answers match it.
const controlDocPath = "../../docs/openapi/control.yaml"

var controlSchemaTypes = map[string]reflect.Type{
	"ErrorBody":         reflect.TypeFor[httpapi.ErrorBody](),
	"Entry":             reflect.TypeFor[control.Entry](),
	"SetHomeRequest":    reflect.TypeFor[control.SetHomeRequest](),
	"RoutingResponse":   reflect.TypeFor[control.RoutingResponse](),
	"CellStateEntry":    reflect.TypeFor[control.CellStateEntry](),
	"Orders":            reflect.TypeFor[control.Orders](),
	"DrainOrder":        reflect.TypeFor[control.DrainOrder](),
	"MoveEntry":         reflect.TypeFor[control.MoveEntry](),
	"DrainRequest":      reflect.TypeFor[control.DrainRequest](),
	"DrainState":        reflect.TypeFor[control.DrainState](),
	"OverrideRequest":   reflect.TypeFor[control.OverrideRequest](),
	"OverrideEntry":     reflect.TypeFor[control.OverrideEntry](),
	"OverridesResponse": reflect.TypeFor[control.OverridesResponse](),
	"RehomeRequest":     reflect.TypeFor[control.RehomeRequest](),
	"RehomeResult":      reflect.TypeFor[control.RehomeResult](),
	"MovesResponse":     reflect.TypeFor[control.MovesResponse](),
	"CellsResponse":     reflect.TypeFor[router.CellsResponse](),
	"CellHealth":        reflect.TypeFor[router.CellHealth](),
}

var controlOps = []string{
	"GET /v1/directory/{player}", "PUT /v1/directory/{player}", "GET /v1/cells", "GET /v1/routing",
	"GET /v1/cells/{cell}/orders", "GET /v1/moves", "PUT /v1/cells/{cell}/drain", "DELETE /v1/cells/{cell}/drain",
	"GET /v1/overrides", "PUT /v1/overrides/{player}", "DELETE /v1/overrides/{player}",
	"POST /v1/players/{player}/rehome",
}

func loadControlDoc(t *testing.T) *openapitest.Doc {
	t.Helper()
	doc, err := openapitest.Load(controlDocPath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func reportProblems(t *testing.T, probs []string) {
	t.Helper()
	for _, p := range probs {
		t.Error(p)
	}
}

func wantProblem(t *testing.T, probs []string, fragments ...string) {
	t.Helper()
	for _, p := range probs {
		if !slices.ContainsFunc(fragments, func(f string) bool { return !strings.Contains(p, f) }) {
			return
		}
	}
	t.Errorf("got problems %q, want one containing %q", probs, fragments)
}

func TestOpenAPIControlDocIsValid(t *testing.T) {
	doc := loadControlDoc(t)
	reportProblems(t, doc.Check())
	var got []string
	for _, op := range doc.Operations() {
		got = append(got, op.Key())
	}
	want := slices.Clone(controlOps)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got operations %v, want %v", got, want)
	}
}

func routeProblems(doc *openapitest.Doc, h http.Handler, regs []openapitest.Registration) []string {
	routes, probs := openapitest.Routes(h, regs)
	probs = append(probs, doc.CompareRoutes(routes)...)
	_, pp := doc.ProbeOperations(h)
	probs = append(probs, pp...)
	return append(probs, doc.CheckMethods(h)...)
}

func TestOpenAPIControlRoutesMatchHandler(t *testing.T) {
	h := newEnv(t).ctl.Handler()
	regs, err := openapitest.Registrations(".")
	if err != nil {
		t.Fatal(err)
	}
	reportProblems(t, routeProblems(loadControlDoc(t), h, regs))
	routes, _ := openapitest.Routes(h, regs)
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	for _, want := range controlOps {
		if !slices.Contains(got, want) {
			t.Errorf("routes read from the source are %v, want them to include %s", got, want)
		}
	}
}

// TestOpenAPIControlRouteCheckFails proves the route checks fail on drift
// in either direction.
func TestOpenAPIControlRouteCheckFails(t *testing.T) {
	h := newEnv(t).ctl.Handler()
	t.Run("route added without documenting it", func(t *testing.T) {
		src, err := os.ReadFile("control.go")
		if err != nil {
			t.Fatal(err)
		}
		const anchor = "mux := http.NewServeMux()\n"
		if !bytes.Contains(src, []byte(anchor)) {
			t.Fatalf("control.go no longer holds %q; update the test", anchor)
		}
		sources := map[string][]byte{"control.go": bytes.Replace(src, []byte(anchor), []byte(anchor+"\tmux.HandleFunc(\"POST /v1/cells/{cell}/disable\", s.putDrain)\n"), 1)}
		regs, err := openapitest.RegistrationsFromSource(".", sources)
		if err != nil {
			t.Fatal(err)
		}
		mirror := http.NewServeMux()
		for _, r := range regs {
			mirror.Handle(r.Pattern, h)
		}
		wantProblem(t, routeProblems(loadControlDoc(t), mirror, regs), "route POST /v1/cells/{cell}/disable", "is not documented")
	})
	t.Run("served route missing from the document", func(t *testing.T) {
		doc := loadControlDoc(t)
		delete(doc.Root["paths"].(map[string]any), "/v1/routing")
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, routeProblems(doc, h, regs), "route GET /v1/routing", "is not documented")
	})
}

func TestOpenAPIControlSchemasMatchWireTypes(t *testing.T) {
	doc := loadControlDoc(t)
	reportProblems(t, doc.CompareSchemas(controlSchemaTypes))
	s, _ := doc.Schema("DrainRequest")
	props := s["properties"].(map[string]any)
	if b := props["batch"].(map[string]any); b["maximum"] != directory.MaxDrainBatch {
		t.Errorf("DrainRequest.batch maximum %v, want %d", b["maximum"], directory.MaxDrainBatch)
	}
	if r := props["reason"].(map[string]any); r["maxLength"] != directory.MaxNoteLength {
		t.Errorf("DrainRequest.reason maxLength %v, want %d", r["maxLength"], directory.MaxNoteLength)
	}
}

func TestOpenAPIControlErrorCodes(t *testing.T) {
	_, probs := loadControlDoc(t).CheckErrors("ErrorBody")
	reportProblems(t, probs)
}

// downStore fails every call while down is set: the database is gone.
type downStore struct {
	*directory.Memory
	down atomic.Bool
}

func (d *downStore) fail() error {
	if d.down.Load() {
		return apierr.New(apierr.Unavailable, "database down")
	}
	return nil
}

func (d *downStore) Home(ctx context.Context, p string) (string, error) {
	if err := d.fail(); err != nil {
		return "", err
	}
	return d.Memory.Home(ctx, p)
}

func (d *downStore) Overrides(ctx context.Context) ([]directory.Override, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.Memory.Overrides(ctx)
}

func (d *downStore) ClearOverride(ctx context.Context, p string) (bool, error) {
	if err := d.fail(); err != nil {
		return false, err
	}
	return d.Memory.ClearOverride(ctx, p)
}

func (d *downStore) SetOverride(ctx context.Context, o directory.Override) (directory.Override, error) {
	if err := d.fail(); err != nil {
		return directory.Override{}, err
	}
	return d.Memory.SetOverride(ctx, o)
}

func (d *downStore) Moves(ctx context.Context, cell string, after int64, limit int) ([]directory.Move, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.Memory.Moves(ctx, cell, after, limit)
}

func (d *downStore) SetCellState(ctx context.Context, s directory.CellState) (directory.CellState, error) {
	if err := d.fail(); err != nil {
		return directory.CellState{}, err
	}
	return d.Memory.SetCellState(ctx, s)
}

func (d *downStore) ClearCellState(ctx context.Context, cell string) (bool, error) {
	if err := d.fail(); err != nil {
		return false, err
	}
	return d.Memory.ClearCellState(ctx, cell)
}

func (d *downStore) CellStates(ctx context.Context) ([]directory.CellState, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.Memory.CellStates(ctx)
}

// TestOpenAPIControlAnswersMatchDoc drives every operation through every
// documented answer and checks each real answer (and request) against the
// document.
func TestOpenAPIControlAnswersMatchDoc(t *testing.T) {
	doc := loadControlDoc(t)
	ks, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := token.NewSigner(ks, nil)
	mint := func(scopes ...string) string {
		tok, _, err := signer.IssueServer("ops/test", scopes, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin, cellTok, weak := mint(control.ScopeAdmin), mint(control.ScopeDirectoryWrite), mint("match.results")
	mem := directory.NewMemory()
	st := &downStore{Memory: mem}
	health := threeCells()
	dir := &fakeMover{dir: mem}
	newServer := func(withMover bool) http.Handler {
		deps := control.Deps{Directory: st, Health: health, Verifier: token.NewVerifier(ks, nil)}
		if withMover {
			deps.Mover = dir
		}
		s, err := control.New(control.Config{}, deps)
		if err != nil {
			t.Fatal(err)
		}
		return s.Handler()
	}
	h, noMover := newServer(true), newServer(false)

	covered := map[string]map[int]bool{}
	var lastETag string
	check := func(name string, h http.Handler, method, target, tok, ctype, body, ifNoneMatch string, want int) {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		path, _, _ := strings.Cut(target, "?")
		var op openapitest.Operation
		for _, o := range doc.Operations() {
			if o.Method == method && matchPath(o.Path, path) {
				op = o
			}
		}
		if op.Path == "" {
			t.Fatalf("%s: %s %s is not documented", name, method, path)
		}
		if rec.Code != want {
			t.Errorf("%s: %s %s got %d %s, want %d", name, method, target, rec.Code, rec.Body, want)
		}
		for _, p := range doc.CheckResponse(op, rec.Code, rec.Header(), rec.Body.Bytes()) {
			t.Errorf("%s: %s", name, p)
		}
		if body != "" && want < 300 {
			for _, p := range doc.CheckRequest(op, []byte(body)) {
				t.Errorf("%s: request: %s", name, p)
			}
		}
		if rec.Header().Get("ETag") != "" {
			lastETag = rec.Header().Get("ETag")
		}
		if covered[op.Key()] == nil {
			covered[op.Key()] = map[int]bool{}
		}
		covered[op.Key()][rec.Code] = true
	}
	const js = "application/json"
	pa, pb := "/v1/directory/"+playerA, "/v1/directory/"+playerB
	big := `{"cell":"eu-west","reason":"` + strings.Repeat("x", 5000) + `"}`

	check("set home", h, "PUT", pa, cellTok, js, `{"cell":"eu-west"}`, "", 200)
	check("set home: bad body", h, "PUT", pa, cellTok, js, `{"cel":"eu-west"}`, "", 400)
	check("set home: no token", h, "PUT", pa, "", js, `{"cell":"eu-west"}`, "", 401)
	check("set home: wrong scope", h, "PUT", pa, weak, js, `{"cell":"eu-west"}`, "", 403)
	check("set home: elsewhere", h, "PUT", pa, cellTok, js, `{"cell":"us-east"}`, "", 409)
	check("set home: too large", h, "PUT", pa, cellTok, js, big, "", 413)
	check("set home: not JSON", h, "PUT", pa, cellTok, "text/plain", `{"cell":"eu-west"}`, "", 415)
	check("get home", h, "GET", pa, "", "", "", "", 200)
	check("get home: not a UUID", h, "GET", "/v1/directory/bob", "", "", "", "", 400)
	check("get home: unknown", h, "GET", pb, "", "", "", "", 404)
	check("cells", h, "GET", "/v1/cells", "", "", "", "", 200)

	check("pin", h, "PUT", "/v1/overrides/"+playerA, admin, js, `{"kind":"pin","cell":"ap-south","reason":"canary"}`, "", 200)
	check("quarantine", h, "PUT", "/v1/overrides/"+playerB, admin, js, `{"kind":"quarantine"}`, "", 200)
	check("override: bad kind", h, "PUT", "/v1/overrides/"+playerA, admin, js, `{"kind":"ban"}`, "", 400)
	check("override: no token", h, "PUT", "/v1/overrides/"+playerA, "", js, `{"kind":"pin"}`, "", 401)
	check("override: wrong scope", h, "PUT", "/v1/overrides/"+playerA, cellTok, js, `{"kind":"pin"}`, "", 403)
	check("override: too large", h, "PUT", "/v1/overrides/"+playerA, admin, js, big, "", 413)
	check("override: not JSON", h, "PUT", "/v1/overrides/"+playerA, admin, "text/plain", `{}`, "", 415)
	check("overrides", h, "GET", "/v1/overrides", admin, "", "", "", 200)
	check("overrides: no token", h, "GET", "/v1/overrides", "", "", "", "", 401)
	check("overrides: wrong scope", h, "GET", "/v1/overrides", cellTok, "", "", "", 403)
	check("routing", h, "GET", "/v1/routing", "", "", "", "", 200)
	check("routing unchanged", h, "GET", "/v1/routing", "", "", "", lastETag, 304)
	check("clear override", h, "DELETE", "/v1/overrides/"+playerA, admin, "", "", "", 204)
	check("clear override: none", h, "DELETE", "/v1/overrides/"+playerA, admin, "", "", "", 404)
	check("clear override: not a UUID", h, "DELETE", "/v1/overrides/x", admin, "", "", "", 400)
	check("clear override: no token", h, "DELETE", "/v1/overrides/"+playerA, "", "", "", "", 401)
	check("clear override: wrong scope", h, "DELETE", "/v1/overrides/"+playerA, cellTok, "", "", "", 403)

	check("drain", h, "PUT", "/v1/cells/eu-west/drain", admin, js, `{"batch":50,"interval_ms":500,"reason":"upgrade"}`, "", 200)
	check("drain: bad batch", h, "PUT", "/v1/cells/eu-west/drain", admin, js, `{"batch":-1}`, "", 400)
	check("drain: no token", h, "PUT", "/v1/cells/eu-west/drain", "", js, `{}`, "", 401)
	check("drain: wrong scope", h, "PUT", "/v1/cells/eu-west/drain", cellTok, js, `{}`, "", 403)
	check("drain: unknown cell", h, "PUT", "/v1/cells/mars/drain", admin, js, `{}`, "", 404)
	check("drain: too large", h, "PUT", "/v1/cells/eu-west/drain", admin, js, big, "", 413)
	check("drain: not JSON", h, "PUT", "/v1/cells/eu-west/drain", admin, "text/plain", `{}`, "", 415)
	check("drain a second cell", h, "PUT", "/v1/cells/us-east/drain", admin, js, `{}`, "", 200)
	check("drain: last active cell", h, "PUT", "/v1/cells/ap-south/drain", admin, js, `{}`, "", 409)
	check("set home: draining cell", h, "PUT", pb, cellTok, js, `{"cell":"us-east"}`, "", 503)
	check("orders", h, "GET", "/v1/cells/eu-west/orders?after=0", "", "", "", "", 200)
	check("orders: bad cursor", h, "GET", "/v1/cells/eu-west/orders?after=-2", "", "", "", "", 400)
	check("orders: unknown cell", h, "GET", "/v1/cells/mars/orders", "", "", "", "", 404)
	check("undrain", h, "DELETE", "/v1/cells/us-east/drain", admin, "", "", "", 204)
	check("undrain: not drained", h, "DELETE", "/v1/cells/us-east/drain", admin, "", "", "", 404)
	check("undrain: no token", h, "DELETE", "/v1/cells/eu-west/drain", "", "", "", "", 401)
	check("undrain: wrong scope", h, "DELETE", "/v1/cells/eu-west/drain", cellTok, "", "", "", 403)

	rh := "/v1/players/" + playerA + "/rehome"
	check("rehome", h, "POST", rh, admin, js, `{"cell":"us-east"}`, "", 200)
	check("rehome: orders carry the marker", h, "GET", "/v1/cells/eu-west/orders", "", "", "", "", 200)
	check("moves: the cursor to follow from", h, "GET", "/v1/moves", "", "", "", "", 200)
	check("moves after 0", h, "GET", "/v1/moves?after=0", "", "", "", "", 200)
	check("moves: bad cursor", h, "GET", "/v1/moves?after=x", "", "", "", "", 400)
	check("rehome: unknown cell", h, "POST", rh, admin, js, `{"cell":"mars"}`, "", 400)
	check("rehome: no token", h, "POST", rh, "", js, `{"cell":"us-east"}`, "", 401)
	check("rehome: wrong scope", h, "POST", rh, cellTok, js, `{"cell":"us-east"}`, "", 403)
	check("rehome: unknown player", h, "POST", "/v1/players/"+playerC+"/rehome", admin, js, `{"cell":"us-east"}`, "", 404)
	check("rehome: draining target", h, "POST", rh, admin, js, `{"cell":"eu-west"}`, "", 409)
	check("rehome: too large", h, "POST", rh, admin, js, big, "", 413)
	check("rehome: not JSON", h, "POST", rh, admin, "text/plain", `{}`, "", 415)
	check("rehome: no database", noMover, "POST", rh, admin, js, `{"cell":"ap-south"}`, "", 503)

	// The override table full.
	for i := range directory.MaxOverrides {
		if _, err := mem.SetOverride(context.Background(), directory.Override{PlayerID: fmt.Sprintf("filler-%d", i), Kind: directory.Quarantine}); err != nil && apierr.CodeOf(err) != apierr.Conflict {
			t.Fatal(err)
		}
	}
	check("override: table full", h, "PUT", "/v1/overrides/"+playerC, admin, js, `{"kind":"quarantine"}`, "", 409)

	// The database gone. The routing table keeps being served from the
	// last snapshot, so it is asked of a fresh server.
	st.down.Store(true)
	check("get home: database down", h, "GET", pa, "", "", "", "", 503)
	check("set home: database down", h, "PUT", pb, cellTok, js, `{"cell":"ap-south"}`, "", 503)
	check("overrides: database down", h, "GET", "/v1/overrides", admin, "", "", "", 503)
	check("override: database down", h, "PUT", "/v1/overrides/"+playerA, admin, js, `{"kind":"quarantine"}`, "", 503)
	check("clear override: database down", h, "DELETE", "/v1/overrides/"+playerB, admin, "", "", "", 503)
	check("drain: database down", h, "PUT", "/v1/cells/ap-south/drain", admin, js, `{}`, "", 503)
	check("undrain: database down", h, "DELETE", "/v1/cells/eu-west/drain", admin, "", "", "", 503)
	check("orders: database down", h, "GET", "/v1/cells/eu-west/orders", "", "", "", "", 503)
	check("moves: database down", h, "GET", "/v1/moves?after=0", "", "", "", "", 503)
	check("rehome: database down", h, "POST", rh, admin, js, `{"cell":"ap-south"}`, "", 503)
	check("routing: database down from the start", noMover, "GET", "/v1/routing", "", "", "", "", 503)
	st.down.Store(false)

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

// matchPath reports whether a concrete path fits a documented template.
func matchPath(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
			return false
		}
	}
	return true
}
