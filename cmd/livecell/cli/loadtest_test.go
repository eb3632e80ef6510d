package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mpworld "github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/loadtest"
	"github.com/livecell/livecell/loadtest/report"
)

func writeScenario(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKeyFile writes a fresh signing key from `livecell keys generate`.
func writeKeyFile(t *testing.T) string {
	t.Helper()
	pem, errOut, code := runCLI(t, "keys", "generate")
	if code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut)
	}
	key := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(key, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

func loadtestReport(t *testing.T, args ...string) *report.Report {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"loadtest", "--json", "--tick", "250ms", "--log-level", "warn"}, args...)...)
	if code != 0 {
		t.Fatalf("loadtest %v: exit %d\nstderr: %s", args, code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("loadtest --json printed %q: %v", stdout, err)
	}
	return &r
}

func reportOp(t *testing.T, r *report.Report, name string) report.Op {
	t.Helper()
	o, ok := r.Op(name)
	if !ok {
		t.Fatalf("report lacks operation %q: %+v", name, r.Ops)
	}
	return o
}

// TestLoadtestAgainstDevWorld runs the game flow (resolve, register,
// connect, requests through the gateway to accounts, session churn with
// resume) against the in-process dev world, then minted tokens straight
// to a gateway.
func TestLoadtestAgainstDevWorld(t *testing.T) {
	key := writeKeyFile(t)
	t.Setenv("LIVECELL_SIGNING_KEY_FILE", key)
	w := startTestWorld(t, "")

	game := writeScenario(t, `name: game
players: 6
cells: [eu-west, us-east]
session: {length: 700ms, offline: 100ms}
requests:
  rate: 10/s
  mix:
    - {op: ping, weight: 1}
    - {op: echo, weight: 1, payload: {chat: hi}}
    - {op: accounts.me, weight: 1}
phases:
  - {name: ramp-up, duration: 300ms, players: 100%}
  - {name: steady, duration: 2s}
`)
	html := filepath.Join(t.TempDir(), "report.html")
	r := loadtestReport(t, game, "--router", w.routerURL(), "--html", html)
	if reg := reportOp(t, r, "register"); reg.OK != 6 || reg.Failed != 0 {
		t.Errorf("register: %+v, want 6 players registered", reg)
	}
	if res := reportOp(t, r, "resolve"); res.OK < 6 || res.Failed != 0 {
		t.Errorf("resolve: %+v, want one per player at least", res)
	}
	if c := reportOp(t, r, "connect"); c.OK != 6 || c.Failed != 0 {
		t.Errorf("connect: %+v, want 6", c)
	}
	if rc := reportOp(t, r, "reconnect"); rc.OK == 0 || rc.Failed != 0 {
		t.Errorf("reconnect: %+v, want sessions resumed after they end", rc)
	}
	for _, name := range []string{"ping", "echo", "accounts.me"} {
		if o := reportOp(t, r, name); o.OK == 0 || o.Failed != 0 {
			t.Errorf("%s: %+v, want answers and no error", name, o)
		}
	}
	if r.Summary.Errors != 0 || r.Summary.Sessions != 6 || r.Summary.RTTPerSec < 20 {
		t.Errorf("summary %+v: want 6 sessions, no errors, about 60 req/s", r.Summary)
	}
	if len(r.Usage) < 2 || r.Usage[0].Name != "router" {
		t.Errorf("usage %+v: want the world's process (through the router's /metrics) and the load tester", r.Usage)
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("<svg")) {
		t.Errorf("html report: %v", err)
	}

	// Minted tokens, straight to one cell's gateway: the cell verifies them
	// with the key the world signs with.
	var eu string
	for _, c := range w.cfg.Cells {
		if c.ID == "eu-west" {
			eu = c.Gateway
		}
	}
	raw := writeScenario(t, `name: raw
players: 20
login: token
cells: [eu-west]
requests: {total_rate: 400/s, mix: [{op: echo, size: 64}]}
phases:
  - {name: steady, duration: 1500ms}
`)
	r = loadtestReport(t, raw, "--gateway", "eu-west="+eu, "--signing-key", key)
	if c := reportOp(t, r, "connect"); c.OK != 20 || c.Failed != 0 {
		t.Errorf("token connect: %+v, want 20", c)
	}
	if _, ok := r.Op("register"); ok {
		t.Errorf("token login registered players: %+v", r.Ops)
	}
	if e := reportOp(t, r, "echo"); e.OK < 300 || e.Failed != 0 {
		t.Errorf("echo: %+v, want about 600 answered", e)
	}
}

func TestLoadtestReportsARefusingTarget(t *testing.T) {
	key := writeKeyFile(t)
	sc := writeScenario(t, "name: refused\nplayers: 3\nlogin: token\nphases: [{duration: 600ms}]\n")
	args := []string{sc, "--gateway", "a=127.0.0.1:1", "--signing-key", key}
	r := loadtestReport(t, args...)
	if c := reportOp(t, r, "connect"); c.OK != 0 || c.Errors[loadtest.KindRefused] == 0 {
		t.Errorf("connect: %+v, want only connection_refused", c)
	}
	_, _, code := runCLI(t, append([]string{"loadtest", "--log-level", "warn", "--fail-on-errors"}, args...)...)
	if code != 3 {
		t.Errorf("--fail-on-errors: exit %d, want 3", code)
	}
}

func TestLoadtestValidate(t *testing.T) {
	bad := writeScenario(t, "name: x\nplayers: lots\nphases: [{duration: 1s}]\n")
	out, errOut, code := runCLI(t, "loadtest", "validate", "../../../loadtest/scenarios/dev.yaml", bad)
	if code != 1 || !strings.Contains(out, "dev.yaml: ok, dev-mix: 200 players") || !strings.Contains(errOut, bad+`:2: players: want a whole number, got "lots"`) {
		t.Errorf("validate: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// Running a bad file fails the same way, before anything starts.
	_, errOut, code = runCLI(t, "loadtest", bad, "--router", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, bad+":2:") {
		t.Errorf("loadtest with a bad file: exit %d, stderr %s", code, errOut)
	}
}

// TestLoadtestAgainstMultiProcessWorld runs a sharded test (two worker
// processes of this binary) against `world up`: players resolve through
// the world's router, register in their home cell's own store, and every
// process of the world is sampled.
func TestLoadtestAgainstMultiProcessWorld(t *testing.T) {
	st := startMultiWorld(t)
	sc := writeScenario(t, `name: world
players: 8
cells: [eu-west, us-east]
requests: {rate: 5/s, mix: [{op: ping}, {op: accounts.me}]}
phases:
  - {name: ramp-up, duration: 500ms, players: 100%}
  - {name: steady, duration: 2s}
`)
	start := time.Now()
	r := loadtestReport(t, sc, "--world", st.Dir, "--processes", "2")
	if len(r.Processes) != 2 || r.Processes[0].Error != "" || r.Processes[1].Error != "" {
		t.Fatalf("processes: %+v, want 2 without error", r.Processes)
	}
	if reg := reportOp(t, r, "register"); reg.OK != 8 || reg.Failed != 0 {
		t.Errorf("register: %+v", reg)
	}
	if o := reportOp(t, r, "accounts.me"); o.OK == 0 || o.Failed != 0 {
		t.Errorf("accounts.me: %+v, want answers from the players' home cells", o)
	}
	names := map[string]bool{}
	for _, u := range r.Usage {
		names[u.Name] = len(u.Samples) > 0
	}
	for _, p := range st.Processes {
		if !names[p.Name] {
			t.Errorf("usage %v lacks samples of %s", names, p.Name)
		}
	}
	if time.Since(start) > time.Minute {
		t.Errorf("a 2.5 s scenario took %s", time.Since(start))
	}

	// Through the world's edge, over QUIC and WebSocket: the edge relays
	// each player to its home cell's gateway.
	if len(st.ByRole(mpworld.RoleEdge)) == 0 {
		t.Fatal("the world runs no edge")
	}
	for _, tr := range []string{"quic", "ws"} {
		sc := writeScenario(t, `name: edge
players: 4
cells: [eu-west, us-east]
connect: {via: edge, transport: `+tr+`}
requests: {rate: 5/s, mix: [{op: accounts.me}]}
phases:
  - {name: steady, duration: 1500ms}
`)
		r := loadtestReport(t, sc, "--world", st.Dir)
		if c := reportOp(t, r, "connect"); c.OK != 4 || c.Failed != 0 {
			t.Errorf("connect through the edge over %s: %+v", tr, c)
		}
		if o := reportOp(t, r, "accounts.me"); o.OK == 0 || o.Failed != 0 {
			t.Errorf("accounts.me through the edge over %s: %+v", tr, o)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	l := &progressLine{w: &b}
	l.show(loadtest.Progress{Elapsed: 2 * time.Second, Total: 10 * time.Second, Phase: "steady", Sessions: 5, Wanted: 6, ReqPerSec: 100, P50MS: 0.5, P99MS: 2, PushPerS: 3})
	l.show(loadtest.Progress{Elapsed: 3 * time.Second, Total: 10 * time.Second, Phase: "up"})
	l.clear()
	out := b.String()
	if !strings.HasPrefix(out, "\r   2.0/10s steady     sessions 5/6  req/s 100  p50 0.50 ms  p99 2.00 ms  errors 0  push/s 3") {
		t.Errorf("progress line %q", out)
	}
	if !strings.HasSuffix(out, "\r") || strings.Count(out, "\r") != 4 {
		t.Errorf("progress line does not redraw in place and clear: %q", out)
	}
	var nilLine *progressLine
	nilLine.clear() // no terminal: nothing to clear
}

func TestParseEdgeAndSplitName(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want loadtest.Edge
		ok   bool
	}{
		{"127.0.0.1:4190", loadtest.Edge{Addr: "127.0.0.1:4190"}, true},
		{"eu-west=quic://127.0.0.1:4190", loadtest.Edge{Cell: "eu-west", Transport: "quic", Addr: "127.0.0.1:4190"}, true},
		{"ws://h:1", loadtest.Edge{Transport: "ws", Addr: "h:1"}, true},
		{"eu-west=", loadtest.Edge{}, false},
		{"nohostport", loadtest.Edge{}, false},
	} {
		got, err := parseEdge(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseEdge(%q) = %+v, %v", tt.in, got, err)
		}
	}
	if n, v := splitName("gw=http://h:1/metrics", "metrics"); n != "gw" || v != "http://h:1/metrics" {
		t.Errorf("splitName named: %q %q", n, v)
	}
	if n, v := splitName("http://h:1/metrics?a=b", "metrics"); n != "metrics" || v != "http://h:1/metrics?a=b" {
		t.Errorf("splitName unnamed: %q %q", n, v)
	}
}
