package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/config"
)

const testCellsYAML = `
version: 1
cells:
  - id: eu-west
    region: europe-west1
    gateway: 127.0.0.1:4110
    api: 127.0.0.1:4111
    capacity: 100
    failover: [us-east, eu-north]
  - id: eu-north
    region: europe-north1
    gateway: 127.0.0.1:4130
    api: 127.0.0.1:4131
    capacity: 100
    failover: [eu-west]
  - id: us-east
    region: us-east1
    gateway: 127.0.0.1:4120
    api: 127.0.0.1:4121
    capacity: 1000
    failover: [ap-south, eu-west]
  - id: ap-south
    region: asia-southeast1
    gateway: 127.0.0.1:4140
    api: 127.0.0.1:4141
    capacity: 100
    failover: [us-east]
    state: draining
`

// Players with a home in testCellsYAML.
const (
	playerEU      = "6f1c2a34-8d1e-4b9a-9c2f-0a1b2c3d4e5f"
	playerUS      = "11111111-2222-4333-8444-555555555555"
	playerAP      = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	playerUnknown = "00000000-0000-4000-8000-000000000000"
	playerLost    = "99999999-9999-4999-8999-999999999999" // home not in cells.yaml
)

func testCells(t testing.TB) *config.Cells {
	t.Helper()
	c, err := config.Parse([]byte(testCellsYAML))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeDir is a map-backed player directory.
type fakeDir struct {
	homes map[string]string
	err   error // when set, every lookup fails with it
}

func (d *fakeDir) Home(_ context.Context, player string) (string, error) {
	if d.err != nil {
		return "", d.err
	}
	if h, ok := d.homes[player]; ok {
		return h, nil
	}
	return "", apierr.New(apierr.UnknownPlayer, "player %s has no home cell", player)
}

func newDir() *fakeDir {
	return &fakeDir{homes: map[string]string{playerEU: "eu-west", playerUS: "us-east", playerAP: "ap-south", playerLost: "mars-1"}}
}

// fakeStatus answers probes from a table a test edits between rounds.
type fakeStatus struct {
	mu    sync.Mutex
	cells map[string]cellapi.Status
	errs  map[string]error
	calls int
}

func newStatus(c *config.Cells) *fakeStatus {
	f := &fakeStatus{cells: map[string]cellapi.Status{}, errs: map[string]error{}}
	for _, cl := range c.Cells {
		f.cells[cl.ID] = cellapi.Status{Cell: cl.ID, Region: cl.Region, Healthy: true, Capacity: cl.Capacity}
	}
	return f
}

func (f *fakeStatus) Status(_ context.Context, c config.Cell) (cellapi.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.errs[c.ID]; err != nil {
		return cellapi.Status{}, err
	}
	st, ok := f.cells[c.ID]
	if !ok {
		return cellapi.Status{}, errors.New("no such cell")
	}
	return st, nil
}

func (f *fakeStatus) down(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[id] = errors.New("connection refused")
}

func (f *fakeStatus) up(id string, sessions int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.errs, id)
	st := f.cells[id]
	st.Cell, st.Healthy, st.Sessions = id, true, sessions
	f.cells[id] = st
}

func (f *fakeStatus) unhealthy(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.cells[id]
	st.Healthy = false
	f.cells[id] = st
}

// fakeRouting is the control plane's routing table, edited by tests.
type fakeRouting struct {
	mu    sync.Mutex
	rt    Routing
	err   error
	calls int
}

func (f *fakeRouting) Routing(context.Context) (Routing, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.rt, f.err
}

func (f *fakeRouting) set(rt Routing, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rt, f.err = rt, err
}

type fixture struct {
	r       *Router
	status  *fakeStatus
	dir     *fakeDir
	routing *fakeRouting
	reg     *prometheus.Registry
}

// newFixture returns a started router over testCellsYAML where every cell is
// healthy and empty; edit f.status and call f.round to change that.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	if cfg.Cells == nil {
		cfg.Cells = testCells(t)
	}
	f := &fixture{status: newStatus(cfg.Cells), dir: newDir(), routing: &fakeRouting{}, reg: prometheus.NewRegistry()}
	r, err := New(cfg, Deps{Metrics: f.reg, Homes: f.dir, Status: f.status, Routing: f.routing})
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

// round runs probe rounds synchronously: tests drive time, nothing sleeps.
func (f *fixture) round(t testing.TB, n int) {
	t.Helper()
	for range n {
		f.r.probeRound(context.Background())
	}
}

// loadRouting sets the control plane's table and has the router load it.
func (f *fixture) loadRouting(t testing.TB, rt Routing) {
	t.Helper()
	f.routing.set(rt, nil)
	f.r.routingRound(context.Background())
}

func (f *fixture) resolve(t testing.TB, player, hint string) (Resolution, error) {
	t.Helper()
	return f.r.Resolve(context.Background(), ResolveRequest{PlayerID: player, RegionHint: hint})
}

func metricValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	m, ok := c.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a single metric", c)
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	case pb.Histogram != nil:
		return float64(pb.Histogram.GetSampleCount())
	}
	t.Fatalf("unsupported metric %v", &pb)
	return 0
}

func TestNewValidates(t *testing.T) {
	cells := testCells(t)
	tests := []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{"no cells", Config{}, Deps{Homes: newDir()}},
		{"empty cells", Config{Cells: &config.Cells{}}, Deps{Homes: newDir()}},
		{"no directory", Config{Cells: cells}, Deps{}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg, tt.deps); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
	r, err := New(Config{Cells: cells}, Deps{Homes: newDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Cells: cells, ProbeInterval: 2e9, ProbeTimeout: 1e9, FailThreshold: 3, RiseThreshold: 2}
	if got := r.cfg; got.ProbeInterval != want.ProbeInterval || got.ProbeTimeout != want.ProbeTimeout ||
		got.FailThreshold != want.FailThreshold || got.RiseThreshold != want.RiseThreshold {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	if _, ok := r.status.(HTTPStatus); !ok {
		t.Errorf("default status source: got %T, want HTTPStatus", r.status)
	}
}

func TestUnprobedCellsAreDown(t *testing.T) {
	f := newFixture(t, Config{})
	_, err := f.resolve(t, "", "")
	if got := apierr.CodeOf(err); got != apierr.NoHealthyCell {
		t.Errorf("before any probe: got %v (%v), want %s", got, err, apierr.NoHealthyCell)
	}
	f.round(t, 1)
	if res, err := f.resolve(t, "", ""); err != nil || res.HomeCell != "eu-west" {
		t.Errorf("after one round: got %+v, %v; want eu-west", res, err)
	}
}

func TestStartProbesSynchronously(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	if err := f.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.r.Stop(ctx)
	if res, err := f.resolve(t, playerEU, ""); err != nil || res.Placement != PlacementExisting {
		t.Errorf("right after Start: got %+v, %v; want existing", res, err)
	}
	if err := f.r.Start(ctx); err == nil {
		t.Error("second Start: got nil error, want one")
	}
}

// probeCounter signals every probe so the test can wait for background
// rounds without sleeping.
type probeCounter struct {
	*fakeStatus
	probed chan string
}

func (p probeCounter) Status(ctx context.Context, c config.Cell) (cellapi.Status, error) {
	select {
	case p.probed <- c.ID:
	default:
	}
	return p.fakeStatus.Status(ctx, c)
}

func TestProbeLoopRunsUntilStop(t *testing.T) {
	cells := testCells(t)
	pc := probeCounter{fakeStatus: newStatus(cells), probed: make(chan string, 1)}
	r, err := New(Config{Cells: cells, ProbeInterval: 1e6}, Deps{Homes: newDir(), Status: pc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Drain what the synchronous round left, then see the loop probe and
	// act on it: a cell that goes down is noticed without anyone calling
	// probeRound.
	pc.down("eu-north")
	for {
		<-pc.probed
		if !r.view.Load().cells[1].up {
			break
		}
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: got %v, want nil", err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Errorf("second Stop: got %v, want nil", err)
	}
}

func TestResolveExistingIsSticky(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	for _, hint := range []string{"", "us-east", "asia-southeast1"} {
		res, err := f.resolve(t, playerEU, hint)
		if err != nil {
			t.Fatal(err)
		}
		want := Resolution{PlayerID: playerEU, HomeCell: "eu-west", Region: "europe-west1",
			Gateway: "127.0.0.1:4110", API: "127.0.0.1:4111", Placement: PlacementExisting}
		if res != want {
			t.Errorf("hint %q: got %+v, want %+v", hint, res, want)
		}
	}
	// Upper-case ids are the same player, answered in canonical form.
	upper := "6F1C2A34-8D1E-4B9A-9C2F-0A1B2C3D4E5F"
	if res, err := f.resolve(t, upper, ""); err != nil || res.PlayerID != playerEU || res.HomeCell != "eu-west" {
		t.Errorf("upper-case id: got %+v, %v; want %s at eu-west", res, err, playerEU)
	}
}

func TestResolveNew(t *testing.T) {
	tests := []struct {
		name     string
		sessions map[string]int
		down     []string
		hint     string
		want     string
	}{
		{name: "tie goes to first in cells.yaml", want: "eu-west"},
		{name: "hint by id", hint: "us-east", want: "us-east"},
		{name: "hint by id, any case", hint: "US-EAST", want: "us-east"},
		{name: "hint by region", hint: "europe-north1", want: "eu-north"},
		{name: "hint by region, any case", hint: "Europe-North1", want: "eu-north"},
		{name: "unknown hint falls back", hint: "mars-central1", want: "eu-west"},
		{
			name:     "least loaded by ratio, not by count",
			sessions: map[string]int{"eu-west": 50, "eu-north": 30, "us-east": 200}, // 0.5, 0.3, 0.2
			want:     "us-east",
		},
		{
			name:     "full hinted cell falls back to least loaded",
			sessions: map[string]int{"eu-west": 100, "eu-north": 40, "us-east": 500},
			hint:     "eu-west",
			want:     "eu-north",
		},
		{
			name:     "over-full hinted region falls back",
			sessions: map[string]int{"eu-west": 120, "eu-north": 40, "us-east": 900},
			hint:     "europe-west1",
			want:     "eu-north",
		},
		{
			name:     "unhealthy hinted cell falls back to least loaded",
			sessions: map[string]int{"eu-west": 10, "eu-north": 5, "us-east": 400},
			down:     []string{"eu-north"},
			hint:     "eu-north",
			want:     "eu-west",
		},
		{
			name:     "draining cell is never chosen, even hinted and empty",
			sessions: map[string]int{"eu-west": 90, "eu-north": 90, "us-east": 900, "ap-south": 0},
			hint:     "ap-south",
			want:     "eu-west",
		},
		{
			name:     "draining region hint falls back",
			sessions: map[string]int{"eu-west": 90, "eu-north": 80, "us-east": 900},
			hint:     "asia-southeast1",
			want:     "eu-north",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			for id, n := range tt.sessions {
				f.status.up(id, n)
			}
			for _, id := range tt.down {
				f.status.down(id)
			}
			f.round(t, 1) // unprobed cells come up on their first success
			res, err := f.resolve(t, "", tt.hint)
			if err != nil {
				t.Fatal(err)
			}
			if res.HomeCell != tt.want || res.Placement != PlacementNew || res.PlayerID != "" {
				t.Errorf("got %s (%s, player %q), want %s (new)", res.HomeCell, res.Placement, res.PlayerID, tt.want)
			}
		})
	}
}

func TestResolveAllFull(t *testing.T) {
	f := newFixture(t, Config{})
	f.status.up("eu-west", 100)
	f.status.up("eu-north", 100)
	f.status.up("us-east", 1000)
	f.round(t, 1)
	_, err := f.resolve(t, "", "")
	if got := apierr.CodeOf(err); got != apierr.NoHealthyCell {
		t.Errorf("got %v, want %s", err, apierr.NoHealthyCell)
	}
	// Players who already have a home are still served.
	if res, err := f.resolve(t, playerEU, ""); err != nil || res.Placement != PlacementExisting {
		t.Errorf("existing player with full cells: got %+v, %v; want existing", res, err)
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name      string
		player    string
		down      []string
		want      string
		wantPlace Placement
		wantCode  apierr.Code
	}{
		{name: "home up", player: playerEU, want: "eu-west", wantPlace: PlacementExisting},
		{name: "home down: first failover", player: playerEU, down: []string{"eu-west"}, want: "us-east", wantPlace: PlacementFailover},
		{name: "home and first failover down: second", player: playerEU, down: []string{"eu-west", "us-east"}, want: "eu-north", wantPlace: PlacementFailover},
		{name: "home and every failover down", player: playerEU, down: []string{"eu-west", "us-east", "eu-north"}, wantCode: apierr.NoHealthyCell},
		{name: "draining failover skipped", player: playerUS, down: []string{"us-east"}, want: "eu-west", wantPlace: PlacementFailover},
		{name: "draining home sends its players to failover", player: playerAP, want: "us-east", wantPlace: PlacementFailover},
		{name: "draining home without a failover keeps its players", player: playerAP, down: []string{"us-east"}, want: "ap-south", wantPlace: PlacementExisting},
		{name: "draining home down, failover down", player: playerAP, down: []string{"us-east", "ap-south"}, wantCode: apierr.NoHealthyCell},
		{name: "unrelated cell down", player: playerUS, down: []string{"eu-north"}, want: "us-east", wantPlace: PlacementExisting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{FailThreshold: 3})
			f.round(t, 1)
			for _, id := range tt.down {
				f.status.down(id)
			}
			f.round(t, 3)
			res, err := f.resolve(t, tt.player, "")
			if tt.wantCode != "" {
				if got := apierr.CodeOf(err); got != tt.wantCode {
					t.Fatalf("got %+v, %v; want code %s", res, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.HomeCell != tt.want || res.Placement != tt.wantPlace {
				t.Errorf("got %s (%s), want %s (%s)", res.HomeCell, res.Placement, tt.want, tt.wantPlace)
			}
			wantFrom := ""
			if tt.wantPlace == PlacementFailover {
				wantFrom, _ = f.dir.Home(context.Background(), tt.player)
			}
			if res.FailoverFrom != wantFrom {
				t.Errorf("failover_from: got %q, want %q", res.FailoverFrom, wantFrom)
			}
		})
	}
}

func TestDisabledHomeFailsOver(t *testing.T) {
	f := newFixture(t, Config{})
	f.round(t, 1)
	cells := testCells(t)
	cells.Cells[0].State = config.StateDisabled // eu-west
	f.r.SetCells(cells)
	res, err := f.resolve(t, playerEU, "")
	if err != nil || res.HomeCell != "us-east" || res.Placement != PlacementFailover {
		t.Errorf("disabled home: got %+v, %v; want failover to us-east", res, err)
	}
	res, err = f.resolve(t, "", "eu-west")
	if err != nil || res.HomeCell == "eu-west" {
		t.Errorf("new player hinted at a disabled cell: got %+v, %v; want another cell", res, err)
	}
}

func TestHysteresis(t *testing.T) {
	f := newFixture(t, Config{FailThreshold: 3, RiseThreshold: 2})
	f.round(t, 1)
	isUp := func() bool { return f.r.view.Load().cells[0].up } // eu-west
	upGauge := func() float64 { return metricValue(t, f.r.m.cellUp.WithLabelValues("eu-west")) }

	steps := []struct {
		probe  func()
		wantUp bool
	}{
		{func() { f.status.down("eu-west") }, true}, // 1 failure
		{func() {}, true},  // 2 failures
		{func() {}, false}, // 3 failures: down
		{func() { f.status.up("eu-west", 7) }, false}, // 1 success
		{func() { f.status.down("eu-west") }, false},  // a failure resets the rise
		{func() { f.status.up("eu-west", 7) }, false}, // 1 success
		{func() {}, true}, // 2 successes: up
		{func() { f.status.unhealthy("eu-west") }, true},
		{func() {}, true},
		{func() {}, false}, // Healthy=false counts as a failure too
	}
	for i, s := range steps {
		s.probe()
		f.round(t, 1)
		if got := isUp(); got != s.wantUp {
			t.Fatalf("step %d: got up=%v, want %v", i+1, got, s.wantUp)
		}
		want := 0.0
		if s.wantUp {
			want = 1
		}
		if got := upGauge(); got != want {
			t.Fatalf("step %d: livecell_router_cell_up: got %v, want %v", i+1, got, want)
		}
	}
	if got := metricValue(t, f.r.m.probeFailures.WithLabelValues("eu-west")); got != 7 {
		t.Errorf("probe failures: got %v, want 7", got)
	}
}

func TestProbeFailureKinds(t *testing.T) {
	tests := []struct {
		name string
		st   cellapi.Status
		err  error
	}{
		{name: "error", err: errors.New("dial tcp: connection refused")},
		{name: "unhealthy", st: cellapi.Status{Cell: "eu-west", Healthy: false}},
		{name: "wrong cell answered", st: cellapi.Status{Cell: "us-east", Healthy: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{FailThreshold: 1})
			f.round(t, 1)
			f.status.mu.Lock()
			f.status.cells["eu-west"], f.status.errs["eu-west"] = tt.st, tt.err
			f.status.mu.Unlock()
			f.round(t, 1)
			c := f.r.Cells().Cells[0]
			if c.Up || c.LastError == "" || c.Failures != 1 {
				t.Errorf("got up=%v failures=%d last_error=%q, want down with an error", c.Up, c.Failures, c.LastError)
			}
		})
	}
}

// barrierStatus answers only once every cell is being probed, so a round
// that probed cells one after another would time out every probe.
type barrierStatus struct {
	wg *sync.WaitGroup
}

func (b barrierStatus) Status(ctx context.Context, c config.Cell) (cellapi.Status, error) {
	b.wg.Done()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return cellapi.Status{Cell: c.ID, Healthy: true}, nil
	case <-ctx.Done():
		return cellapi.Status{}, ctx.Err()
	}
}

func TestProbesRunConcurrentlyWithTimeout(t *testing.T) {
	cells := testCells(t)
	var wg sync.WaitGroup
	wg.Add(len(cells.Cells))
	r, err := New(Config{Cells: cells, ProbeTimeout: 30e9}, Deps{Homes: newDir(), Status: barrierStatus{&wg}})
	if err != nil {
		t.Fatal(err)
	}
	r.probeRound(context.Background())
	for _, c := range r.Cells().Cells {
		if !c.Up {
			t.Errorf("%s: got down (%s), want up: probes must run concurrently", c.ID, c.LastError)
		}
	}

	// A probe that never answers is cut off by ProbeTimeout and counts as a
	// failure; the round still completes.
	var never sync.WaitGroup
	never.Add(len(cells.Cells) + 1)
	r2, err := New(Config{Cells: cells, ProbeTimeout: 1e6}, Deps{Homes: newDir(), Status: barrierStatus{&never}})
	if err != nil {
		t.Fatal(err)
	}
	r2.probeRound(context.Background())
	never.Done() // release the waiters the timed-out probes left behind
	for _, c := range r2.Cells().Cells {
		if c.Up || c.LastError == "" {
			t.Errorf("%s: got up=%v error=%q, want down after a timeout", c.ID, c.Up, c.LastError)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name   string
		req    ResolveRequest
		dirErr error
		down   bool
		want   apierr.Code
	}{
		{name: "not a uuid", req: ResolveRequest{PlayerID: "bob"}, want: apierr.BadRequest},
		{name: "uuid without hyphens", req: ResolveRequest{PlayerID: "6f1c2a348d1e4b9a9c2f0a1b2c3d4e5f"}, want: apierr.BadRequest},
		{name: "urn uuid", req: ResolveRequest{PlayerID: "urn:uuid:" + playerEU}, want: apierr.BadRequest},
		{name: "36 bytes, not hex", req: ResolveRequest{PlayerID: "zzzzzzzz-8d1e-4b9a-9c2f-0a1b2c3d4e5f"}, want: apierr.BadRequest},
		{name: "long hint", req: ResolveRequest{RegionHint: string(make([]byte, 10<<10))}, want: apierr.BadRequest},
		{name: "sql in hint", req: ResolveRequest{RegionHint: "eu-west'; DROP TABLE players;--"}, want: apierr.BadRequest},
		{name: "hint with spaces", req: ResolveRequest{RegionHint: "eu west"}, want: apierr.BadRequest},
		{name: "unknown player", req: ResolveRequest{PlayerID: playerUnknown}, want: apierr.UnknownPlayer},
		{name: "directory down", req: ResolveRequest{PlayerID: playerEU}, dirErr: errors.New("pg: connection reset"), want: apierr.Unavailable},
		{name: "home not in cells.yaml", req: ResolveRequest{PlayerID: playerLost}, want: apierr.Internal},
		{name: "all down, new", req: ResolveRequest{}, down: true, want: apierr.NoHealthyCell},
		{name: "all down, existing", req: ResolveRequest{PlayerID: playerEU}, down: true, want: apierr.NoHealthyCell},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{FailThreshold: 1})
			f.round(t, 1)
			f.dir.err = tt.dirErr
			if tt.down {
				for id := range f.status.cells {
					f.status.down(id)
				}
				f.round(t, 1)
			}
			res, err := f.r.Resolve(context.Background(), tt.req)
			if got := apierr.CodeOf(err); got != tt.want {
				t.Fatalf("got %+v, %v; want code %s", res, err, tt.want)
			}
			if got := metricValue(t, f.r.m.resolves.WithLabelValues("none", string(tt.want))); got != 1 {
				t.Errorf("resolves_total{placement=none,code=%s}: got %v, want 1", tt.want, got)
			}
		})
	}
}

func TestResolveMetrics(t *testing.T) {
	f := newFixture(t, Config{FailThreshold: 1})
	f.round(t, 1)
	for range 3 {
		f.resolve(t, playerEU, "")
	}
	f.resolve(t, "", "")
	f.status.down("eu-west")
	f.round(t, 1)
	f.resolve(t, playerEU, "")
	tests := []struct {
		c    prometheus.Collector
		want float64
	}{
		{f.r.m.resolves.WithLabelValues("existing", "ok"), 3},
		{f.r.m.resolves.WithLabelValues("new", "ok"), 1},
		{f.r.m.resolves.WithLabelValues("failover", "ok"), 1},
		{f.r.m.duration, 5},
		{f.r.m.cellUp.WithLabelValues("eu-west"), 0},
		{f.r.m.cellUp.WithLabelValues("us-east"), 1},
	}
	for i, tt := range tests {
		if got := metricValue(t, tt.c); got != tt.want {
			t.Errorf("metric %d: got %v, want %v", i, got, tt.want)
		}
	}
	f.status.up("us-east", 42)
	f.round(t, 1)
	if got := metricValue(t, f.r.m.cellSessions.WithLabelValues("us-east")); got != 42 {
		t.Errorf("cell_sessions{us-east}: got %v, want 42", got)
	}
}

func TestSetCells(t *testing.T) {
	f := newFixture(t, Config{FailThreshold: 1})
	f.status.up("eu-west", 10)
	f.round(t, 1)

	// Drop eu-north, add sa-east, keep the rest.
	next, err := config.Parse([]byte(`
version: 1
cells:
  - id: eu-west
    region: europe-west1
    gateway: 127.0.0.1:4110
    api: 127.0.0.1:4111
    capacity: 100
    failover: [sa-east]
  - id: us-east
    region: us-east1
    gateway: 127.0.0.1:4120
    api: 127.0.0.1:4121
    capacity: 1000
  - id: sa-east
    region: southamerica-east1
    gateway: 127.0.0.1:4150
    api: 127.0.0.1:4151
    capacity: 100
`))
	if err != nil {
		t.Fatal(err)
	}
	f.r.SetCells(next)

	got := f.r.Cells()
	var ids []string
	for _, c := range got.Cells {
		ids = append(ids, fmt.Sprintf("%s:%v:%d", c.ID, c.Up, c.Sessions))
	}
	want := []string{"eu-west:true:10", "us-east:true:0", "sa-east:false:0"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("after swap: got %v, want %v (kept health, new cell down until probed)", ids, want)
	}
	if res, err := f.resolve(t, "", "southamerica-east1"); err != nil || res.HomeCell != "us-east" {
		t.Errorf("hint at unprobed new cell: got %+v, %v; want least-loaded us-east", res, err)
	}
	f.status.up("sa-east", 0)
	f.round(t, 1)
	if res, err := f.resolve(t, "", "southamerica-east1"); err != nil || res.HomeCell != "sa-east" {
		t.Errorf("hint at probed new cell: got %+v, %v; want sa-east", res, err)
	}
	// The new failover list is used.
	f.status.down("eu-west")
	f.round(t, 1)
	if res, err := f.resolve(t, playerEU, ""); err != nil || res.HomeCell != "sa-east" {
		t.Errorf("failover after swap: got %+v, %v; want sa-east", res, err)
	}
	// The removed cell's series are gone.
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "cell" && lp.GetValue() == "eu-north" {
					t.Errorf("%s still has a series for removed cell eu-north", mf.GetName())
				}
			}
		}
	}
}

func TestSetCellsDuringRound(t *testing.T) {
	f := newFixture(t, Config{FailThreshold: 1})
	f.round(t, 1)
	old := f.r.cells
	// A round that started before a reload moved eu-west to a new address
	// must not apply its (old address) result to the moved cell.
	moved := testCells(t)
	moved.Cells[0].API = "127.0.0.1:9999"
	f.r.SetCells(moved)
	results := make([]probeResult, len(old.Cells))
	for i := range results {
		results[i].err = errors.New("refused")
	}
	f.r.apply(old, results)
	cells := f.r.Cells().Cells
	if !cells[0].Up {
		t.Error("moved cell: got down from a probe of its old address, want unchanged")
	}
	if cells[1].Up {
		t.Error("unmoved cell: got up, want the round's failure applied")
	}
}

func TestRegistererSharedByTwoRouters(t *testing.T) {
	reg := prometheus.NewRegistry()
	cells := testCells(t)
	for i := range 2 {
		if _, err := New(Config{Cells: cells}, Deps{Homes: newDir(), Metrics: reg}); err != nil {
			t.Fatalf("router %d: %v", i, err)
		}
	}
}
