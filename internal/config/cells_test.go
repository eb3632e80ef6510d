package config

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatalf("Default() error: %v", err)
	}
	if got := len(c.Cells); got < 2 {
		t.Fatalf("default cells = %d, want at least 2", got)
	}
	for _, cl := range c.Cells {
		if cl.State != StateActive {
			t.Errorf("cell %s state = %q, want active", cl.ID, cl.State)
		}
	}
	if w := c.Warnings(); len(w) > 0 {
		t.Errorf("default cells.yaml warnings = %v, want none", w)
	}
}

// good is a valid one-cell file; tests append to it or replace in it.
const good = `version: 1
cells:
  - id: a
    region: r1
    gateway: 127.0.0.1:1
    api: 127.0.0.1:2
    capacity: 10
`

// two is a valid two-cell file whose cells fail over to each other.
const two = `version: 1
cells:
  - id: a
    region: r1
    gateway: 127.0.0.1:1
    api: 127.0.0.1:2
    capacity: 10
    failover: [b]
  - id: b
    region: r2
    gateway: 127.0.0.1:3
    api: 127.0.0.1:4
    capacity: 10
    failover: [a]
`

func problems(t *testing.T, doc string) []string {
	t.Helper()
	_, err := Parse([]byte(doc))
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*ValidationError](err)
	if !ok {
		t.Fatalf("Parse error %v (%T), want a *ValidationError", err, err)
	}
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.String()
	}
	return out
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // every problem, in order
	}{
		{"empty", ``, []string{"cells.yaml is empty"}},
		{"not yaml", "cells: [\n", []string{"line 1: YAML: did not find expected node content"}},
		{"two documents", good + "---\nversion: 1\n", []string{"line 8: a second YAML document (---): cells.yaml holds one document"}},
		{"unknown key", good + "    colour: red\n", []string{`line 8: cell "a": unknown key "colour" (known: api, backbone, capacity, db_region, edges, failover, gateway, id, region, services, state)`}},
		{"typo suggests and is not also missing", strings.Replace(good, "gateway:", "gatway:", 1),
			[]string{`line 5: cell "a": unknown key "gatway" (did you mean "gateway"?)`}},
		{"unknown top-level and router keys", "routr: {}\nrouter:\n  listn: 127.0.0.1:9\n" + strings.TrimPrefix(good, "version: 1\n") + "version: 1\n",
			[]string{`line 1: unknown key "routr" (did you mean "router"?)`, `line 3: router: unknown key "listn" (did you mean "listen"?)`}},
		{"key twice", good + "    capacity: 20\n", []string{`line 8: cell "a": key "capacity" is set twice (first at line 7)`}},
		{"bad version", strings.Replace(good, "version: 1", "version: 2", 1), []string{"line 1: version: got 2, want 1"}},
		{"duplicate id", good + `  - id: a
    region: r2
    gateway: 127.0.0.1:3
    api: 127.0.0.1:4
    capacity: 10
`, []string{`line 8: cell "a": duplicate id (first at line 3)`}},
		{"missing fields", "version: 1\ncells:\n  - state: active\n", []string{
			"line 3: cells[0]: id is required",
			`line 3: cells[0]: region is required (the cloud region, e.g. europe-west1)`,
			`line 3: cells[0]: gateway is required (host:port)`,
			`line 3: cells[0]: api is required (host:port)`,
			`line 3: cells[0]: capacity must be > 0 (maximum concurrent sessions)`,
		}},
		{"no cells", "version: 1\ncells: []\n", []string{"line 2: cells: at least one cell is required"}},
		{"wrong types", strings.NewReplacer("capacity: 10", "capacity: lots\n    failover: b\n    services: [x]", "id: a", "id: {x: 1}").Replace(good), []string{
			`line 3: cells[0]: id: want a string, got a mapping`,
			`line 7: cells[0]: capacity: want an integer, got "lots"`,
			`line 8: cells[0]: failover: want a list, got "b"`,
			`line 9: cells[0]: services: want a mapping of name: value, got a list`,
		}},
		{"failover unknown", strings.Replace(good, "capacity: 10", "capacity: 10\n    failover: [zz]", 1), []string{`line 8: cell "a": failover to unknown cell "zz"`}},
		{"failover self", strings.Replace(good, "capacity: 10", "capacity: 10\n    failover: [a]", 1), []string{`line 8: cell "a": fails over to itself`}},
		{"failover twice", strings.Replace(two, "failover: [b]", "failover: [b, b]", 1), []string{`line 8: cell "a": failover lists "b" twice`}},
		{"no active", strings.Replace(good, "capacity: 10", "capacity: 10\n    state: disabled", 1), []string{
			"line 2: no active cell: at least one cell must have state active, or no new player can be placed"}},
		{"bad state", strings.Replace(good, "capacity: 10", "capacity: 10\n    state: sleepy", 1), []string{
			"line 2: no active cell: at least one cell must have state active, or no new player can be placed",
			`line 8: cell "a": state "sleepy": want active, draining or disabled`}},
		{"bad gateway", strings.Replace(good, "127.0.0.1:1", "nowhere", 1), []string{`line 5: cell "a": gateway "nowhere": want host:port`}},
		{"gateway without host", strings.Replace(good, "127.0.0.1:1", ":4110", 1), []string{`line 5: cell "a": gateway ":4110": host is missing (want host:port, e.g. 10.0.0.5:4110)`}},
		{"port 0", strings.Replace(good, "127.0.0.1:1", "127.0.0.1:0", 1), []string{`line 5: cell "a": gateway "127.0.0.1:0": port "0": want a number from 1 to 65535`}},
		{"named port", strings.Replace(good, "127.0.0.1:1", "gw.example.com:http", 1), []string{`line 5: cell "a": gateway "gw.example.com:http": port "http": want a number from 1 to 65535`}},
		{"bad host", strings.Replace(good, "127.0.0.1:1", "gw_1.example.com:1", 1), []string{`line 5: cell "a": gateway "gw_1.example.com:1": host "gw_1.example.com" is neither an IP address nor a DNS name`}},
		{"zero capacity", strings.Replace(good, "capacity: 10", "capacity: 0", 1), []string{`line 7: cell "a": capacity must be > 0 (maximum concurrent sessions)`}},
		{"huge capacity", strings.Replace(good, "capacity: 10", "capacity: 20000000", 1), []string{`line 7: cell "a": capacity 20000000 is above 10000000: split the cell instead`}},
		{"bad id", strings.Replace(good, "id: a", "id: A_1", 1), []string{`line 3: cell "A_1": id must be lower-case letters, digits and '-', starting with a letter (max 32)`}},
		{"bad region", strings.Replace(good, "region: r1", "region: r 1", 1), []string{`line 4: cell "a": region "r 1": want letters, digits, '-' and '_' (max 63)`}},
		{"router listen", "router:\n  listen: nowhere\n" + good, []string{`line 2: router.listen "nowhere": want host:port`}},
		{"gateway equals api", strings.Replace(good, "127.0.0.1:2", "127.0.0.1:1", 1), []string{`line 6: cell "a": api 127.0.0.1:1 is already used by cell "a" gateway (line 5)`}},
		{"two cells on one port", strings.Replace(two, "127.0.0.1:3", "127.0.0.1:2", 1), []string{`line 11: cell "b": gateway 127.0.0.1:2 is already used by cell "a" api (line 6)`}},
		{"router on a cell's port", "router:\n  listen: 127.0.0.1:2\n" + good, []string{`line 8: cell "a": api 127.0.0.1:2 is already used by router.listen (line 2)`}},
		{"bad backbone", good + "    backbone: nowhere\n", []string{`line 8: cell "a": backbone "nowhere": want host:port`}},
		{"backbone on the gateway's port", good + "    backbone: 127.0.0.1:1\n", []string{`line 8: cell "a": backbone 127.0.0.1:1 is already used by cell "a" gateway (line 5)`}},
		{"backbone on another cell's api", strings.Replace(two, "capacity: 10", "capacity: 10\n    backbone: 127.0.0.1:4", 1),
			[]string{`line 13: cell "b": api 127.0.0.1:4 is already used by cell "a" backbone (line 8)`}},
		{"host compared without case", strings.NewReplacer("127.0.0.1:1", "GW.example.com:1", "127.0.0.1:3", "gw.example.com:1").Replace(two),
			[]string{`line 11: cell "b": gateway gw.example.com:1 is already used by cell "a" gateway (line 5)`}},
		{"service problems", strings.Replace(good, "capacity: 10", `capacity: 10
    services:
      Store: 127.0.0.1:5
      gateway: 127.0.0.1:6
      inventory: nowhere
      accounts: 127.0.0.1:1
      cosmetics:`, 1), []string{
			`line 9: cell "a": services: name "Store" must be lower-case letters, digits and '-', starting with a letter (max 32)`,
			`line 10: cell "a": services: "gateway" is not a service name; set the cell's gateway key instead`,
			`line 11: cell "a": services.inventory "nowhere": want host:port`,
			`line 12: cell "a": services.accounts 127.0.0.1:1 is already used by cell "a" gateway (line 5)`,
			`line 13: cell "a": services.cosmetics: an endpoint is required (host:port); leave the service out to use api`,
		}},
		{"edge problems", two + `    edges:
      - {id: fra, tcp: 127.0.0.1:7, quic: 127.0.0.1:7}
      - {id: fra, tcp: 127.0.0.1:8}
      - {id: Par, ws: 127.0.0.1:9}
      - {id: ams}
      - {id: lon, tcp: 127.0.0.1:4, ws: "nowhere"}
      - {tcp: 127.0.0.1:10}
`, []string{
			`line 17: cell "b": edge "fra": duplicate edge id (first in cell "b"); list an edge once, under the cell it is nearest`,
			`line 18: cell "b": edges[2]: id "Par" must be lower-case letters, digits and '-', starting with a letter (max 32)`,
			`line 19: cell "b": edge "ams": needs at least one of tcp, quic, ws`,
			`line 20: cell "b": edge "lon" tcp 127.0.0.1:4 is already used by cell "b" api (line 12)`,
			`line 20: cell "b": edge "lon": ws "nowhere": want host:port`,
			`line 21: cell "b": edges[5]: id is required`,
		}},
		{"edge key typo", two + "    edges:\n      - {id: fra, qiuc: 127.0.0.1:7}\n", []string{
			`line 16: cell "b": edges[0]: unknown key "qiuc" (did you mean "quic"?)`}},
		{"every problem at once", `version: 2
cells:
  - id: a
    region: r1
    gateway: 127.0.0.1:1
    api: 127.0.0.1:2
    capacity: 0
    failover: [zz, a]
    colour: red
  - id: a
    region: r2
    gateway: 127.0.0.1:1
    api: nowhere
    capacity: 10
`, []string{
			"line 1: version: got 2, want 1",
			`line 7: cell "a": capacity must be > 0 (maximum concurrent sessions)`,
			`line 8: cell "a": failover to unknown cell "zz"`,
			`line 8: cell "a": fails over to itself`,
			`line 9: cell "a": unknown key "colour" (known: api, backbone, capacity, db_region, edges, failover, gateway, id, region, services, state)`,
			`line 10: cell "a": duplicate id (first at line 3)`,
			`line 12: cell "a": gateway 127.0.0.1:1 is already used by cell "a" gateway (line 5)`,
			`line 13: cell "a": api "nowhere": want host:port`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(t, tt.doc)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestFailoverCycles pins the failover rules of docs/cells.md: a cycle is
// dead (an error) only when nothing on it or reachable from it is active;
// a failover list naming no active cell is a warning.
func TestFailoverCycles(t *testing.T) {
	// cells renders "id state failover..." lines into a cells.yaml.
	cells := func(specs ...string) string {
		var b strings.Builder
		b.WriteString("version: 1\ncells:\n")
		for i, s := range specs {
			f := strings.Fields(s)
			b.WriteString("  - id: " + f[0] + "\n    region: r\n    state: " + f[1] +
				"\n    gateway: 127.0.0.1:" + strconv.Itoa(1000+2*i) + "\n    api: 127.0.0.1:" + strconv.Itoa(1001+2*i) +
				"\n    capacity: 10\n    failover: [" + strings.Join(f[2:], ", ") + "]\n")
		}
		return b.String()
	}
	tests := []struct {
		name      string
		doc       string
		wantErrs  []string
		wantWarns []string
	}{
		{name: "two active cells failing over to each other", doc: cells("eu active us", "us active eu")},
		{name: "the repository's default", doc: two},
		{name: "active and draining failing over to each other",
			doc:       cells("eu active us", "us draining eu"),
			wantWarns: []string{`line 9: cell "eu": no cell in its failover list is active (us is draining): if eu goes down, its players have nowhere to go`}},
		{name: "dead two-cycle",
			doc:      cells("a draining b", "b disabled a", "c active"),
			wantErrs: []string{`line 9: cell "a": dead failover cycle a → b → a: no cell on it or reachable from it is active, so its players can never fail over`}},
		{name: "dead three-cycle reported once",
			doc:      cells("x active", "a draining b", "b draining c", "c disabled a"),
			wantErrs: []string{`line 16: cell "a": dead failover cycle a → b → c → a: no cell on it or reachable from it is active, so its players can never fail over`}},
		{name: "cycle with a way out to an active cell is not dead",
			doc:       cells("a draining b", "b draining a c", "c active"),
			wantWarns: []string{`line 9: cell "a": no cell in its failover list is active (b is draining): if a goes down, its players have nowhere to go`}},
		{name: "cycle whose only way out is a dead end is dead",
			doc:      cells("a draining b", "b draining a d", "d disabled", "c active"),
			wantErrs: []string{`line 9: cell "a": dead failover cycle a → b → a: no cell on it or reachable from it is active, so its players can never fail over`},
			wantWarns: []string{
				`line 23: cell "d" is disabled and no cell in its failover list is active: its players cannot be served`,
			}},
		{name: "dead end without a cycle is only a warning",
			doc: cells("a draining d", "d disabled", "c active"),
			wantWarns: []string{
				`line 9: cell "a": no cell in its failover list is active (d is disabled): if a goes down, its players have nowhere to go`,
				`line 16: cell "d" is disabled and no cell in its failover list is active: its players cannot be served`,
			}},
		{name: "disabled cell failing over to an active cell", doc: cells("a disabled c", "c active")},
		{name: "a cell with no failover list is fine", doc: cells("a active", "b active")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			var gotErrs, gotWarns []string
			var warns []Problem
			if err != nil {
				ve, ok := errors.AsType[*ValidationError](err)
				if !ok {
					t.Fatalf("Parse error %v, want a *ValidationError", err)
				}
				for _, p := range ve.Problems {
					gotErrs = append(gotErrs, p.String())
				}
				warns = ve.Warnings
			} else {
				warns = c.Warnings()
			}
			for _, p := range warns {
				gotWarns = append(gotWarns, p.String())
			}
			if !slices.Equal(gotErrs, tt.wantErrs) {
				t.Errorf("errors:\n got %q\nwant %q", gotErrs, tt.wantErrs)
			}
			if !slices.Equal(gotWarns, tt.wantWarns) {
				t.Errorf("warnings:\n got %q\nwant %q", gotWarns, tt.wantWarns)
			}
		})
	}
}

func TestDBRegionDefaultsToRegion(t *testing.T) {
	c, err := Parse([]byte("version: 1\ncells:\n  - {id: a, region: r1, gateway: 'h:1', api: 'h:2', capacity: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cells[0].DBRegion; got != "r1" {
		t.Fatalf("DBRegion = %q, want r1", got)
	}
	if got := c.Cells[0].State; got != StateActive {
		t.Fatalf("State = %q, want active", got)
	}
}

func TestServicesAndEdges(t *testing.T) {
	c, err := Parse([]byte(two + `    services:
      accounts: 127.0.0.1:4
      store: store.b.internal:8080
    edges:
      - id: fra
        tcp: 127.0.0.1:7000
        quic: 127.0.0.1:7000
        ws: 127.0.0.1:7001
`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Cell("b")
	for _, tt := range []struct{ service, want string }{
		{"accounts", "127.0.0.1:4"},
		{"store", "store.b.internal:8080"},
		{"inventory", "127.0.0.1:4"}, // not listed: the cell's api
	} {
		if got := b.ServiceAddr(tt.service); got != tt.want {
			t.Errorf("ServiceAddr(%q) = %q, want %q", tt.service, got, tt.want)
		}
	}
	want := []Edge{{ID: "fra", TCP: "127.0.0.1:7000", QUIC: "127.0.0.1:7000", WS: "127.0.0.1:7001"}}
	if !slices.Equal(b.Edges, want) {
		t.Errorf("Edges = %+v, want %+v", b.Edges, want)
	}
	if probs := c.CheckServices([]string{"accounts", "gateway"}); len(probs) != 1 ||
		probs[0].String() != `line 17: cell "b": services.store: not a service this binary runs (known: accounts, gateway)` {
		t.Errorf("CheckServices = %q, want one warning about store at line 17", probs)
	}
}

// TestMergeKeys: anchors and merge keys are ordinary YAML that operators use
// for shared defaults; they must decode and be checked like plain keys.
func TestMergeKeys(t *testing.T) {
	const doc = `version: 1
defaults: &defaults
  capacity: 100
  region: r1
cells:
  - <<: *defaults
    id: a
    gateway: 127.0.0.1:1
    api: 127.0.0.1:2
  - <<: *defaults
    id: b
    capacity: 50
    gateway: 127.0.0.1:3
    api: 127.0.0.1:4
`
	// "defaults" is not a key of cells.yaml: the anchor must live somewhere
	// known. The error names it; with it removed the rest is valid.
	if got, want := problems(t, doc), []string{`line 2: unknown key "defaults" (known: cells, router, version)`}; !slices.Equal(got, want) {
		t.Fatalf("problems = %q, want %q", got, want)
	}
	fixed := strings.Replace(doc, "defaults: &defaults\n  capacity: 100\n  region: r1\ncells:\n  - <<: *defaults\n",
		"cells:\n  - &defaults\n    capacity: 100\n    region: r1\n", 1)
	fixed = strings.Replace(fixed, "  - <<: *defaults\n    id: b\n    capacity: 50\n", "  - <<: *defaults\n    id: b\n    capacity: 50\n", 1)
	c, err := Parse([]byte(fixed))
	if err != nil {
		t.Fatalf("Parse(%s): %v", fixed, err)
	}
	a, _ := c.Cell("a")
	b, _ := c.Cell("b")
	if a.Capacity != 100 || a.Region != "r1" || b.Capacity != 50 || b.Region != "r1" {
		t.Fatalf("a = %d/%s, b = %d/%s; want 100/r1 and 50/r1 (explicit key overrides the merge)", a.Capacity, a.Region, b.Capacity, b.Region)
	}

	bad := strings.Replace(fixed, "    region: r1\n", "    region: r1\n    colour: red\n", 1)
	if got, want := problems(t, bad), []string{`line 6: cell "a": unknown key "colour" (known: api, backbone, capacity, db_region, edges, failover, gateway, id, region, services, state)`}; !slices.Equal(got, want) {
		t.Fatalf("merged unknown key: problems = %q, want %q", got, want)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/cells.yaml"
	if err := os.WriteFile(path, []byte(strings.Replace(good, "capacity: 10", "capacity: 0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	ve, ok := errors.AsType[*ValidationError](err)
	if !ok {
		t.Fatalf("Load error %v, want a *ValidationError", err)
	}
	if ve.File != path {
		t.Errorf("File = %q, want %q", ve.File, path)
	}
	want := "config: invalid cells.yaml " + path + " (1 problem):\n  " + path + `:7: cell "a": capacity must be > 0 (maximum concurrent sessions)`
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

// FuzzParse: whatever the bytes, Parse returns a Cells or an error, never
// panics, and an accepted file validates again unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{good, two, "", "cells: [\n", "version: 1\ncells:\n  - <<: *x\n",
		"a: &a [*a]\n", "version: 1\ncells: {id: a}\n", two + "    edges: [{id: e, tcp: 'h:1'}]\n    services: {s: 'h:2'}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if _, ok := errors.AsType[*ValidationError](err); !ok {
				t.Fatalf("Parse error %v (%T), want a *ValidationError", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted file fails Validate again: %v", err)
		}
	})
}

// TestMarshalRoundTrip: tools write cells.yaml from a Cells (livecell world
// up rewrites its addresses); what they write must parse back the same.
func TestMarshalRoundTrip(t *testing.T) {
	c, err := Parse([]byte(two + `    services:
      store: 127.0.0.1:9
    edges:
      - {id: fra, quic: 127.0.0.1:7000}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back.Cells, c.Cells) || back.Version != c.Version || back.Router != c.Router {
		t.Fatalf("round trip changed the cells:\n got %+v\nwant %+v", back.Cells, c.Cells)
	}
	if strings.Contains(string(out), "services: {}") || strings.Contains(string(out), "edges: []") {
		t.Errorf("Marshal writes empty optional keys:\n%s", out)
	}
}
