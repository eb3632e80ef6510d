package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/global/registry/consultest"
	"github.com/livecell/livecell/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json from what the client sends")

const testCells = `version: 1
cells:
  - id: eu-west
    region: europe-west1
    gateway: 127.0.0.1:4110
    api: 127.0.0.1:4111
    services:
      store: 127.0.0.1:4112
    capacity: 100
    failover: [us-east]
  - id: us-east
    region: us-east1
    gateway: 127.0.0.1:4120
    api: 127.0.0.1:4121
    capacity: 100
    failover: [eu-west]
`

func cells(t *testing.T) *config.Cells {
	t.Helper()
	c, err := config.Parse([]byte(testCells))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastConsul is a ConsulConfig for the fake with short waits.
func fastConsul(f *consultest.Server) ConsulConfig {
	return ConsulConfig{Address: f.Addr(), Token: "s3cret", WaitTime: 2 * time.Second, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}
}

func addrs(in []Instance) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = string(x.Source) + " " + x.Addr
	}
	return out
}

func TestWithoutConsulServesCellsYAML(t *testing.T) {
	c := cells(t)
	r, err := New(Config{Cells: c}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start without Consul: %v", err)
	}
	s := r.Snapshot()
	for _, tt := range []struct {
		cell, role string
		want       []string
	}{
		{"eu-west", RoleGateway, []string{"cells.yaml 127.0.0.1:4110"}},
		{"eu-west", RoleAPI, []string{"cells.yaml 127.0.0.1:4111"}},
		{"eu-west", "store", []string{"cells.yaml 127.0.0.1:4112"}},
		{"eu-west", "accounts", []string{"cells.yaml 127.0.0.1:4111"}}, // no services entry: the api
		{"us-east", "store", []string{"cells.yaml 127.0.0.1:4121"}},
		{"mars", RoleGateway, nil},
	} {
		if got := addrs(s.Instances(tt.cell, tt.role)); !slices.Equal(got, tt.want) {
			t.Errorf("Instances(%s, %s) = %q, want %q", tt.cell, tt.role, got, tt.want)
		}
	}
	if s.Resolved() != c {
		t.Errorf("Resolved() without Consul is a copy, want cells.yaml itself")
	}
	if r.Consul() != nil {
		t.Errorf("Consul() = non-nil without an address")
	}
	if _, err := r.Register(context.Background(), "eu-west", Addrs{}); err == nil || !strings.Contains(err.Error(), "CONSUL_HTTP_ADDR") {
		t.Errorf("Register without Consul: err = %v, want one naming CONSUL_HTTP_ADDR", err)
	}
}

// TestRegisterSendsDocumentedJSON pins the exact requests the Consul client
// sends: the service definitions (golden files), the token header, the
// replace-existing-checks flag, and the deregistrations on stop.
func TestRegisterSendsDocumentedJSON(t *testing.T) {
	f := consultest.New(t)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The gateway is bound elsewhere than cells.yaml says (a process on an
	// ephemeral port): the bound address wins.
	reg, err := r.Register(ctx, "eu-west", Addrs{Gateway: "10.0.0.5:5110"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	wantIDs := []string{
		"livecell-gateway-eu-west-10.0.0.5-5110",
		"livecell-api-eu-west-127.0.0.1-4111",
		"livecell-store-eu-west-127.0.0.1-4112",
	}
	if got := reg.IDs(); !slices.Equal(got, wantIDs) {
		t.Fatalf("IDs() = %q, want %q", got, wantIDs)
	}
	puts := f.Requests("PUT", "/v1/agent/service/register")
	if len(puts) != 3 {
		t.Fatalf("register requests = %d, want 3", len(puts))
	}
	for i, name := range []string{"gateway", "api", "store"} {
		p := puts[i]
		if p.Token != "s3cret" {
			t.Errorf("%s: X-Consul-Token = %q, want s3cret", name, p.Token)
		}
		if p.Query["replace-existing-checks"] != "true" {
			t.Errorf("%s: query %v, want replace-existing-checks=true", name, p.Query)
		}
		golden(t, filepath.Join("testdata", "register-"+name+".json"), p.Body)
	}

	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	var got []string
	for _, d := range f.Requests("PUT", "/v1/agent/service/deregister/") {
		got = append(got, strings.TrimPrefix(d.Path, "/v1/agent/service/deregister/"))
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("deregistered %q, want %q", got, wantIDs)
	}
	if left := f.IDs(); len(left) != 0 {
		t.Errorf("services left in Consul after Deregister: %q", left)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v, want nil (nothing left to remove)", err)
	}
}

// golden compares the JSON body with the file, ignoring only indentation.
func golden(t *testing.T, path, body string) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(body), "", "  "); err != nil {
		t.Fatalf("%s: body is not JSON: %v\n%s", path, err, body)
	}
	pretty.WriteByte('\n')
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := pretty.String(); got != string(want) {
		t.Errorf("%s: the client sent\n%s\nwant\n%s", path, got, want)
	}
}

// TestRegisterOnlyRolesServed: a gateway-only process registers its
// gateway, never the cell's API, which another process serves.
func TestRegisterOnlyRolesServed(t *testing.T) {
	f := consultest.New(t)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := r.Register(context.Background(), "eu-west", Addrs{Gateway: "10.0.0.5:5110", API: "127.0.0.1:39001", Roles: []string{RoleGateway}})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got, want := reg.IDs(), []string{"livecell-gateway-eu-west-10.0.0.5-5110"}; !slices.Equal(got, want) {
		t.Errorf("IDs() = %q, want %q", got, want)
	}
	if got := f.IDs(); len(got) != 1 {
		t.Errorf("services in Consul: %q, want the gateway only", got)
	}
}

func TestRegisterRollsBackOnFailure(t *testing.T) {
	f := consultest.New(t)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The agent accepts the gateway, then refuses the api.
	f.FailAfter("/v1/agent/service/register", 1, 500)
	_, err = r.Register(ctx, "us-east", Addrs{})
	if err == nil || !strings.Contains(err.Error(), "livecell-api-us-east-127.0.0.1-4121") {
		t.Fatalf("Register with a failing agent: err = %v, want one naming the api service", err)
	}
	var got []string
	for _, d := range f.Requests("PUT", "/v1/agent/service/deregister/") {
		got = append(got, strings.TrimPrefix(d.Path, "/v1/agent/service/deregister/"))
	}
	if want := []string{"livecell-gateway-us-east-127.0.0.1-4120"}; !slices.Equal(got, want) {
		t.Errorf("rolled back %q, want %q", got, want)
	}
	if left := f.IDs(); len(left) != 0 {
		t.Errorf("services left after a failed Register: %q, want none", left)
	}
	if _, err := r.Register(ctx, "mars", Addrs{}); err == nil {
		t.Errorf("Register(mars) succeeded, want an error: not in cells.yaml")
	}
}

// waitChange waits for the registry to publish past version v.
func waitChange(t *testing.T, r *Registry, v uint64, what string) *Snapshot {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := r.Changed()
		if s := r.Snapshot(); s.Version() > v {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no change published within 5s: %s", what)
		}
	}
}

// waitFor polls cond, for states reached through several publishes.
func waitFor(t *testing.T, r *Registry, what string, cond func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := r.Changed()
		if s := r.Snapshot(); cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for: %s", what)
		}
	}
}

// TestDiscoveryFollowsConsul: discovery reads passing instances only, and
// follows the fake's answer as it changes, through blocking queries.
func TestDiscoveryFollowsConsul(t *testing.T) {
	f := consultest.New(t)
	c := cells(t)
	r, err := New(Config{Cells: c, Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := r.Register(ctx, "eu-west", Addrs{Gateway: "10.0.0.5:5110", API: "10.0.0.5:5111"})
	if err != nil {
		t.Fatal(err)
	}
	// A second gateway instance of eu-west, registered by another agent.
	f.Add(consultest.Service{ID: "livecell-gateway-eu-west-10.0.0.6-5110", Name: "livecell-gateway", Address: "10.0.0.6", Port: 5110,
		Tags: []string{"eu-west"}, Meta: map[string]string{"cell": "eu-west"}, Status: "passing"})
	// An instance of a cell cells.yaml does not have, and one not from livecell.
	f.Add(consultest.Service{ID: "gw-mars", Name: "livecell-gateway", Address: "10.0.0.7", Port: 1, Meta: map[string]string{"cell": "mars"}, Status: "passing"})
	f.Add(consultest.Service{ID: "gw-other", Name: "livecell-gateway", Address: "10.0.0.8", Port: 1, Status: "passing"})

	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	s := r.Snapshot()
	// Checks start critical: only the instance marked passing is found.
	if got, want := addrs(s.Instances("eu-west", RoleGateway)), []string{"consul 10.0.0.6:5110"}; !slices.Equal(got, want) {
		t.Fatalf("gateway instances at start = %q, want %q", got, want)
	}
	if got := s.Instances("eu-west", RoleAPI); len(got) != 0 {
		t.Fatalf("api instances at start = %q, want none (its check is critical)", addrs(got))
	}
	if !s.Discovered(RoleGateway) || !s.Discovered("store") {
		t.Fatalf("Discovered(gateway, store) = %v, %v; want true after Start", s.Discovered(RoleGateway), s.Discovered("store"))
	}

	f.SetStatus("livecell-gateway-eu-west-10.0.0.5-5110", "passing")
	s = waitFor(t, r, "both eu-west gateways passing", func(s *Snapshot) bool { return len(s.Instances("eu-west", RoleGateway)) == 2 })
	if got, want := addrs(s.Instances("eu-west", RoleGateway)), []string{"consul 10.0.0.5:5110", "consul 10.0.0.6:5110"}; !slices.Equal(got, want) {
		t.Fatalf("gateway instances = %q, want %q (sorted by id)", got, want)
	}

	f.SetStatus("livecell-api-eu-west-10.0.0.5-5111", "passing")
	f.SetStatus("livecell-store-eu-west-127.0.0.1-4112", "passing")
	s = waitFor(t, r, "eu-west api and store passing", func(s *Snapshot) bool {
		return len(s.Instances("eu-west", RoleAPI)) == 1 && len(s.Instances("eu-west", "store")) == 1
	})
	for _, tt := range []struct {
		cell, role string
		want       []string
	}{
		{"eu-west", RoleAPI, []string{"consul 10.0.0.5:5111"}},
		{"eu-west", "store", []string{"consul 127.0.0.1:4112"}},
		{"eu-west", "accounts", []string{"consul 10.0.0.5:5111"}}, // no services entry: the api's instances
		{"us-east", RoleGateway, nil},                             // Consul answered: none passing
		{"us-east", "store", nil},                                 // falls back to us-east's api: none
		{"mars", RoleGateway, nil},                                // not in cells.yaml
	} {
		if got := addrs(s.Instances(tt.cell, tt.role)); !slices.Equal(got, tt.want) {
			t.Errorf("Instances(%s, %s) = %q, want %q", tt.cell, tt.role, got, tt.want)
		}
	}
	res := s.Resolved()
	eu, _ := res.Cell("eu-west")
	us, _ := res.Cell("us-east")
	if eu.Gateway != "10.0.0.5:5110" || eu.API != "10.0.0.5:5111" || eu.Services["store"] != "127.0.0.1:4112" {
		t.Errorf("Resolved eu-west = %s/%s/%v, want the discovered 10.0.0.5:5110/10.0.0.5:5111/127.0.0.1:4112", eu.Gateway, eu.API, eu.Services)
	}
	if us.Gateway != "127.0.0.1:4120" || us.API != "127.0.0.1:4121" {
		t.Errorf("Resolved us-east = %s/%s, want cells.yaml's (no healthy instance: the router's probe decides)", us.Gateway, us.API)
	}
	if orig, _ := c.Cell("eu-west"); orig.Gateway != "127.0.0.1:4110" || orig.Services["store"] != "127.0.0.1:4112" {
		t.Errorf("Resolved modified cells.yaml: eu-west gateway %s", orig.Gateway)
	}

	// A check going critical removes the instance.
	v := r.Snapshot().Version()
	f.SetStatus("livecell-gateway-eu-west-10.0.0.6-5110", "critical")
	s = waitFor(t, r, "10.0.0.6 gone", func(s *Snapshot) bool { return len(s.Instances("eu-west", RoleGateway)) == 1 })
	if s.Version() <= v {
		t.Errorf("version %d after a change, want > %d", s.Version(), v)
	}

	// The watchers used blocking queries: passing=1, an index, a wait.
	blocking := 0
	for _, q := range f.Requests("GET", "/v1/health/service/livecell-gateway") {
		if q.Query["passing"] != "1" {
			t.Errorf("health query %v lacks passing=1", q.Query)
		}
		if q.Query["index"] != "" && q.Query["index"] != "0" && q.Query["wait"] == "2000ms" {
			blocking++
		}
	}
	if blocking == 0 {
		t.Errorf("no blocking query (index=N, wait=2000ms) among %d health queries", len(f.Requests("GET", "/v1/health/service/livecell-gateway")))
	}

	// Deregistering on stop empties discovery.
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "eu-west gone after Deregister", func(s *Snapshot) bool {
		return len(s.Instances("eu-west", RoleAPI)) == 0 && len(s.Instances("eu-west", RoleGateway)) == 0
	})
}

// TestWatchResetsIndexGoingBackwards: after a Consul restart the index can
// go backwards; Consul's documentation says to start over from 0.
func TestWatchResetsIndexGoingBackwards(t *testing.T) {
	f := consultest.New(t)
	f.SetIndex(500)
	cc := fastConsul(f)
	// A watcher whose query arrives after the drop waits out WaitTime (as
	// with Consul, which holds a query until the index passes the one
	// asked for) before it sees the lower index: keep that short.
	cc.WaitTime = 200 * time.Millisecond
	r, err := New(Config{Cells: cells(t), Consul: cc}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	f.SetIndex(3) // releases the blocked queries with a smaller index
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(f.Requests("GET", "/v1/health/service/livecell-api"), func(q consultest.Request) bool { return q.Query["index"] == "3" }) {
		if time.Now().After(deadline) {
			t.Fatalf("after the index went from 500 to 3, no query waited on index 3: %+v", f.Requests("GET", "/v1/health/service/livecell-api"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sequence must be …500, then a query from scratch, then 3.
	var seq []string
	for _, q := range f.Requests("GET", "/v1/health/service/livecell-api") {
		seq = append(seq, q.Query["index"])
	}
	i500 := slices.Index(seq, "500")
	i3 := slices.Index(seq, "3")
	if i500 < 0 || i3 < i500 || !slices.Contains(seq[i500+1:i3], "") {
		t.Errorf("index sequence %q, want 500, then a query without index, then 3", seq)
	}
}

// TestConsulDownKeepsServing: a Consul that fails at start leaves
// cells.yaml in charge; once it answers, discovery takes over; when it
// fails again, the last answer is kept.
func TestConsulDownKeepsServing(t *testing.T) {
	f := consultest.New(t)
	f.Add(consultest.Service{ID: "gw", Name: "livecell-gateway", Address: "10.0.0.5", Port: 5110, Meta: map[string]string{"cell": "us-east"}, Status: "passing"})
	f.Fail("/v1/health/service/livecell-gateway", 500)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start with Consul failing: %v, want nil (fall back to cells.yaml)", err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	// Start's query failed; the watcher retries and succeeds.
	s := waitFor(t, r, "discovery after a failed start", func(s *Snapshot) bool { return s.Discovered(RoleGateway) })
	if got, want := addrs(s.Instances("us-east", RoleGateway)), []string{"consul 10.0.0.5:5110"}; !slices.Equal(got, want) {
		t.Fatalf("us-east gateway = %q, want %q", got, want)
	}
	if n := len(f.Requests("GET", "/v1/health/service/livecell-gateway")); n < 2 {
		t.Errorf("gateway health queries = %d, want a failed one then a retry", n)
	}
	f.Fail("/v1/health/service/livecell-gateway", 500)
	f.SetIndex(99) // release the blocked watcher into the failure
	deadline := time.Now().Add(5 * time.Second)
	for f.PendingFailures() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never made the failing query")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := addrs(r.Snapshot().Instances("us-east", RoleGateway)), []string{"consul 10.0.0.5:5110"}; !slices.Equal(got, want) {
		t.Fatalf("after a failed query: us-east gateway = %q, want the last answer %q", got, want)
	}
}

func TestSetCellsKeepsDiscoveryAndWatchesNewServices(t *testing.T) {
	f := consultest.New(t)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	next, err := config.Parse([]byte(strings.Replace(testCells, "store: 127.0.0.1:4112", "store: 127.0.0.1:4112\n      inventory: 127.0.0.1:4113", 1)))
	if err != nil {
		t.Fatal(err)
	}
	v := r.Snapshot().Version()
	r.SetCells(next)
	if s := waitChange(t, r, v, "SetCells"); s.File() != next {
		t.Fatalf("snapshot file after SetCells is not the new cells.yaml")
	}
	f.Add(consultest.Service{ID: "inv", Name: "livecell-inventory", Address: "10.0.0.9", Port: 4113, Meta: map[string]string{"cell": "eu-west"}, Status: "passing"})
	s := waitFor(t, r, "inventory discovered", func(s *Snapshot) bool {
		return s.Discovered("inventory") && len(s.Instances("eu-west", "inventory")) == 1
	})
	if got, want := addrs(s.Instances("eu-west", "inventory")), []string{"consul 10.0.0.9:4113"}; !slices.Equal(got, want) {
		t.Fatalf("inventory = %q, want %q", got, want)
	}
}

func TestRestartWatchesAgain(t *testing.T) {
	f := consultest.New(t)
	r, err := New(Config{Cells: cells(t), Consul: fastConsul(f)}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err == nil {
		t.Fatal("second Start succeeded, want already started")
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	f.Add(consultest.Service{ID: "gw", Name: "livecell-gateway", Address: "10.0.0.5", Port: 5110, Meta: map[string]string{"cell": "us-east"}, Status: "passing"})
	waitFor(t, r, "a change seen after a restart", func(s *Snapshot) bool { return len(s.Instances("us-east", RoleGateway)) == 1 })
}
