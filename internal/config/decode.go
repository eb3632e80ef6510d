package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// walker checks a YAML tree against the Go type it will be decoded into,
// before yaml.v3 decodes it. It exists because yaml.v3's strict mode
// (KnownFields) stops at the first kind of failure and names Go types
// ("field colour not found in type config.Cell"), while an operator fixing
// cells.yaml wants every problem at once, in the file's own words.
//
// It reports unknown keys, repeated keys and values of the wrong kind, and
// prunes each of them from the tree so that yaml.v3's own decoding of what
// is left cannot fail and validation still sees every other field. On the
// way it records the line of every field path, for validation messages.
type walker struct {
	lines map[string]int  // field path → line
	bad   map[string]bool // field paths whose value was dropped
	probs []Problem
	// budget bounds the nodes visited: aliases can make a small file
	// expand quadratically (cells of aliased cells of aliased edges).
	budget int
}

// maxNodes is far above any real cells.yaml (a hundred cells with ten
// edges each visit about 10,000 nodes).
const maxNodes = 200_000

func (w *walker) walk(root *yaml.Node, v any) {
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return
		}
		root = root.Content[0]
	}
	w.budget = maxNodes
	w.node(root, reflect.TypeOf(v).Elem(), "", "", "")
	if w.budget < 0 {
		w.probs = append(w.probs, Problem{Line: root.Line, Msg: fmt.Sprintf("more than %d values once aliases are expanded: not checked further", maxNodes)})
	}
}

func (w *walker) add(line int, where, label, format string, args ...any) {
	msg := joinWhere(joinWhere(where, label), fmt.Sprintf(format, args...))
	w.probs = append(w.probs, Problem{Line: line, Msg: msg})
}

// drop replaces n by null in place: decoding then leaves the zero value.
func (w *walker) drop(n *yaml.Node, path string) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	w.bad[path] = true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// node checks n against t. path is the field path ("cells[0].edges[1].tcp"),
// where the human name of the enclosing thing ("cell \"eu-west\"") and
// label the field's name in messages ("gateway", "services.accounts"; empty
// for list elements, which where already names).
func (w *walker) node(n *yaml.Node, t reflect.Type, path, where, label string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	if w.budget--; w.budget < 0 {
		w.drop(n, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n.Line, where, label, "want a mapping of keys, got %s", describe(n))
			w.drop(n, path)
			return
		}
		w.mapping(n, t, path, joinWhere(where, label), false)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n.Line, where, label, "want a list, got %s", describe(n))
			w.drop(n, path)
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = e.Line
			ew := joinWhere(where, fmt.Sprintf("%s[%d]", label, i))
			if t.Elem() == reflect.TypeFor[Cell]() {
				ew = cellLabel(e, i)
			}
			w.node(e, t.Elem(), p, ew, "")
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n.Line, where, label, "want a mapping of name: value, got %s", describe(n))
			w.drop(n, path)
			return
		}
		seen := map[string]int{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				w.add(k.Line, where, label, "%q is listed twice (first at line %d)", k.Value, first)
				continue
			}
			seen[k.Value] = k.Line
			p := path + "." + k.Value
			w.lines[p] = k.Line
			w.node(v, t.Elem(), p, where, label+"."+k.Value)
			kept = append(kept, k, v)
		}
		n.Content = kept
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.add(n.Line, where, label, "want a string, got %s", describe(n))
			w.drop(n, path)
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			w.add(n.Line, where, label, "want an integer, got %s", describe(n))
			w.drop(n, path)
		}
	}
}

// mapping checks the keys of a mapping decoded into struct type t. merged
// is set for a mapping pulled in by a merge key (<<: *anchor), whose lines
// do not replace those of keys the merging mapping sets itself.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path, where string, merged bool) {
	fields := yamlFields(t)
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			// A merge key pulls in an anchored mapping (or a list of them):
			// its keys must be valid here too. yaml.v3 decodes the merge.
			w.merge(v, t, path, where)
			kept = append(kept, k, v)
			continue
		}
		name := k.Value
		p := joinPath(path, name)
		ft, known := fields[name]
		if !known {
			msg := fmt.Sprintf("unknown key %q", name)
			if s := suggest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
				// The intended key is then missing: do not also report
				// it as required.
				w.bad[joinPath(path, s)] = true
			} else {
				msg += " (known: " + strings.Join(sortedKeys(fields), ", ") + ")"
			}
			w.add(k.Line, where, "", "%s", msg)
			continue
		}
		if first, dup := seen[name]; dup {
			w.add(k.Line, where, "", "key %q is set twice (first at line %d)", name, first)
			continue
		}
		seen[name] = k.Line
		if _, set := w.lines[p]; !set || !merged {
			w.lines[p] = k.Line
		}
		w.node(v, ft, p, where, name)
		kept = append(kept, k, v)
	}
	n.Content = kept
}

func (w *walker) merge(v *yaml.Node, t reflect.Type, path, where string) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		// The mapping that merges may override any merged key, so merged
		// keys are checked for repeats only among themselves.
		w.mapping(v, t, path, where, true)
	case yaml.SequenceNode:
		for _, e := range v.Content {
			w.merge(e, t, path, where)
		}
	default:
		w.add(v.Line, where, "<<", "want an anchored mapping, got %s", describe(v))
	}
}

// yamlFields maps the yaml keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the known key closest to name when it is a plausible
// typo (edit distance at most 2), else "".
func suggest(name string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for _, k := range sortedKeys(fields) {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// cellLabel names the i-th cell by its id when it has a usable one.
func cellLabel(n *yaml.Node, i int) string {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "id" && v.Kind == yaml.ScalarNode && v.Value != "" {
				return fmt.Sprintf("cell %q", v.Value)
			}
		}
	}
	return fmt.Sprintf("cells[%d]", i)
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func joinWhere(where, s string) string {
	if where == "" {
		return s
	}
	if s == "" {
		return where
	}
	return where + ": " + s
}
