// Package openapitest keeps the OpenAPI documents under docs/openapi honest.
// Tests of the services they describe use it to check that a document is
// well formed, that its routes are exactly the routes a handler registers
// and serves, that its schemas are the JSON of the Go wire types, and that
// real answers match what it documents.
//
// Every check returns a list of problems (empty when all is well) instead
// of failing a test itself, so that tests can also prove each check fails
// when it should. It supports the subset of OpenAPI 3.1 and JSON Schema
// the livecell documents use; anything else is reported, never ignored.
package openapitest

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Doc is a parsed OpenAPI document.
type Doc struct {
	Name string         // file name, for messages
	Root map[string]any // the document, maps with string keys throughout

	parseProblems []string
}

// Load reads and parses the document at path.
func Load(path string) (*Doc, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses a YAML (or JSON) OpenAPI document. Mapping keys that are not
// strings (an unquoted response status 200, say) are kept as text and
// reported by Check.
func Parse(name string, data []byte) (*Doc, error) {
	var root any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &Doc{Name: name}
	m, ok := d.normalize(root, "").(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the document is not a mapping", name)
	}
	d.Root = m
	return d, nil
}

func (d *Doc) normalize(v any, at string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = d.normalize(e, at+"/"+k)
		}
		return v
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				ks = fmt.Sprint(k)
				d.parseProblems = append(d.parseProblems, fmt.Sprintf("%s: key %v at %s is a %T, want a string (quote it)", d.Name, k, at, k))
			}
			out[ks] = d.normalize(e, at+"/"+ks)
		}
		return out
	case []any:
		for i, e := range v {
			v[i] = d.normalize(e, at+"/"+strconv.Itoa(i))
		}
		return v
	}
	return v
}

// Methods are the operation keys of a path item, in OpenAPI's order.
var Methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Operation is one method of one path.
type Operation struct {
	Method string // upper case
	Path   string // the path template, e.g. /v1/accounts/me/identities/{provider}
	Spec   map[string]any
	Item   map[string]any // the path item, for path-level parameters
}

// Key is "METHOD /path".
func (op Operation) Key() string { return op.Method + " " + op.Path }

// Operations returns every operation, sorted by path then method order.
func (d *Doc) Operations() []Operation {
	paths, _ := d.Root["paths"].(map[string]any)
	keys := sortedKeys(paths)
	var out []Operation
	for _, p := range keys {
		item, _ := paths[p].(map[string]any)
		for _, m := range Methods {
			if spec, ok := item[m].(map[string]any); ok {
				out = append(out, Operation{Method: strings.ToUpper(m), Path: p, Spec: spec, Item: item})
			}
		}
	}
	return out
}

// Operation returns the operation for method and path template.
func (d *Doc) Operation(method, path string) (Operation, bool) {
	for _, op := range d.Operations() {
		if op.Method == method && op.Path == path {
			return op, true
		}
	}
	return Operation{}, false
}

// Resolve follows a local reference ("#/components/schemas/Me").
func (d *Doc) Resolve(ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not local (only #/... is supported)", ref)
	}
	var cur any = d.Root
	if ptr == "" {
		return cur, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("$ref %q is not a JSON pointer", ref)
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("$ref %q does not resolve: no %q", ref, tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("$ref %q does not resolve: no index %q", ref, tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("$ref %q does not resolve: %q is inside a %T", ref, tok, cur)
		}
	}
	return cur, nil
}

// Deref returns v as a mapping, following $ref until there is none.
func (d *Doc) Deref(v any) (map[string]any, error) {
	for range 32 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("got a %T, want a mapping", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		var err error
		if v, err = d.Resolve(ref); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("$ref chain longer than 32")
}

// Schema returns the component schema name.
func (d *Doc) Schema(name string) (map[string]any, bool) {
	s, ok := d.components("schemas")[name].(map[string]any)
	return s, ok
}

func (d *Doc) components(kind string) map[string]any {
	c, _ := d.Root["components"].(map[string]any)
	m, _ := c[kind].(map[string]any)
	return m
}

// Parameters returns the operation's parameters, path-level ones included
// (an operation's own parameter overrides the path's of the same name and
// location), dereferenced.
func (d *Doc) Parameters(op Operation) ([]map[string]any, []string) {
	var probs []string
	var out []map[string]any
	seen := map[string]int{}
	for _, src := range []any{op.Item["parameters"], op.Spec["parameters"]} {
		if src == nil {
			continue
		}
		list, ok := src.([]any)
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: parameters is a %T, want a list", op.Key(), src))
			continue
		}
		for i, p := range list {
			pm, err := d.Deref(p)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s: parameter %d: %v", op.Key(), i, err))
				continue
			}
			key := fmt.Sprint(pm["in"]) + ":" + fmt.Sprint(pm["name"])
			if j, ok := seen[key]; ok {
				out[j] = pm
				continue
			}
			seen[key] = len(out)
			out = append(out, pm)
		}
	}
	return out, probs
}

var (
	versionRE  = regexp.MustCompile(`^3\.1\.\d+$`)
	statusRE   = regexp.MustCompile(`^[1-5](\d\d|XX)$`)
	templateRE = regexp.MustCompile(`\{([^{}]*)\}`)
	pathKeys   = []string{"summary", "description", "servers", "parameters", "$ref"}
)

// TemplateParams returns the names of a path template's parameters.
func TemplateParams(path string) []string {
	var out []string
	for _, m := range templateRE.FindAllStringSubmatch(path, -1) {
		out = append(out, m[1])
	}
	return out
}

// Check reports what makes the document structurally invalid for our use:
// the OpenAPI version, info, every path having operations, every operation
// having described responses with valid status keys and at least one 2xx,
// path parameters matching their template, unique operation ids, security
// requirements naming defined schemes, and every $ref resolving.
func (d *Doc) Check() []string {
	probs := slices.Clone(d.parseProblems)
	add := func(format string, args ...any) { probs = append(probs, d.Name+": "+fmt.Sprintf(format, args...)) }

	if v, _ := d.Root["openapi"].(string); !versionRE.MatchString(v) {
		add("openapi is %q, want 3.1.x", d.Root["openapi"])
	}
	info, _ := d.Root["info"].(map[string]any)
	for _, k := range []string{"title", "version"} {
		if s, _ := info[k].(string); s == "" {
			add("info.%s is missing", k)
		}
	}
	schemes := d.components("securitySchemes")
	checkSecurity := func(where string, sec any) {
		if sec == nil {
			return
		}
		list, ok := sec.([]any)
		if !ok {
			add("%s: security is a %T, want a list", where, sec)
			return
		}
		for _, req := range list {
			rm, ok := req.(map[string]any)
			if !ok {
				add("%s: security requirement is a %T, want a mapping", where, req)
				continue
			}
			for name := range rm {
				if _, ok := schemes[name]; !ok {
					add("%s: security names scheme %q, which components.securitySchemes does not define", where, name)
				}
			}
		}
	}
	checkSecurity("document", d.Root["security"])

	paths, ok := d.Root["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		add("paths is missing or empty")
	}
	opIDs := map[string]string{}
	for _, p := range sortedKeys(paths) {
		if !strings.HasPrefix(p, "/") {
			add("path %q does not start with /", p)
		}
		item, ok := paths[p].(map[string]any)
		if !ok {
			add("path %s is a %T, want a mapping", p, paths[p])
			continue
		}
		nops := 0
		for k := range item {
			if slices.Contains(Methods, k) {
				nops++
			} else if !slices.Contains(pathKeys, k) && !strings.HasPrefix(k, "x-") {
				add("path %s has unknown key %q (an upper-case method?)", p, k)
			}
		}
		if nops == 0 {
			add("path %s has no operations", p)
		}
	}
	for _, op := range d.Operations() {
		where := op.Key()
		if id, _ := op.Spec["operationId"].(string); id != "" {
			if prev, dup := opIDs[id]; dup {
				add("%s: operationId %q is also %s's", where, id, prev)
			}
			opIDs[id] = where
		}
		checkSecurity(where, op.Spec["security"])
		resps, ok := op.Spec["responses"].(map[string]any)
		if !ok || len(resps) == 0 {
			add("%s has no responses", where)
		}
		success := false
		for _, status := range sortedKeys(resps) {
			if status != "default" && !statusRE.MatchString(status) {
				add("%s: response key %q is not an HTTP status", where, status)
			}
			if status[0] == '2' {
				success = true
			}
			r, err := d.Deref(resps[status])
			if err != nil {
				add("%s %s: %v", where, status, err)
				continue
			}
			if s, _ := r["description"].(string); s == "" {
				add("%s %s: response has no description", where, status)
			}
		}
		if len(resps) > 0 && !success {
			add("%s has no 2xx response", where)
		}
		if rb, ok := op.Spec["requestBody"]; ok {
			rbm, err := d.Deref(rb)
			if err != nil {
				add("%s: requestBody: %v", where, err)
			} else if c, _ := rbm["content"].(map[string]any); len(c) == 0 {
				add("%s: requestBody has no content", where)
			}
		}
		params, pp := d.Parameters(op)
		for _, s := range pp {
			add("%s", s)
		}
		tmpl := TemplateParams(op.Path)
		declared := map[string]bool{}
		for _, pm := range params {
			name, _ := pm["name"].(string)
			in, _ := pm["in"].(string)
			if name == "" || !slices.Contains([]string{"query", "header", "path", "cookie"}, in) {
				add("%s: parameter %v needs a name and in: query, header, path or cookie", where, pm["name"])
				continue
			}
			if _, ok := pm["schema"]; !ok {
				add("%s: parameter %s has no schema", where, name)
			}
			if in != "path" {
				continue
			}
			declared[name] = true
			if req, _ := pm["required"].(bool); !req {
				add("%s: path parameter %s must be required: true", where, name)
			}
			if !slices.Contains(tmpl, name) {
				add("%s: path parameter %s is not in the path template", where, name)
			}
		}
		for _, name := range tmpl {
			if !declared[name] {
				add("%s: path template parameter {%s} is not declared", where, name)
			}
		}
	}
	walkRefs(d.Root, "#", func(at, ref string) {
		if _, err := d.Resolve(ref); err != nil {
			add("at %s: %v", at, err)
		}
	})
	return probs
}

func walkRefs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if k == "$ref" {
				if s, ok := v[k].(string); ok {
					fn(at, s)
				} else {
					fn(at, fmt.Sprintf("<%T>", v[k]))
				}
				continue
			}
			walkRefs(v[k], at+"/"+k, fn)
		}
	case []any:
		for i, e := range v {
			walkRefs(e, at+"/"+strconv.Itoa(i), fn)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
