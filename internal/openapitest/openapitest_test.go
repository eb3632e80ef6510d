package openapitest

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRegistrationsFromSource(t *testing.T) {
	sources := map[string][]byte{
		"routes.go": []byte(`package p

import (
	"context"
	"log/slog"
	"net/http"

	api "github.com/livecell/livecell/cell/accountsapi"
)

const base = "/v1/x"

var paths = []string{"/a", "/b"}

func h(w http.ResponseWriter, r *http.Request) {}

type server struct{ mux *http.ServeMux }

func (s *server) routes() {
	s.mux.Handle("GET /field", http.NotFoundHandler())
	s.mux.HandleFunc("GET /field-func", h)
}

func routes(mux *http.ServeMux, lh slog.Handler) {
	mux.HandleFunc(http.MethodGet+" "+base, h)
	mux.Handle("POST "+api.PathMe, http.HandlerFunc(h))
	for _, p := range paths {
		mux.HandleFunc("PUT "+p, h)
	}
	const local = "/local"
	mux.HandleFunc("DELETE "+local+"/{id}", h)
	_ = lh.Handle(context.Background(), slog.Record{}) // not a route
	http.HandleFunc("GET /default", h)
}
`),
		"more.go": []byte(`package p

import "net/http"

const other = "/other"

func more() http.Handler {
	m := http.NewServeMux()
	m.Handle("GET "+other, http.NotFoundHandler())
	return m
}
`),
	}
	regs, err := RegistrationsFromSource(".", sources)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range regs {
		got = append(got, r.Pattern)
	}
	want := []string{"GET /other", "GET /field", "GET /field-func", "GET /v1/x", "POST /v1/accounts/me", "PUT /a", "PUT /b", "DELETE /local/{id}", "GET /default"}
	if !slices.Equal(got, want) {
		t.Errorf("got patterns %q, want %q", got, want)
	}
	if regs[0].Pos != "more.go:9" {
		t.Errorf("got position %q, want more.go:9", regs[0].Pos)
	}
}

func TestRegistrationsRefusesWhatItCannotRead(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"function call", `mux.HandleFunc(strings.ToLower("GET /x"), nil)`, "cannot evaluate the pattern strings.ToLower"},
		{"range key", `for p := range map[string]int{"/x": 1} { mux.HandleFunc(p, nil) }`, "p is the key of a range loop"},
		{"reassigned variable", `p := "/x"; p = "/y"; mux.HandleFunc(p, nil)`, "p is assigned after its definition"},
		{"redeclared variable", `p := "/x"; p, q := "/y", 1; _ = q; mux.HandleFunc(p, nil)`, "p is assigned after its definition"},
		{"appended list", `ps := []string{"/x"}; ps = append(ps, "/y"); for _, p := range ps { mux.HandleFunc(p, nil) }`, "ps is assigned after its definition"},
		{"loop variable changed", `for _, p := range []string{"/x"} { p += "/y"; mux.HandleFunc(p, nil) }`, "p is assigned after its definition"},
		{"parameter", `mux.HandleFunc(pattern, nil)`, "pattern is not a constant, variable or loop variable"},
		{"unknown package", `mux.HandleFunc(strings.Repeat, nil)`, "is not a known constant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "package p\n\nimport (\n\t\"net/http\"\n\t\"strings\"\n)\n\nvar _ = strings.ToLower\n\nfunc f(mux *http.ServeMux, pattern string) {\n\t" + tt.body + "\n}\n"
			src = strings.Replace(src, "strings.Repeat", "http.StatusOK", 1)
			_, err := RegistrationsFromSource(".", map[string][]byte{"f.go": []byte(src)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

const schemaDoc = `
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /v1/things/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Thing"}
components:
  schemas:
    Base:
      type: object
      required: [id]
      properties:
        id: {type: string, format: uuid}
    Thing:
      allOf:
        - $ref: "#/components/schemas/Base"
        - type: object
          required: [n]
          properties:
            n: {type: integer, minimum: 1}
            at: {type: string, format: date-time}
            kind: {type: string, enum: [a, b]}
            tags: {type: array, items: {type: string, maxLength: 3}}
`

func TestValidate(t *testing.T) {
	doc, err := Parse("t.yaml", []byte(schemaDoc))
	if err != nil {
		t.Fatal(err)
	}
	if probs := doc.Check(); len(probs) > 0 {
		t.Fatalf("got problems %q, want none", probs)
	}
	thing := map[string]any{"$ref": "#/components/schemas/Thing"}
	ok := `{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":2,"at":"2025-06-01T12:00:00Z","kind":"a","tags":["x"]}`
	if probs := doc.ValidateJSON(thing, []byte(ok)); len(probs) > 0 {
		t.Errorf("valid value: got problems %q, want none", probs)
	}
	tests := []struct{ body, want string }{
		{`{"id":"nope","n":2}`, `$.id: got "nope", want a UUID`},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1.5}`, "$.n: got number 1.5, want type integer"},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":0}`, "$.n: got 0, want at least 1"},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f"}`, `required field "n" is missing`},
		{`{"n":1}`, `required field "id" is missing`},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1,"extra":true}`, `field "extra" is not documented`},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1,"at":"yesterday"}`, "want an RFC 3339 date-time"},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1,"kind":"c"}`, `got "c", want one of [a b]`},
		{`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1,"tags":["long"]}`, "$.tags[0]: got 4 characters, want at most 3"},
		{`[]`, "want type object"},
		{`{} {}`, "more than one JSON value"},
	}
	for _, tt := range tests {
		probs := doc.ValidateJSON(thing, []byte(tt.body))
		if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, tt.want) }) {
			t.Errorf("%s: got problems %q, want one containing %q", tt.body, probs, tt.want)
		}
	}
	// allOf branches do not flag each other's properties.
	base := map[string]any{"$ref": "#/components/schemas/Base"}
	if probs := doc.ValidateJSON(base, []byte(`{"id":"6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f","n":1}`)); len(probs) != 1 {
		t.Errorf("Base alone: got problems %q, want exactly the undocumented n", probs)
	}
	if probs := doc.Validate(map[string]any{"oneOf": []any{}}, "x"); len(probs) != 1 || !strings.Contains(probs[0], `"oneOf" is not supported`) {
		t.Errorf("unsupported keyword: got %q, want it reported", probs)
	}
}

func TestCompareRoutesParameterNames(t *testing.T) {
	doc, err := Parse("t.yaml", []byte(schemaDoc))
	if err != nil {
		t.Fatal(err)
	}
	probs := doc.CompareRoutes([]Route{{Method: http.MethodGet, Path: "/v1/things/{thing}", Pos: "h.go:1"}})
	if len(probs) != 1 || !strings.Contains(probs[0], "names its parameters [id], but GET /v1/things/{thing} (h.go:1) names them [thing]") {
		t.Errorf("got problems %q, want the parameter names compared", probs)
	}
	if probs := doc.CompareRoutes([]Route{{Path: "/v1/things/{id}"}}); len(probs) != 0 {
		t.Errorf("method-less route: got problems %q, want none (GET is served)", probs)
	}
}

func TestCompareSchemasMaps(t *testing.T) {
	type groups struct {
		ByCell map[string][]string `json:"by_cell"`
	}
	doc, err := Parse("maps.yaml", []byte(`openapi: 3.1.0
info: {title: t, version: "1"}
paths: {}
components:
  schemas:
    Groups:
      type: object
      required: [by_cell]
      properties:
        by_cell:
          type: object
          additionalProperties:
            type: array
            items: {type: string}
`))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]reflect.Type{"Groups": reflect.TypeFor[groups]()}
	if probs := doc.CompareSchemas(types); len(probs) != 0 {
		t.Errorf("matching map: got problems %q", probs)
	}
	if probs := doc.Validate(map[string]any{"$ref": "#/components/schemas/Groups"}, map[string]any{"by_cell": map[string]any{"eu": []any{"a"}, "us": []any{1}}}); len(probs) != 1 || !strings.Contains(probs[0], "$.by_cell.us[0]") {
		t.Errorf("map value of the wrong type: got problems %q, want one at $.by_cell.us[0]", probs)
	}
	by := doc.Root["components"].(map[string]any)["schemas"].(map[string]any)["Groups"].(map[string]any)["properties"].(map[string]any)["by_cell"].(map[string]any)
	by["additionalProperties"] = map[string]any{"type": "integer"}
	if probs := doc.CompareSchemas(types); len(probs) != 1 || !strings.Contains(probs[0], "values: type is integer, want array") {
		t.Errorf("map of the wrong values: got problems %q", probs)
	}
	delete(by, "additionalProperties")
	if probs := doc.CompareSchemas(types); len(probs) != 1 || !strings.Contains(probs[0], "no additionalProperties") {
		t.Errorf("map without additionalProperties: got problems %q", probs)
	}
}

func TestValidateItemCounts(t *testing.T) {
	d := &Doc{Name: "t"}
	schema := map[string]any{"type": "array", "minItems": 1, "maxItems": 2, "items": map[string]any{"type": "integer"}}
	for _, tt := range []struct {
		body string
		ok   bool
	}{{`[]`, false}, {`[1]`, true}, {`[1,2]`, true}, {`[1,2,3]`, false}} {
		if probs := d.ValidateJSON(schema, []byte(tt.body)); (len(probs) == 0) != tt.ok {
			t.Errorf("ValidateJSON(%s) = %v, want ok=%v", tt.body, probs, tt.ok)
		}
	}
}
