package accounts_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/openapitest"
)

// accountsDocPath is the OpenAPI description of Handler. These tests keep it
// exact: its routes are the routes http.go registers, its schemas are the
// accountsapi JSON types, and real answers match it.
const accountsDocPath = "../../docs/openapi/accounts.yaml"

// accountsSchemaTypes maps every schema of the document to the Go type
// whose JSON it describes.
var accountsSchemaTypes = map[string]reflect.Type{
	"ErrorBody":         reflect.TypeFor[httpapi.ErrorBody](),
	"RegisterRequest":   reflect.TypeFor[accountsapi.RegisterRequest](),
	"LoginRequest":      reflect.TypeFor[accountsapi.LoginRequest](),
	"SteamLoginRequest": reflect.TypeFor[accountsapi.SteamLoginRequest](),
	"EpicLoginRequest":  reflect.TypeFor[accountsapi.EpicLoginRequest](),
	"RefreshRequest":    reflect.TypeFor[accountsapi.RefreshRequest](),
	"LogoutRequest":     reflect.TypeFor[accountsapi.LogoutRequest](),
	"LinkRequest":       reflect.TypeFor[accountsapi.LinkRequest](),
	"AuthResponse":      reflect.TypeFor[accountsapi.AuthResponse](),
	"Me":                reflect.TypeFor[accountsapi.Me](),
	"Identity":          reflect.TypeFor[accountsapi.Identity](),
}

// Operation keys, as the document and the routes spell them.
const (
	opRegister = "POST " + accountsapi.PathRegister
	opLogin    = "POST " + accountsapi.PathLogin
	opSteam    = "POST " + accountsapi.PathSteamLogin
	opEpic     = "POST " + accountsapi.PathEpicLogin
	opRefresh  = "POST " + accountsapi.PathRefresh
	opLogout   = "POST " + accountsapi.PathLogout
	opMe       = "GET " + accountsapi.PathMe
	opLink     = "POST " + accountsapi.PathIdentities
	opUnlink   = "DELETE " + accountsapi.PathIdentities + "/{provider}"
)

func loadAccountsDoc(t *testing.T) *openapitest.Doc {
	t.Helper()
	doc, err := openapitest.Load(accountsDocPath)
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

// wantProblem fails unless one of probs contains every fragment.
func wantProblem(t *testing.T, probs []string, fragments ...string) {
	t.Helper()
	for _, p := range probs {
		if !slices.ContainsFunc(fragments, func(f string) bool { return !strings.Contains(p, f) }) {
			return
		}
	}
	t.Errorf("got problems %q, want one containing %q", probs, fragments)
}

func opKeys(ops []openapitest.Operation) []string {
	var keys []string
	for _, op := range ops {
		keys = append(keys, op.Key())
	}
	return keys
}

func TestOpenAPIAccountsDocIsValid(t *testing.T) {
	doc := loadAccountsDoc(t)
	reportProblems(t, doc.Check())
	want := []string{opRegister, opLogin, opSteam, opEpic, opRefresh, opLogout, opMe, opLink, opUnlink}
	got := opKeys(doc.Operations())
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got operations %v, want %v", got, want)
	}
}

// The structural check itself must fail on broken documents.
func TestOpenAPIAccountsDocCheckFails(t *testing.T) {
	data, err := os.ReadFile(accountsDocPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string
		want     string
	}{
		{"version", "openapi: 3.1.0", "openapi: 3.0.3", "want 3.1.x"},
		{"dangling $ref", `$ref: "#/components/schemas/Me"`, `$ref: "#/components/schemas/Myself"`, `no "Myself"`},
		{"unquoted status", `"204":`, `204:`, "want a string (quote it)"},
		{"undeclared path parameter", "- name: provider\n          in: path", "- name: platform\n          in: path", "{provider} is not declared"},
		{"no responses", "      responses:\n        \"204\":\n          description: Logged out", "      responses: {}\n      x-was:\n        \"204\":\n          description: Logged out", "has no responses"},
		{"undefined security scheme", "- playerToken: []", "- playerTokn: []", `scheme "playerTokn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(data), tt.old) {
				t.Fatalf("%s no longer holds %q; update the test", accountsDocPath, tt.old)
			}
			doc, err := openapitest.Parse("broken.yaml", []byte(strings.Replace(string(data), tt.old, tt.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, doc.Check(), tt.want)
		})
	}
}

// routeProblems checks doc against the routes registered in regs, served by h.
func routeProblems(doc *openapitest.Doc, h http.Handler, regs []openapitest.Registration) []string {
	routes, probs := openapitest.Routes(h, regs)
	probs = append(probs, doc.CompareRoutes(routes)...)
	_, pp := doc.ProbeOperations(h)
	probs = append(probs, pp...)
	return append(probs, doc.CheckMethods(h)...)
}

// TestOpenAPIAccountsRoutesMatchHandler: every route http.go registers is
// documented, and every documented operation is served by Handler (no
// catch-all 404 or 405), with the methods the document lists.
func TestOpenAPIAccountsRoutesMatchHandler(t *testing.T) {
	doc := loadAccountsDoc(t)
	h := newEnv(t, nil).handler
	regs, err := openapitest.Registrations(".")
	if err != nil {
		t.Fatal(err)
	}
	reportProblems(t, routeProblems(doc, h, regs))

	// Guard against a vacuous pass: the source reading must at least see
	// the routes accountsapi names.
	routes, _ := openapitest.Routes(h, regs)
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	for _, want := range []string{opRegister, opLogin, opSteam, opEpic, opRefresh, opLogout, opMe, opLink, opUnlink} {
		if !slices.Contains(got, want) {
			t.Errorf("routes read from http.go are %v, want them to include %s", got, want)
		}
	}
}

// mirror serves every pattern of regs by delegating to h, so a registration
// injected into the source is "served" without recompiling.
func mirror(h http.Handler, regs []openapitest.Registration) http.Handler {
	mux := http.NewServeMux()
	for _, r := range regs {
		mux.Handle(r.Pattern, h)
	}
	return mux
}

// sourcesWith returns the non-test Go files of this package, with extra
// inserted after anchor in http.go.
func sourcesWith(t *testing.T, anchor, extra string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string][]byte{}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			if sources[n], err = os.ReadFile(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	src := string(sources["http.go"])
	if !strings.Contains(src, anchor) {
		t.Fatalf("http.go no longer holds %q; update the test", anchor)
	}
	sources["http.go"] = []byte(strings.Replace(src, anchor, anchor+extra, 1))
	return sources
}

// TestOpenAPIAccountsRouteCheckFails proves the route checks fail on drift
// in either direction.
func TestOpenAPIAccountsRouteCheckFails(t *testing.T) {
	h := newEnv(t, nil).handler
	const anchor = "mux := http.NewServeMux()\n"

	t.Run("route added to http.go without documenting it", func(t *testing.T) {
		sources := sourcesWith(t, anchor, "\tmux.HandleFunc(\"POST \"+accountsapi.PathLogin+\"/otp\", s.handleLogout)\n")
		regs, err := openapitest.RegistrationsFromSource(".", sources)
		if err != nil {
			t.Fatal(err)
		}
		probs := routeProblems(loadAccountsDoc(t), mirror(h, regs), regs)
		wantProblem(t, probs, "route POST /v1/auth/login/otp (http.go:", "is not documented")
	})
	t.Run("route added in a loop", func(t *testing.T) {
		sources := sourcesWith(t, anchor, "\tfor _, p := range []string{accountsapi.PathMe + \"/avatar\", \"/v1/accounts/me/email\"} {\n\t\tmux.HandleFunc(\"PUT \"+p, s.handleMe)\n\t}\n")
		regs, err := openapitest.RegistrationsFromSource(".", sources)
		if err != nil {
			t.Fatal(err)
		}
		probs := routeProblems(loadAccountsDoc(t), mirror(h, regs), regs)
		wantProblem(t, probs, "route PUT /v1/accounts/me/avatar", "is not documented")
		wantProblem(t, probs, "route PUT /v1/accounts/me/email", "is not documented")
	})
	t.Run("pattern the source reading cannot evaluate", func(t *testing.T) {
		sources := sourcesWith(t, anchor, "\tmux.HandleFunc(strings.ToUpper(\"get /v1/x\"), s.handleMe)\n")
		_, err := openapitest.RegistrationsFromSource(".", sources)
		if err == nil || !strings.Contains(err.Error(), "cannot evaluate the pattern strings.ToUpper") {
			t.Errorf("got error %v, want one saying the pattern cannot be evaluated", err)
		}
	})
	t.Run("source misread", func(t *testing.T) {
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		for i := range regs {
			if regs[i].Pattern == opRegister {
				regs[i].Pattern = "POST /v1/auth/registr"
			}
		}
		_, probs := openapitest.Routes(h, regs)
		wantProblem(t, probs, `registers "POST /v1/auth/registr"`, "the live handler routes")
	})
	t.Run("served route missing from the document", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		paths := doc.Root["paths"].(map[string]any)
		delete(paths, accountsapi.PathIdentities+"/{provider}")
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, routeProblems(doc, h, regs), "route DELETE /v1/accounts/me/identities/{provider}", "is not documented")
	})
	t.Run("documented path that is not served", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		paths := doc.Root["paths"].(map[string]any)
		paths["/v1/auth/otp"] = map[string]any{"post": map[string]any{
			"responses": map[string]any{"204": map[string]any{"description": "Signed in."}}}}
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		probs := routeProblems(doc, h, regs)
		wantProblem(t, probs, "documented POST /v1/auth/otp", "got the catch-all 404")
		wantProblem(t, probs, "documented POST /v1/auth/otp is not a route")
	})
	t.Run("documented method that is not served", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		item := doc.Root["paths"].(map[string]any)[accountsapi.PathRegister].(map[string]any)
		item["put"] = item["post"]
		regs, err := openapitest.Registrations(".")
		if err != nil {
			t.Fatal(err)
		}
		probs := routeProblems(doc, h, regs)
		wantProblem(t, probs, "documented PUT /v1/auth/register", "got the catch-all 405")
		wantProblem(t, probs, "/v1/auth/register answers Allow [POST], but the document has [POST PUT]")
	})
}

func TestOpenAPIAccountsSchemasMatchWireTypes(t *testing.T) {
	doc := loadAccountsDoc(t)
	reportProblems(t, doc.CompareSchemas(accountsSchemaTypes))

	// Limits and enumerations the document repeats from accountsapi.
	prop := func(schema, name string) map[string]any {
		t.Helper()
		s, ok := doc.Schema(schema)
		if !ok {
			t.Fatalf("no schema %s", schema)
		}
		p, ok := s["properties"].(map[string]any)[name].(map[string]any)
		if !ok {
			t.Fatalf("schema %s has no property %s", schema, name)
		}
		return p
	}
	for _, schema := range []string{"RegisterRequest", "LoginRequest"} {
		u := prop(schema, "username")
		if u["minLength"] != accountsapi.MinUsernameLen || u["maxLength"] != accountsapi.MaxUsernameLen {
			t.Errorf("%s.username: got length %v..%v, want %d..%d", schema, u["minLength"], u["maxLength"], accountsapi.MinUsernameLen, accountsapi.MaxUsernameLen)
		}
		if p := prop(schema, "password"); p["maxLength"] != accountsapi.MaxPasswordLen {
			t.Errorf("%s.password: got maxLength %v, want %d", schema, p["maxLength"], accountsapi.MaxPasswordLen)
		}
	}
	if got, want := fmt.Sprint(prop("AuthResponse", "token_type")["enum"]), fmt.Sprint([]string{accountsapi.TokenTypeBearer}); got != want {
		t.Errorf("AuthResponse.token_type: got enum %s, want %s", got, want)
	}
	providers := fmt.Sprint([]string{accountsapi.ProviderSteam, accountsapi.ProviderEpic})
	for _, s := range []string{"LinkRequest", "Identity"} {
		if got := fmt.Sprint(prop(s, "provider")["enum"]); got != providers {
			t.Errorf("%s.provider: got enum %s, want %s", s, got, providers)
		}
	}
	unlink, _ := doc.Operation("DELETE", accountsapi.PathIdentities+"/{provider}")
	params, _ := doc.Parameters(unlink)
	if len(params) != 1 || fmt.Sprint(params[0]["schema"].(map[string]any)["enum"]) != providers {
		t.Errorf("unlink parameters: got %v, want one provider with enum %s", params, providers)
	}
}

// structWith returns t with field name's tag and type replaced (typ nil
// keeps the type), or with a new field when t has none of that name.
func structWith(t reflect.Type, name string, typ reflect.Type, tag string) reflect.Type {
	var fields []reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == name {
			found = true
			f.Tag = reflect.StructTag(tag)
			if typ != nil {
				f.Type = typ
			}
		}
		fields = append(fields, f)
	}
	if !found {
		fields = append(fields, reflect.StructField{Name: name, Type: typ, Tag: reflect.StructTag(tag)})
	}
	return reflect.StructOf(fields)
}

// TestOpenAPIAccountsSchemaCheckFails proves the schema check catches drift
// of the Go types and of the document.
func TestOpenAPIAccountsSchemaCheckFails(t *testing.T) {
	goDrift := []struct {
		name   string
		schema string
		typ    reflect.Type
		want   []string
	}{
		{"omitempty dropped", "AuthResponse",
			structWith(reflect.TypeFor[accountsapi.AuthResponse](), "NewAccount", nil, `json:"new_account"`),
			[]string{`"new_account" is always sent`, "but is not required"}},
		{"omitempty added", "Identity",
			structWith(reflect.TypeFor[accountsapi.Identity](), "LinkedAt", nil, `json:"linked_at,omitempty"`),
			[]string{`"linked_at" is required but is omitempty in Go`}},
		{"field renamed", "RefreshRequest",
			structWith(reflect.TypeFor[accountsapi.RefreshRequest](), "RefreshToken", nil, `json:"refreshToken"`),
			[]string{`property "refreshToken"`, "is missing"}},
		{"field added", "Me",
			structWith(reflect.TypeFor[accountsapi.Me](), "Banned", reflect.TypeFor[bool](), `json:"banned"`),
			[]string{`property "banned"`, "is missing"}},
		{"type changed", "AuthResponse",
			structWith(reflect.TypeFor[accountsapi.AuthResponse](), "ExpiresIn", reflect.TypeFor[string](), `json:"expires_in"`),
			[]string{`property "expires_in"`, "type is integer, want string"}},
	}
	for _, tt := range goDrift {
		t.Run(tt.name, func(t *testing.T) {
			types := cloneTypes(accountsSchemaTypes)
			types[tt.schema] = tt.typ
			wantProblem(t, loadAccountsDoc(t).CompareSchemas(types), tt.want...)
		})
	}

	docDrift := []struct {
		name   string
		mutate func(schemas map[string]any)
		want   []string
	}{
		{"required property dropped", func(s map[string]any) {
			a := s["AuthResponse"].(map[string]any)
			a["required"] = slices.DeleteFunc(a["required"].([]any), func(v any) bool { return v == "access_token" })
		}, []string{`"access_token" is always sent`}},
		{"date-time format dropped", func(s map[string]any) {
			delete(s["Identity"].(map[string]any)["properties"].(map[string]any)["linked_at"].(map[string]any), "format")
		}, []string{`property "linked_at"`, "want date-time"}},
		{"schema without a Go type", func(s map[string]any) {
			s["Session"] = map[string]any{"type": "object"}
		}, []string{"schema Session has no Go type"}},
		{"array of the wrong items", func(s map[string]any) {
			s["Me"].(map[string]any)["properties"].(map[string]any)["identities"].(map[string]any)["items"] = map[string]any{"type": "string"}
		}, []string{`property "identities"`, "items: is inline, want $ref #/components/schemas/Identity"}},
	}
	for _, tt := range docDrift {
		t.Run(tt.name, func(t *testing.T) {
			doc := loadAccountsDoc(t)
			tt.mutate(doc.Root["components"].(map[string]any)["schemas"].(map[string]any))
			wantProblem(t, doc.CompareSchemas(accountsSchemaTypes), tt.want...)
		})
	}
}

func cloneTypes(m map[string]reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestOpenAPIAccountsErrorCodes: every error answer is an ErrorBody listing
// codes whose apierr status is the answer's, and the answers every route of
// a kind must document are there.
func TestOpenAPIAccountsErrorCodes(t *testing.T) {
	doc := loadAccountsDoc(t)
	codes, probs := doc.CheckErrors("ErrorBody")
	reportProblems(t, probs)
	for _, op := range doc.Operations() {
		got := codes[op.Key()]
		want := map[int][]string{http.StatusInternalServerError: {"internal"}}
		if op.Spec["requestBody"] != nil {
			want[http.StatusBadRequest] = []string{"bad_request"}
			want[http.StatusRequestEntityTooLarge] = []string{"payload_too_large"}
			want[http.StatusUnsupportedMediaType] = []string{"unsupported_media_type"}
		}
		if op.Spec["security"] != nil && len(op.Spec["security"].([]any)) > 0 {
			want[http.StatusUnauthorized] = []string{"unauthenticated", "invalid_token", "token_expired"}
			want[http.StatusForbidden] = []string{"permission_denied"}
		}
		for status, wantCodes := range want {
			for _, c := range wantCodes {
				if !slices.Contains(got[status], c) {
					t.Errorf("%s %d: got codes %v, want them to include %s", op.Key(), status, got[status], c)
				}
			}
		}
	}

	t.Run("fails on a code of another status", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		bad := doc.Root["components"].(map[string]any)["responses"].(map[string]any)["BadRequest"].(map[string]any)
		bad["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)["allOf"].([]any)[1] =
			map[string]any{"properties": map[string]any{"code": map[string]any{"enum": []any{"bad_request", "conflict"}}}}
		_, probs := doc.CheckErrors("ErrorBody")
		wantProblem(t, probs, "POST /v1/auth/register 400", `code "conflict" is answered with HTTP 409, not 400`)
	})
	t.Run("fails on a 429 without Retry-After", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		delete(doc.Root["components"].(map[string]any)["responses"].(map[string]any)["RateLimited"].(map[string]any), "headers")
		_, probs := doc.CheckErrors("ErrorBody")
		wantProblem(t, probs, "POST /v1/auth/login 429", "documents no Retry-After header")
	})
	t.Run("fails on an error answer listing no codes", func(t *testing.T) {
		doc := loadAccountsDoc(t)
		me := doc.Root["paths"].(map[string]any)[accountsapi.PathMe].(map[string]any)["get"].(map[string]any)
		me["responses"].(map[string]any)["404"] = map[string]any{"description": "gone", "content": map[string]any{
			"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorBody"}}}}
		_, probs := doc.CheckErrors("ErrorBody")
		wantProblem(t, probs, "GET /v1/accounts/me 404", "list the codes")
	})
}

// conformance sends requests to a service, checks each answer against the
// document and records which documented answers were seen.
type conformance struct {
	t       *testing.T
	doc     *openapitest.Doc
	covered map[string]map[int]bool
}

// apiCall is one request: op is the documented operation, path the concrete
// path ("" for op's own), ctype "" means application/json when there is a
// body.
type apiCall struct {
	op, path, body, ctype, token string
}

// anyStatus accepts whatever status the document allows.
const anyStatus = -1

func (c *conformance) do(e *env, name string, cl apiCall, want int) response {
	c.t.Helper()
	method, tmpl, _ := strings.Cut(cl.op, " ")
	op, ok := c.doc.Operation(method, tmpl)
	if !ok {
		c.t.Fatalf("%s: %s is not documented", name, cl.op)
	}
	path := cl.path
	if path == "" {
		path = tmpl
	}
	ctype := cl.ctype
	if ctype == "" && cl.body != "" {
		ctype = "application/json"
	}
	var hdr map[string]string
	if cl.token != "" {
		hdr = map[string]string{"Authorization": "Bearer " + cl.token}
	}
	r := e.do(method, path, ctype, strings.NewReader(cl.body), hdr)
	if want != anyStatus && r.status != want {
		c.t.Errorf("%s: %s %s got %d %s, want %d", name, method, path, r.status, r.body, want)
	}
	for _, p := range c.doc.CheckResponse(op, r.status, r.header, r.body) {
		c.t.Errorf("%s: %s", name, p)
	}
	if r.status < 300 && cl.body != "" {
		for _, p := range c.doc.CheckRequest(op, []byte(cl.body)) {
			c.t.Errorf("%s: the request that succeeded does not match the document: %s", name, p)
		}
	}
	if c.covered[op.Key()] == nil {
		c.covered[op.Key()] = map[int]bool{}
	}
	c.covered[op.Key()][r.status] = true
	return r
}

// mint signs an access token without a sign-in.
func mint(t *testing.T, e *env, playerID, cell string, ttl time.Duration) string {
	t.Helper()
	tok, _, err := e.signer.IssuePlayer(playerID, cell, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearerRequired(op openapitest.Operation) bool {
	sec, _ := op.Spec["security"].([]any)
	return len(sec) > 0
}

// TestOpenAPIAccountsAnswersMatchDoc drives every route through its
// documented answers and checks each real answer against the document:
// status documented, body valid against its schema with no undocumented
// field, required headers present. Every documented answer must be
// exercised (or be listed in notExercised with the reason).
func TestOpenAPIAccountsAnswersMatchDoc(t *testing.T) {
	c := &conformance{t: t, doc: loadAccountsDoc(t), covered: map[string]map[int]bool{}}
	link := func(provider, ticket string) string {
		if provider == accountsapi.ProviderEpic {
			return linkBody(accountsapi.LinkRequest{Provider: provider, IDToken: ticket})
		}
		return linkBody(accountsapi.LinkRequest{Provider: provider, Ticket: ticket})
	}
	wellFormedRefresh := refreshBody(strings.Repeat("A", 43))

	// A working cell.
	e := newEnv(t, nil)
	alice := decodeAuth(t, c.do(e, "register", apiCall{op: opRegister, body: authBody("alice", "password1")}, 201))
	c.do(e, "register taken", apiCall{op: opRegister, body: authBody("ALICE", "password2")}, 409)
	c.do(e, "register short username", apiCall{op: opRegister, body: authBody("al", "password1")}, 400)
	c.do(e, "login", apiCall{op: opLogin, body: authBody("alice", "password1")}, 200)
	c.do(e, "login wrong password", apiCall{op: opLogin, body: authBody("alice", "password2")}, 401)
	e.steam.add("steam-bob", "76561198000000002", "Bob")
	bob := decodeAuth(t, c.do(e, "steam first", apiCall{op: opSteam, body: steamBody("steam-bob")}, 201))
	c.do(e, "steam again", apiCall{op: opSteam, body: steamBody("steam-bob")}, 200)
	c.do(e, "steam rejected", apiCall{op: opSteam, body: steamBody("forged")}, 401)
	e.epic.add("epic-carol", "0123456789abcdef0123456789abcdef", "")
	c.do(e, "epic first", apiCall{op: opEpic, body: epicBody("epic-carol")}, 201)
	c.do(e, "epic again", apiCall{op: opEpic, body: epicBody("epic-carol")}, 200)
	c.do(e, "epic rejected", apiCall{op: opEpic, body: epicBody("forged")}, 401)
	c.do(e, "refresh", apiCall{op: opRefresh, body: refreshBody(alice.RefreshToken)}, 200)
	c.do(e, "refresh reused", apiCall{op: opRefresh, body: refreshBody(alice.RefreshToken)}, 401)
	c.do(e, "refresh without token", apiCall{op: opRefresh, body: `{}`}, 400)
	c.do(e, "logout", apiCall{op: opLogout, body: refreshBody(bob.RefreshToken)}, 204)
	c.do(e, "logout without token", apiCall{op: opLogout, body: `{}`}, 400)
	c.do(e, "me", apiCall{op: opMe, token: alice.AccessToken}, 200)
	c.do(e, "me without token", apiCall{op: opMe}, 401)
	c.do(e, "me garbage token", apiCall{op: opMe, token: "not-a-token"}, 401)
	expiring := mint(t, e, alice.PlayerID, cellID, time.Minute)
	e.clock.Advance(2 * time.Minute)
	if b := c.do(e, "me expired token", apiCall{op: opMe, token: expiring}, 401).errBody(t); b.Code != apierr.TokenExpired {
		t.Errorf("me expired token: got code %s, want %s", b.Code, apierr.TokenExpired)
	}
	aliceTok := mint(t, e, alice.PlayerID, cellID, time.Minute)
	otherCell := mint(t, e, alice.PlayerID, "us-east", time.Minute)
	ghost := mint(t, e, uuid.NewString(), cellID, time.Minute)
	c.do(e, "me other cell", apiCall{op: opMe, token: otherCell}, 403)
	c.do(e, "me unknown player", apiCall{op: opMe, token: ghost}, 404)
	e.steam.add("steam-alice", "76561198000000001", "Alice")
	c.do(e, "link", apiCall{op: opLink, body: link("steam", "steam-alice"), token: aliceTok}, 201)
	c.do(e, "link again", apiCall{op: opLink, body: link("steam", "steam-alice"), token: aliceTok}, 200)
	c.do(e, "me with an identity", apiCall{op: opMe, token: aliceTok}, 200)
	c.do(e, "link without token", apiCall{op: opLink, body: link("steam", "steam-alice")}, 401)
	c.do(e, "link another player's account", apiCall{op: opLink, body: link("steam", "steam-bob"), token: aliceTok}, 409)
	c.do(e, "link rejected ticket", apiCall{op: opLink, body: link("steam", "forged"), token: aliceTok}, 401)
	c.do(e, "link unknown provider", apiCall{op: opLink, body: `{"provider":"xbox","ticket":"x"}`, token: aliceTok}, 400)
	c.do(e, "link other cell", apiCall{op: opLink, body: link("steam", "steam-alice"), token: otherCell}, 403)
	e.epic.add("epic-dave", "fedcba9876543210fedcba9876543210", "Dave")
	c.do(e, "link unknown player", apiCall{op: opLink, body: link("epic", "epic-dave"), token: ghost}, 404)
	steamPath := accountsapi.PathIdentity(accountsapi.ProviderSteam)
	c.do(e, "unlink", apiCall{op: opUnlink, path: steamPath, token: aliceTok}, 204)
	c.do(e, "unlink not linked", apiCall{op: opUnlink, path: steamPath, token: aliceTok}, 404)
	c.do(e, "unlink unknown provider", apiCall{op: opUnlink, path: accountsapi.PathIdentity("xbox"), token: aliceTok}, 404)
	c.do(e, "unlink last way to sign in", apiCall{op: opUnlink, path: steamPath, token: bob.AccessToken}, 409)
	c.do(e, "unlink without token", apiCall{op: opUnlink, path: steamPath}, 401)
	c.do(e, "unlink other cell", apiCall{op: opUnlink, path: steamPath, token: otherCell}, 403)

	// Sign-in methods switched off.
	off := newEnv(t, func(cfg *accounts.Config, d *accounts.Deps) { cfg.PasswordAuth, d.Steam, d.Epic = false, nil, nil })
	offTok := mint(t, off, uuid.NewString(), cellID, time.Minute)
	c.do(off, "register password off", apiCall{op: opRegister, body: authBody("alice", "password1")}, 403)
	c.do(off, "login password off", apiCall{op: opLogin, body: authBody("alice", "password1")}, 403)
	c.do(off, "steam off", apiCall{op: opSteam, body: steamBody("t")}, 403)
	c.do(off, "epic off", apiCall{op: opEpic, body: epicBody("t")}, 403)
	c.do(off, "link steam off", apiCall{op: opLink, body: link("steam", "t"), token: offTok}, 403)

	// The directory and the platforms down.
	down := newEnv(t, nil)
	downTok := mint(t, down, uuid.NewString(), cellID, time.Minute)
	down.homes.err = errors.New("dial tcp 10.0.0.9:4100: connection refused")
	c.do(down, "register directory down", apiCall{op: opRegister, body: authBody("alice", "password1")}, 503)
	down.steam.fail(platform.Unavailable("steam.Verify", errors.New("timeout")))
	down.epic.fail(platform.Unavailable("epic.Verify", errors.New("timeout")))
	c.do(down, "steam platform down", apiCall{op: opSteam, body: steamBody("t")}, 503)
	c.do(down, "epic platform down", apiCall{op: opEpic, body: epicBody("t")}, 503)
	c.do(down, "link platform down", apiCall{op: opLink, body: link("steam", "t"), token: downTok}, 503)

	// The store down.
	bad := newEnv(t, func(_ *accounts.Config, d *accounts.Deps) { d.Store = failingStore{} })
	badTok := mint(t, bad, uuid.NewString(), cellID, time.Minute)
	bad.steam.add("t-steam", "76561198000000003", "")
	bad.epic.add("t-epic", "00000000000000000000000000000003", "")
	for _, cl := range []apiCall{
		{op: opRegister, body: authBody("alice", "password1")},
		{op: opLogin, body: authBody("alice", "password1")},
		{op: opSteam, body: steamBody("t-steam")},
		{op: opEpic, body: epicBody("t-epic")},
		{op: opRefresh, body: wellFormedRefresh},
		{op: opLogout, body: wellFormedRefresh},
		{op: opMe, token: badTok},
		{op: opLink, body: link("steam", "t-steam"), token: badTok},
		{op: opUnlink, path: steamPath, token: badTok},
	} {
		c.do(bad, cl.op+" store down", cl, 500)
	}

	// Generic probes of every documented operation.
	tight := func(cfg *accounts.Config, _ *accounts.Deps) {
		cfg.RateLimit = accounts.RateLimitConfig{
			PerSource: accounts.Bucket{Burst: 1, Every: time.Hour}, PerAccount: accounts.Bucket{Burst: 1, Every: time.Hour}, FailureCost: 1,
		}
	}
	for _, op := range c.doc.Operations() {
		path := c.doc.SamplePath(op)
		hasBody := op.Spec["requestBody"] != nil
		e := newEnv(t, nil)
		tok := ""
		if bearerRequired(op) {
			tok = mint(t, e, uuid.NewString(), cellID, time.Minute)
			// Without a token: 401 unauthenticated before anything else.
			if b := c.do(e, op.Key()+" without token", apiCall{op: op.Key(), path: path, body: `{}`}, 401).errBody(t); b.Code != apierr.Unauthenticated {
				t.Errorf("%s without token: got code %s, want %s", op.Key(), b.Code, apierr.Unauthenticated)
			}
		} else if r := c.do(e, op.Key()+" without token", apiCall{op: op.Key(), path: path, body: `{}`}, anyStatus); r.status == 401 && r.errBody(t).Code == apierr.Unauthenticated {
			t.Errorf("%s asks for a bearer token, but the document has no security for it", op.Key())
		}
		if hasBody {
			c.do(e, op.Key()+" malformed", apiCall{op: op.Key(), path: path, body: `{`, token: tok}, 400)
			c.do(e, op.Key()+" unknown field", apiCall{op: op.Key(), path: path, body: `{"nope":1}`, token: tok}, 400)
			c.do(e, op.Key()+" too large", apiCall{op: op.Key(), path: path, body: `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, token: tok}, 413)
			c.do(e, op.Key()+" not JSON", apiCall{op: op.Key(), path: path, body: `{}`, ctype: "text/plain", token: tok}, 415)
		}
		// Rate limits: a one-request budget per source. The second request
		// is refused exactly where the document says it can be.
		lim := newEnv(t, tight)
		if tok != "" {
			tok = mint(t, lim, uuid.NewString(), cellID, time.Minute)
		}
		body := ""
		if hasBody {
			body = `{}`
		}
		c.do(lim, op.Key()+" first of budget", apiCall{op: op.Key(), path: path, body: body, token: tok}, anyStatus)
		_, documents429 := op.Spec["responses"].(map[string]any)["429"]
		r := c.do(lim, op.Key()+" over budget", apiCall{op: op.Key(), path: path, body: body, token: tok}, anyStatus)
		switch {
		case documents429 && r.status != http.StatusTooManyRequests:
			t.Errorf("%s over its rate limit: got %d, want 429 (the document says it is rate limited)", op.Key(), r.status)
		case !documents429 && r.status == http.StatusTooManyRequests:
			t.Errorf("%s over its rate limit: got 429, but the document has no 429 for it", op.Key())
		}
	}

	// Every documented answer was seen.
	notExercised := map[string]string{
		opLogin + " 503": "answered only when the request's context ends while waiting for a hashing slot, i.e. the client is gone",
	}
	for _, op := range c.doc.Operations() {
		for status := range op.Spec["responses"].(map[string]any) {
			key := op.Key() + " " + status
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Fatalf("%s: status %q: %v", op.Key(), status, err)
			}
			seen := c.covered[op.Key()][code]
			switch reason, listed := notExercised[key]; {
			case !seen && !listed:
				t.Errorf("documented answer %s was never exercised: add a scenario", key)
			case seen && listed:
				t.Errorf("documented answer %s was exercised, but notExercised says %q: drop it from the list", key, reason)
			}
			delete(notExercised, key)
		}
	}
	for key := range notExercised {
		t.Errorf("notExercised lists %s, which the document does not have", key)
	}
}

// TestOpenAPIAccountsConformanceFails proves that answers that contradict the
// document are reported.
func TestOpenAPIAccountsConformanceFails(t *testing.T) {
	doc := loadAccountsDoc(t)
	e := newEnv(t, nil)
	reg, _ := doc.Operation("POST", accountsapi.PathRegister)
	r := e.post(accountsapi.PathRegister, authBody("alice", "password1"))

	// The real answer is fine...
	reportProblems(t, doc.CheckResponse(reg, r.status, r.header, r.body))
	// ...but not as an undocumented status, with a field too many or one
	// missing, or without the Retry-After a 429 promises.
	wantProblem(t, doc.CheckResponse(reg, http.StatusOK, r.header, r.body), "does not document status 200")
	extra := strings.Replace(string(r.body), "{", `{"session_id":"s",`, 1)
	wantProblem(t, doc.CheckResponse(reg, r.status, r.header, []byte(extra)), `field "session_id" is not documented`)
	missing := strings.Replace(string(r.body), `"token_type":"Bearer",`, "", 1)
	wantProblem(t, doc.CheckResponse(reg, r.status, r.header, []byte(missing)), `required field "token_type" is missing`)
	wrongCode := []byte(`{"code":"conflict","message":"m"}`)
	wantProblem(t, doc.CheckResponse(reg, http.StatusBadRequest, http.Header{"Content-Type": {"application/json"}}, wrongCode), `got "conflict", want one of [bad_request]`)
	limited := []byte(`{"code":"rate_limited","message":"m"}`)
	wantProblem(t, doc.CheckResponse(reg, http.StatusTooManyRequests, http.Header{"Content-Type": {"application/json"}}, limited), "required header Retry-After is missing")
	wantProblem(t, doc.CheckRequest(reg, []byte(`{"username":"alice"}`)), `required field "password" is missing`)
	wantProblem(t, doc.CheckRequest(reg, []byte(`{"username":"alice","password":"password1","email":"a@b"}`)), `field "email" is not documented`)
}
