package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	edgetransport "github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/loadtest/report"
	"github.com/livecell/livecell/loadtest/scenario"
)

// workerEnv makes this test binary a load-test worker, as `livecell
// loadtest worker` is, so sharding is tested across real processes.
const workerEnv = "LIVECELL_LOADTEST_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout, WorkerOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testWorker(t *testing.T) func(context.Context) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		return cmd
	}
}

func run(t *testing.T, cfg Config) *report.Report {
	t.Helper()
	if cfg.Tick == 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func op(t *testing.T, r *report.Report, name string) report.Op {
	t.Helper()
	o, ok := r.Op(name)
	if !ok {
		var names []string
		for _, o := range r.Ops {
			names = append(names, o.Name)
		}
		t.Fatalf("report has no operation %q (has %v)", name, names)
	}
	return o
}

const mixScenario = `name: mix
players: 20
login: token
requests:
  rate: 20/s
  mix:
    - {op: echo, weight: 2, payload: {hello: world}}
    - {op: ping, weight: 1}
    - {op: inventory.get, weight: 1}
phases:
  - {name: ramp-up, duration: 400ms, players: 100%}
  - {name: steady, duration: 2s}
`

func TestRunOpenLoopAgainstGateway(t *testing.T) {
	key, ks := writeKey(t)
	a, b := startFakeGateway(t, "a", ks), startFakeGateway(t, "b", ks)
	var ticks []Progress
	var mu sync.Mutex
	r := run(t, Config{
		Scenario: []byte(mixScenario), ScenarioPath: "mix.yaml",
		Target:   Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {a.addr()}, "b": {b.addr()}}},
		Progress: func(p Progress) { mu.Lock(); ticks = append(ticks, p); mu.Unlock() },
	})

	// Every player connected once, spread over both cells.
	if c := op(t, r, "connect"); c.OK != 20 || c.Failed != 0 {
		t.Errorf("connect: ok %d failed %d (%v), want 20 and 0", c.OK, c.Failed, c.Errors)
	}
	if ha, hb := a.hellos.Load(), b.hellos.Load(); ha != 10 || hb != 10 {
		t.Errorf("hellos per cell: a %d b %d, want 10 each", ha, hb)
	}
	if r.Sessions.Peak != 20 || r.Summary.Sessions != 20 {
		t.Errorf("sessions: peak %d, summary %d, want 20", r.Sessions.Peak, r.Summary.Sessions)
	}
	// 20 players × 20/s for about 2.2 s of activity: ~880 requests.
	all := op(t, r, "all")
	if all.Count < 600 || all.Count > 1100 {
		t.Errorf("requests: %d, want about 880", all.Count)
	}
	served := a.requests.Load() + b.requests.Load()
	if all.Count != served {
		t.Errorf("the report counts %d requests, the gateways answered %d", all.Count, served)
	}
	echo, ping, inv := op(t, r, "echo"), op(t, r, "ping"), op(t, r, "inventory.get")
	if echo.OK+ping.OK+inv.Failed != all.Count || echo.Failed+ping.Failed != 0 {
		t.Errorf("echo %+v ping %+v inventory %+v do not add up to %d", echo, ping, inv, all.Count)
	}
	// The gateway refuses inventory.get: every one is an error by code.
	if inv.OK != 0 || inv.Errors["not_found"] != inv.Count || inv.Count == 0 {
		t.Errorf("inventory.get: %+v, want every request failed with not_found", inv)
	}
	// Weights 2:1:1.
	if ratio := float64(echo.Count) / float64(all.Count); ratio < 0.4 || ratio > 0.6 {
		t.Errorf("echo share %.2f, want about 0.5", ratio)
	}
	if echo.Latency.P50 <= 0 || echo.Latency.P99 < echo.Latency.P50 || echo.Latency.Max < echo.Latency.P99 || echo.Service == nil {
		t.Errorf("echo latency %+v service %v: want ordered percentiles and service time", echo.Latency, echo.Service)
	}
	// One push per echo, counted by topic; a player leaving at the end
	// may not read the push that follows its last echo.
	if got := r.Pushes.ByTopic["echo.seen"]; got > echo.OK || got < echo.OK-20 || r.Pushes.Dropped != 0 {
		t.Errorf("pushes %+v, want about %d echo.seen and none dropped", r.Pushes, echo.OK)
	}
	if r.Summary.Phase != "steady" || r.Summary.RTTPerSec < 250 || r.Summary.RTTPerSec > 500 || r.Summary.ErrorRate < 0.1 || r.Summary.ErrorRate > 0.4 {
		t.Errorf("summary %+v: want the steady phase at about 400 req/s with a quarter failing", r.Summary)
	}
	if len(r.Phases) != 2 || r.Phases[0].Name != "ramp-up" || r.Phases[1].EndS != 2.4 {
		t.Errorf("phases: %+v", r.Phases)
	}
	if n := len(r.Series); n < 12 || n > 16 {
		t.Errorf("series: %d ticks, want about 12 (2.4 s at 200 ms)", n)
	}
	if len(r.Processes) != 1 || r.Processes[0].PID != os.Getpid() || r.Processes[0].Players != 20 {
		t.Errorf("processes: %+v", r.Processes)
	}
	if len(r.Usage) != 1 || r.Usage[0].Name != "loadtest" || len(r.Usage[0].Samples) == 0 {
		t.Errorf("usage: %+v, want the load tester's own samples", r.Usage)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ticks) != len(r.Series) || ticks[len(ticks)-1].Phase != "steady" {
		t.Errorf("progress: %d calls (last %+v), want one per tick ending in steady", len(ticks), ticks[len(ticks)-1])
	}

	// Every form of the report renders.
	var text, html, js bytes.Buffer
	if err := report.WriteText(&text, r); err != nil || !strings.Contains(text.String(), "inventory.get errors: not_found") {
		t.Errorf("text report (%v):\n%s", err, text.String())
	}
	if err := report.WriteHTML(&html, r); err != nil || !strings.Contains(html.String(), "<svg") || strings.Contains(html.String(), "http://") || strings.Contains(html.String(), "https://") {
		t.Errorf("html report (%v): want inline SVG and no external reference", err)
	}
	if err := report.WriteJSON(&js, r); err != nil || !strings.Contains(js.String(), `"rtt_per_sec"`) {
		t.Errorf("json report (%v)", err)
	}
}

func TestRunReportsRefusedAndDroppedConnections(t *testing.T) {
	key, _ := writeKey(t)
	doc := `name: broken
players: 9
login: token
requests: {rate: 5/s, mix: [{op: ping}]}
phases:
  - {name: steady, duration: 1500ms}
`
	r := run(t, Config{Scenario: []byte(doc), Target: Target{SigningKeyFile: key, Gateways: map[string][]string{
		"refuses": {refusingAddr(t)},
		"closes":  {droppingListener(t, false)},
		"resets":  {droppingListener(t, true)},
	}}})
	c := op(t, r, "connect")
	if c.OK != 0 || c.Failed == 0 {
		t.Fatalf("connect: %+v, want only failures", c)
	}
	for _, kind := range []string{KindRefused, KindClosed, KindReset} {
		if c.Errors[kind] == 0 {
			t.Errorf("connect errors %v lack %s", c.Errors, kind)
		}
		if c.ErrorExamples[kind] == "" {
			t.Errorf("connect error examples %v lack %s", c.ErrorExamples, kind)
		}
	}
	if ex := c.ErrorExamples[KindRefused]; !strings.Contains(ex, "connection refused") {
		t.Errorf("the example of %s says %q", KindRefused, ex)
	}
	if r.Summary.Errors != c.Failed || r.Sessions.Peak != 0 {
		t.Errorf("summary %+v sessions %+v: want every connect failure counted and no session", r.Summary, r.Sessions)
	}
	// Players back off: three per cell over 1.5 s make a handful of
	// attempts each, not a storm.
	if c.Failed > 9*20 {
		t.Errorf("%d connect attempts from 9 players in 1.5 s: no backoff", c.Failed)
	}
}

func TestRunShardsAcrossWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	key, ks := writeKey(t)
	gw := startFakeGateway(t, "a", ks)
	doc := `name: sharded
players: 30
login: token
requests: {rate: 10/s, mix: [{op: echo}]}
phases:
  - {name: ramp-up, duration: 300ms, players: 100%}
  - {name: steady, duration: 1500ms}
`
	r := run(t, Config{
		Scenario: []byte(doc), Processes: 2, WorkerCommand: testWorker(t),
		Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {gw.addr()}}},
	})
	if len(r.Processes) != 2 {
		t.Fatalf("processes: %+v, want 2", r.Processes)
	}
	srcs := map[string]bool{}
	players := 0
	for _, p := range r.Processes {
		if p.Error != "" || p.PID == 0 || p.PID == os.Getpid() {
			t.Errorf("process %+v: want a separate worker without error", p)
		}
		srcs[p.Source] = true
		players += p.Players
	}
	if !srcs["127.0.0.1"] || !srcs["127.0.0.2"] || players != 30 {
		t.Errorf("processes %+v: want 30 players over sources 127.0.0.1 and 127.0.0.2", r.Processes)
	}
	// The gateway saw sessions from both source addresses.
	if got := gw.sourceIPs(); got["127.0.0.1"] != 15 || got["127.0.0.2"] != 15 {
		t.Errorf("connections by source address: %v, want 15 from each", got)
	}
	if c := op(t, r, "connect"); c.OK != 30 || c.Failed != 0 {
		t.Errorf("connect: %+v, want 30 ok", c)
	}
	echo := op(t, r, "echo")
	if echo.Count != gw.echoes.Load() || echo.Count < 300 || echo.Failed != 0 {
		t.Errorf("echo: %+v, gateway answered %d; want the same, about 500", echo, gw.echoes.Load())
	}
	if r.Sessions.Peak != 30 {
		t.Errorf("peak sessions %d, want 30 (summed over both processes)", r.Sessions.Peak)
	}
	// The load tester's own CPU covers the workers too.
	if len(r.Usage) == 0 || r.Usage[0].Name != "loadtest" || r.Usage[0].CPUCoresMax <= 0 {
		t.Errorf("usage: %+v", r.Usage)
	}
}

func TestRunStoppedEarlyStillReports(t *testing.T) {
	key, ks := writeKey(t)
	gw := startFakeGateway(t, "a", ks)
	doc := "name: long\nplayers: 10\nlogin: token\nrequests: {rate: 20/s, mix: [{op: ping}]}\nphases:\n  - {name: steady, duration: 1m}\n"
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := Run(ctx, Config{Scenario: []byte(doc), Tick: 250 * time.Millisecond,
		Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {gw.addr()}}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a stopped run took %s to report", d)
	}
	// Rates are over the 1.5 s that ran, not the minute scheduled.
	if p := op(t, r, "ping"); p.PerSec < 120 || p.PerSec > 260 || r.Summary.RTTPerSec < 120 || r.Summary.RTTPerSec > 260 {
		t.Errorf("ping %+v, summary %+v: want about 200/s", p, r.Summary)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "stopped before the end") {
		t.Errorf("notes %v: want the early stop said", r.Notes)
	}
	if r.Sessions.End != 0 {
		t.Errorf("%d sessions still open at the end", r.Sessions.End)
	}
}

func TestRunSessionsEndAndResume(t *testing.T) {
	key, ks := writeKey(t)
	gw := startFakeGateway(t, "a", ks)
	doc := `name: churn
players: 5
login: token
session: {length: 300ms, offline: 100ms, resume: true}
requests: {think: 20ms..40ms, mix: [{op: ping}]}
phases:
  - {name: steady, duration: 1500ms}
`
	r := run(t, Config{Scenario: []byte(doc), Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {gw.addr()}}}})
	if c := op(t, r, "connect"); c.OK != 5 {
		t.Errorf("connect: %+v, want one fresh Hello per player", c)
	}
	rc := op(t, r, "reconnect")
	if rc.OK < 5 || rc.OK != gw.resumes.Load() {
		t.Errorf("reconnect: %+v, gateway saw %d resumes; want several per player, the same", rc, gw.resumes.Load())
	}
	if r.Sessions.Events[sessionEndedEvent] < rc.OK {
		t.Errorf("events %v: want at least %d session ends", r.Sessions.Events, rc.OK)
	}
	if r.Mode != "closed-loop" || op(t, r, "ping").OK == 0 {
		t.Errorf("mode %s, ping %+v", r.Mode, op(t, r, "ping"))
	}
}

func TestRunFollowsReconnect(t *testing.T) {
	key, ks := writeKey(t)
	to := startFakeGateway(t, "a", ks)
	from := startFakeGateway(t, "a", ks, func(g *fakeGateway) { g.moveAfter, g.moveTo = 3, to.addr() })
	doc := `name: drain
players: 4
login: token
session: {resume: true}
requests: {rate: 20/s, mix: [{op: ping}]}
phases:
  - {name: steady, duration: 1s}
`
	r := run(t, Config{Scenario: []byte(doc), Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {from.addr()}}}})
	if got := r.Sessions.Events[movedPrefix+"draining"]; got != 4 {
		t.Errorf("moved events %v, want 4 moved:draining", r.Sessions.Events)
	}
	if from.hellos.Load() != 4 || to.resumes.Load() != 4 {
		t.Errorf("first gateway %d hellos, second %d resumes; want 4 and 4", from.hellos.Load(), to.resumes.Load())
	}
	if to.requests.Load() == 0 {
		t.Errorf("no requests reached the gateway the players moved to")
	}
}

// TestRunOverEdgeTransports plays through QUIC and WebSocket listeners of
// edge/transport, as players of an edge do.
func TestRunOverEdgeTransports(t *testing.T) {
	key, ks := writeKey(t)
	certPEM, keyPEM, err := edgetransport.GenerateCert([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "edge-cert.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ql, err := edgetransport.ListenQUIC("127.0.0.1:0", edgetransport.ServerTLS(cert), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := edgetransport.ListenWS("127.0.0.1:0", nil, protocol.DefaultMaxFrame, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gws := map[string]*fakeGateway{"quic": serveFakeGateway(t, ql, "a", ks), "ws": serveFakeGateway(t, wl, "a", ks)}
	for tr, gw := range gws {
		t.Run(tr, func(t *testing.T) {
			doc := "name: edge\nplayers: 4\nlogin: token\ncells: [a]\nconnect: {via: edge, transport: " + tr + "}\n" +
				"requests: {rate: 10/s, mix: [{op: echo}]}\nphases: [{duration: 1s}]\n"
			r := run(t, Config{Scenario: []byte(doc), Target: Target{SigningKeyFile: key, EdgeCertFile: certFile,
				Edges: []Edge{{Cell: "a", Transport: tr, Addr: gw.ln.Addr().String()}}}})
			if c := op(t, r, "connect"); c.OK != 4 || c.Failed != 0 {
				t.Errorf("connect over %s: %+v", tr, c)
			}
			if e := op(t, r, "echo"); e.OK == 0 || e.Failed != 0 || e.OK != gw.echoes.Load() {
				t.Errorf("echo over %s: %+v, the server answered %d", tr, e, gw.echoes.Load())
			}
		})
	}
}

func TestRunRefusesWhatCannotRun(t *testing.T) {
	key, _ := writeKey(t)
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad scenario", Config{Scenario: []byte("name: x\nplayers: 0\n"), ScenarioPath: "x.yaml"}, "x.yaml:2: players"},
		{"password without router", Config{Scenario: []byte("name: x\nplayers: 1\nphases: [{duration: 1s}]\n")}, "resolves players at a router"},
		{"token without key", Config{Scenario: []byte("name: x\nplayers: 1\nlogin: token\nphases: [{duration: 1s}]\n"), Target: Target{Gateways: map[string][]string{"a": {"127.0.0.1:1"}}}}, "signing key"},
		{"token without gateway", Config{Scenario: []byte("name: x\nplayers: 1\nlogin: token\ncells: [b]\nphases: [{duration: 1s}]\n"), Target: Target{SigningKeyFile: key}}, "gateway of cell b"},
		{"unknown transport", Config{Scenario: []byte("name: x\nplayers: 1\nconnect: {via: edge, transport: sctp}\nphases: [{duration: 1s}]\n"), Target: Target{Routers: []string{"http://127.0.0.1:1"}}}, `transport "sctp" is not available here (have: [quic tcp ws])`},
		{"edge without edges", Config{Scenario: []byte("name: x\nplayers: 1\nconnect: {via: edge, transport: ws}\nphases: [{duration: 1s}]\n"), Target: Target{Routers: []string{"http://127.0.0.1:1"}}}, "needs an edge address for transport ws"},
		{"quic without certificate", Config{Scenario: []byte("name: x\nplayers: 1\nconnect: {via: edge, transport: quic}\nphases: [{duration: 1s}]\n"), Target: Target{Routers: []string{"http://127.0.0.1:1"}, Edges: []Edge{{Transport: "quic", Addr: "127.0.0.1:1"}}}}, "quic needs the edge's certificate"},
		{"sharding without workers", Config{Scenario: []byte("name: x\nplayers: 4\nlogin: token\nphases: [{duration: 1s}]\n"), Processes: 2, Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {"127.0.0.1:1"}}}}, "WorkerCommand"},
	} {
		_, err := Run(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestRunWorkerThatCannotStart(t *testing.T) {
	key, _ := writeKey(t)
	cfg := Config{
		Scenario: []byte("name: x\nplayers: 4\nlogin: token\nphases: [{duration: 1s}]\n"), Processes: 2,
		Target: Target{SigningKeyFile: key, Gateways: map[string][]string{"a": {"127.0.0.1:1"}}},
		WorkerCommand: func(ctx context.Context) *exec.Cmd {
			return exec.CommandContext(ctx, "sh", "-c", "echo 'cannot start: no such thing' >&2; exit 3")
		},
	}
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot start: no such thing") {
		t.Errorf("got %v, want the worker's own message", err)
	}
}

func TestPlan(t *testing.T) {
	sc := func(players int) *scenario.Scenario {
		s, err := scenario.Parse(fmt.Appendf(nil, "name: p\nplayers: %d\nphases: [{duration: 1s}]\n", players))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	loop := Target{Gateways: map[string][]string{"a": {"127.0.0.1:4110"}}, Routers: []string{"http://localhost:4100"}}
	remote := Target{Gateways: map[string][]string{"a": {"10.1.2.3:4110"}}}
	for _, tt := range []struct {
		name    string
		players int
		cfg     Config
		procs   int
		sources []string
		wantErr string
	}{
		{"small", 100, Config{Target: loop}, 1, []string{""}, ""},
		{"100k on loopback", 100_000, Config{Target: loop}, 7, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"}, ""},
		{"remote target binds nothing", 40_000, Config{Target: remote}, 3, []string{"", "", ""}, ""},
		{"forced processes", 10, Config{Target: loop, Processes: 3}, 3, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, ""},
		{"no more processes than players", 2, Config{Target: loop, Processes: 5}, 2, []string{"127.0.0.1", "127.0.0.2"}, ""},
		{"given sources rotate", 50_000, Config{Target: loop, SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("127.0.0.10")}}, 4, []string{"127.0.0.9", "127.0.0.10", "127.0.0.9", "127.0.0.10"}, ""},
		{"one source is not enough", 60_000, Config{Target: loop, SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.9")}}, 0, nil, "more than the 25000 one address"},
		{"processes too few", 60_000, Config{Target: loop, Processes: 2}, 0, nil, "more than the 15000 a process may"},
	} {
		specs, err := plan(sc(tt.players), tt.cfg)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		var srcs []string
		for i, s := range specs {
			srcs = append(srcs, s.Source)
			if s.Shard != i || s.Shards != tt.procs || s.RunID != specs[0].RunID || s.Password == "" {
				t.Errorf("%s: spec %d = %+v", tt.name, i, s)
			}
		}
		if len(specs) != tt.procs || strings.Join(srcs, ",") != strings.Join(tt.sources, ",") {
			t.Errorf("%s: %d processes on %v, want %d on %v", tt.name, len(specs), srcs, tt.procs, tt.sources)
		}
	}
}

func TestErrorKind(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&apierr.Error{Code: apierr.Unavailable, Err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED)}, KindRefused},
		{&apierr.Error{Code: apierr.Unavailable, Err: fmt.Errorf("read: %w", syscall.ECONNRESET)}, KindReset},
		{&apierr.Error{Code: apierr.Unavailable, Err: fmt.Errorf("read: %w", io.EOF)}, KindClosed},
		{fmt.Errorf("dial: %w", syscall.EADDRNOTAVAIL), KindNoLocalPort},
		{fmt.Errorf("accept: %w", syscall.EMFILE), KindTooManyFiles},
		{&apierr.Error{Code: apierr.Timeout, Err: context.DeadlineExceeded}, KindTimeout},
		{apierr.New(apierr.RateLimited, "slow down"), "rate_limited"},
		{&apierr.Error{Code: "brand_new_code"}, "brand_new_code"},
		{&gameclient.ReconnectError{}, KindReconnect},
		{fmt.Errorf("x: %w", gameclient.ErrClosed), KindClientClosed},
		{errors.New("mystery"), KindUnclassified},
	} {
		if got := errorKind(tt.err); got != tt.want {
			t.Errorf("errorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
