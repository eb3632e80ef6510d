package openapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// schemaKeywords are the JSON Schema keywords Validate understands; it
// reports any other keyword that would constrain a value rather than
// silently accepting what the schema may forbid.
var schemaKeywords = map[string]bool{
	"$ref": true, "allOf": true, "type": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "enum": true, "format": true,
	"minLength": true, "maxLength": true, "pattern": true, "minimum": true, "maximum": true,
	"minItems": true, "maxItems": true,
	// Annotations only.
	"description": true, "title": true, "example": true, "examples": true, "deprecated": true,
	"readOnly": true, "writeOnly": true, "default": true,
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidateJSON decodes data and validates it against schema.
func (d *Doc) ValidateJSON(schema any, data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{fmt.Sprintf("body %q is not JSON: %v", truncate(data), err)}
	}
	if dec.More() {
		return []string{fmt.Sprintf("body %q holds more than one JSON value", truncate(data))}
	}
	return d.Validate(schema, v)
}

// Validate validates v, a value decoded by encoding/json with UseNumber,
// against schema. Objects are checked strictly: a field that no property of
// the schema (or of its allOf branches) describes is reported unless the
// schema says additionalProperties: true, so undocumented fields of real
// answers cannot go unnoticed.
func (d *Doc) Validate(schema any, v any) []string {
	return d.validate(schema, v, "$", true, 0)
}

func (d *Doc) validate(schema any, v any, at string, strict bool, depth int) []string {
	if depth > 64 {
		return []string{at + ": schema nests deeper than 64"}
	}
	s, err := d.Deref(schema)
	if err != nil {
		return []string{fmt.Sprintf("%s: schema: %v", at, err)}
	}
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, at+": "+fmt.Sprintf(format, args...)) }
	for _, k := range sortedKeys(s) {
		if !schemaKeywords[k] && !strings.HasPrefix(k, "x-") {
			add("schema keyword %q is not supported by openapitest", k)
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, branch := range all {
			probs = append(probs, d.validate(branch, v, at, false, depth+1)...)
		}
	}
	if t, ok := s["type"]; ok {
		types := stringList(t)
		if got := jsonType(v); !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			add("got %s %s, want type %s", got, short(v), strings.Join(types, " or "))
			return probs
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return sameValue(e, v) }) {
		add("got %s, want one of %v", short(v), enum)
	}
	switch v := v.(type) {
	case string:
		switch s["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				add("got %q, want an RFC 3339 date-time", v)
			}
		case "uuid":
			if !uuidRE.MatchString(v) {
				add("got %q, want a UUID", v)
			}
		}
		n := utf8.RuneCountInString(v)
		if min, ok := number(s["minLength"]); ok && float64(n) < min {
			add("got %d characters, want at least %v", n, min)
		}
		if max, ok := number(s["maxLength"]); ok && float64(n) > max {
			add("got %d characters, want at most %v", n, max)
		}
		if p, ok := s["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err != nil {
				add("pattern %q does not compile: %v", p, err)
			} else if !re.MatchString(v) {
				add("got %q, want it to match %s", v, p)
			}
		}
	case json.Number:
		f, _ := v.Float64()
		if min, ok := number(s["minimum"]); ok && f < min {
			add("got %v, want at least %v", v, min)
		}
		if max, ok := number(s["maximum"]); ok && f > max {
			add("got %v, want at most %v", v, max)
		}
	case []any:
		if min, ok := number(s["minItems"]); ok && float64(len(v)) < min {
			add("got %d items, want at least %v", len(v), min)
		}
		if max, ok := number(s["maxItems"]); ok && float64(len(v)) > max {
			add("got %d items, want at most %v", len(v), max)
		}
		if items, ok := s["items"]; ok {
			for i, e := range v {
				probs = append(probs, d.validate(items, e, fmt.Sprintf("%s[%d]", at, i), true, depth+1)...)
			}
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, name := range sortedKeys(props) {
			if e, ok := v[name]; ok {
				probs = append(probs, d.validate(props[name], e, at+"."+name, true, depth+1)...)
			}
		}
		for _, r := range stringList(s["required"]) {
			if _, ok := v[r]; !ok {
				add("required field %q is missing", r)
			}
		}
		ap, hasAP := s["additionalProperties"]
		if apb, isBool := ap.(bool); (hasAP && isBool && !apb) || (!hasAP && strict) {
			known := d.allProperties(s, 0)
			for _, k := range sortedKeys(v) {
				if !known[k] {
					add("field %q is not documented", k)
				}
			}
		} else if apSchema, ok := ap.(map[string]any); ok {
			for _, k := range sortedKeys(v) {
				if _, ok := props[k]; !ok {
					probs = append(probs, d.validate(apSchema, v[k], at+"."+k, true, depth+1)...)
				}
			}
		}
	}
	return probs
}

// allProperties returns the property names of s and of its allOf branches.
func (d *Doc) allProperties(s map[string]any, depth int) map[string]bool {
	out := map[string]bool{}
	if depth > 32 {
		return out
	}
	props, _ := s["properties"].(map[string]any)
	for k := range props {
		out[k] = true
	}
	all, _ := s["allOf"].([]any)
	for _, b := range all {
		if bs, err := d.Deref(b); err == nil {
			for k := range d.allProperties(bs, depth+1) {
				out[k] = true
			}
		}
	}
	return out
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, ok := new(big.Int).SetString(v.String(), 10); ok {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// sameValue compares a YAML enum value with a decoded JSON value.
func sameValue(e, v any) bool {
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		ef, eok := number(e)
		return err == nil && eok && f == ef
	}
	return e == v
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func short(v any) string {
	b, _ := json.Marshal(v)
	return string(truncate(b))
}

func truncate(b []byte) []byte {
	if len(b) > 120 {
		return append(b[:117:117], "..."...)
	}
	return b
}

// jsonField is one field of a Go type's JSON encoding.
type jsonField struct {
	name     string
	goName   string
	typ      reflect.Type
	optional bool // omitempty or omitzero
}

// jsonFields lists t's JSON fields as encoding/json sees them: exported,
// not "-", named by their tag, embedded structs flattened.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && !hasTag {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, jsonFields(et)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := false
		for o := range strings.SplitSeq(opts, ",") {
			optional = optional || o == "omitempty" || o == "omitzero"
		}
		out = append(out, jsonField{name: name, goName: t.Name() + "." + f.Name, typ: f.Type, optional: optional})
	}
	return out
}

var timeType = reflect.TypeFor[time.Time]()

// CompareSchemas checks that the document's component schemas are the JSON
// encodings of types (schema name → Go struct type): every schema has a
// type and every type a schema; each schema is an object whose properties
// are exactly the type's JSON field names, whose required list is exactly
// the fields without omitempty (encoding/json always sends those), and
// whose property types match the Go field types (string, integer, number,
// boolean, date-time for time.Time, arrays by element, maps with string
// keys by additionalProperties, structs by $ref to their own schema).
func (d *Doc) CompareSchemas(types map[string]reflect.Type) []string {
	var probs []string
	byType := map[reflect.Type]string{}
	for name, t := range types {
		byType[t] = name
	}
	schemas := d.components("schemas")
	for _, name := range sortedKeys(schemas) {
		if _, ok := types[name]; !ok {
			probs = append(probs, fmt.Sprintf("%s: schema %s has no Go type to be checked against; add it to the test's table", d.Name, name))
		}
	}
	for _, name := range sortedKeys(types) {
		t := types[name]
		s, ok := d.Schema(name)
		if !ok {
			probs = append(probs, fmt.Sprintf("%s: no schema %s for Go type %v", d.Name, name, t))
			continue
		}
		probs = append(probs, d.compareStruct(name, s, t, byType)...)
	}
	return probs
}

func (d *Doc) compareStruct(name string, s map[string]any, t reflect.Type, byType map[reflect.Type]string) []string {
	var probs []string
	add := func(format string, args ...any) {
		probs = append(probs, fmt.Sprintf("%s: schema %s (Go %v): ", d.Name, name, t)+fmt.Sprintf(format, args...))
	}
	if t.Kind() != reflect.Struct {
		add("Go type is a %v, want a struct", t.Kind())
		return probs
	}
	if ty, _ := s["type"].(string); ty != "object" {
		add("type is %v, want object", s["type"])
	}
	if _, ok := s["allOf"]; ok {
		add("allOf is not supported in a schema checked against a Go type")
	}
	props, _ := s["properties"].(map[string]any)
	fields := jsonFields(t)
	var wantRequired []string
	goNames := map[string]bool{}
	for _, f := range fields {
		goNames[f.name] = true
		if !f.optional {
			wantRequired = append(wantRequired, f.name)
		}
		p, ok := props[f.name]
		if !ok {
			add("property %q (%s) is missing", f.name, f.goName)
			continue
		}
		for _, e := range d.compareType(p, f.typ, byType, 0) {
			add("property %q (%s): %s", f.name, f.goName, e)
		}
	}
	for _, p := range sortedKeys(props) {
		if !goNames[p] {
			add("property %q has no JSON field in Go", p)
		}
	}
	gotRequired := stringList(s["required"])
	for _, r := range wantRequired {
		if !slices.Contains(gotRequired, r) {
			add("property %q is always sent (no omitempty in Go) but is not required", r)
		}
	}
	for _, r := range gotRequired {
		if goNames[r] && !slices.Contains(wantRequired, r) {
			add("property %q is required but is omitempty in Go, so it may be absent", r)
		} else if !goNames[r] {
			add("required lists %q, which is no JSON field in Go", r)
		}
	}
	return probs
}

func (d *Doc) compareType(p any, t reflect.Type, byType map[reflect.Type]string, depth int) []string {
	if depth > 16 {
		return []string{"type nests deeper than 16"}
	}
	pm, isMap := p.(map[string]any)
	if !isMap {
		return []string{fmt.Sprintf("schema is a %T, want a mapping", p)}
	}
	if ref, ok := pm["$ref"].(string); ok {
		comp, isComp := strings.CutPrefix(ref, "#/components/schemas/")
		if name, named := byType[t]; named {
			if !isComp || comp != name {
				return []string{fmt.Sprintf("refers to %s, want #/components/schemas/%s for Go %v", ref, name, t)}
			}
			return nil
		}
		if isComp && t.Kind() == reflect.Struct && t != timeType {
			return []string{fmt.Sprintf("refers to %s, but Go %v is in no schema of the test's table", ref, t)}
		}
		target, err := d.Deref(pm)
		if err != nil {
			return []string{err.Error()}
		}
		return d.compareType(target, t, byType, depth+1)
	}
	if t.Kind() == reflect.Pointer {
		// encoding/json sends what the pointer points to, or null when it
		// is nil; a nil pointer field is omitempty in every livecell type.
		return d.compareType(p, t.Elem(), byType, depth+1)
	}
	got := stringList(pm["type"])
	want := func(ty string) []string {
		if len(got) != 1 || got[0] != ty {
			return []string{fmt.Sprintf("type is %v, want %s for Go %v", pm["type"], ty, t)}
		}
		return nil
	}
	switch {
	case t == timeType:
		if probs := want("string"); probs != nil {
			return probs
		}
		if pm["format"] != "date-time" {
			return []string{fmt.Sprintf("format is %v, want date-time for Go time.Time", pm["format"])}
		}
		return nil
	case t.Kind() == reflect.String:
		return want("string")
	case t.Kind() == reflect.Bool:
		return want("boolean")
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return want("integer")
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return want("number")
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() != reflect.Uint8:
		if probs := want("array"); probs != nil {
			return probs
		}
		items, ok := pm["items"]
		if !ok {
			return []string{"array has no items schema"}
		}
		var probs []string
		for _, e := range d.compareType(items, t.Elem(), byType, depth+1) {
			probs = append(probs, "items: "+e)
		}
		return probs
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		// encoding/json sends a map with string keys as an object whose
		// values all have the element type.
		if probs := want("object"); probs != nil {
			return probs
		}
		ap, ok := pm["additionalProperties"]
		if !ok {
			return []string{fmt.Sprintf("object has no additionalProperties schema for the values of Go %v", t)}
		}
		var probs []string
		for _, e := range d.compareType(ap, t.Elem(), byType, depth+1) {
			probs = append(probs, "values: "+e)
		}
		return probs
	case t.Kind() == reflect.Struct:
		if name, ok := byType[t]; ok {
			return []string{fmt.Sprintf("is inline, want $ref #/components/schemas/%s", name)}
		}
		return []string{fmt.Sprintf("Go %v is in no schema of the test's table; give it a component schema and $ref it", t)}
	}
	return []string{fmt.Sprintf("Go %v (%v) is not supported by openapitest", t, t.Kind())}
}
