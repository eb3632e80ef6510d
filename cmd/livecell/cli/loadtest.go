package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	mpworld "github.com/livecell/livecell/chaos/world" // "world" is the dev world type here
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/loadtest"
	"github.com/livecell/livecell/loadtest/report"
	"github.com/livecell/livecell/loadtest/scenario"
	"github.com/livecell/livecell/loadtest/usage"
)

// loadtestFlags configure `livecell loadtest`.
type loadtestFlags struct {
	world        string
	routers      []string
	gateways     []string
	edges        []string
	signingKey   string
	edgeCert     string
	players      int
	processes    int
	perProcess   int
	sources      []string
	sampleURLs   []string
	samplePIDs   []string
	asJSON       bool
	html         string
	tick         time.Duration
	failOnErrors bool
}

func newLoadtestCmd(g *globals) *cobra.Command {
	f := &loadtestFlags{}
	cmd := &cobra.Command{
		Use:   "loadtest <scenario.yaml>",
		Short: "Run a game-client load test: simulated players following a YAML scenario",
		Long: `Loadtest runs simulated players against a world as the scenario file says
(format: docs/loadtest.md; examples in loadtest/scenarios/): they resolve
their home cell, sign in, connect to a gateway or an edge, heartbeat, send a
weighted mix of requests at an open-loop rate or with think times, read
pushes, end sessions and resume them, over ramp-up, steady and ramp-down
phases. It prints per-operation counts, errors by code, throughput and
latency percentiles (p50 … p99.9, max; open-loop latency counts from each
request's scheduled time), plus the target's CPU and memory.

Where the world is:
  (default)       the router, gateways and edges of cells.yaml (--config):
                  what "livecell dev" serves
  --world DIR     the multi-process world of "livecell world up": its routers,
                  gateways, edges, signing key and edge certificate, and every
                  process sampled from /proc
  --router, --gateway, --edge, --signing-key, --edge-cert   one by one

More players than one process should hold (--max-sessions-per-process,
15,000: a process may open 20,000 files here) shard the run over worker
processes of this binary, each on its own source address 127.0.0.x when the
target is on loopback; their results are merged exactly (HDR histograms).

A live progress line is shown when standard output is a terminal. --json
prints the report as JSON; --html writes a self-contained page with charts.
The run fails (exit 1) only when it cannot start; a target that refuses or
drops connections is reported as errors (exit 0, or 3 with --fail-on-errors).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runLoadtest(cmd.Context(), g, f, args[0]) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.world, "world", "", "run against the multi-process world in this directory (see livecell world up), e.g. .world")
	fl.StringSliceVar(&f.routers, "router", nil, "router base URL (repeatable; default: router.listen of cells.yaml)")
	fl.StringSliceVar(&f.gateways, "gateway", nil, "cell=host:port of a gateway, for login: token (repeatable; default: the gateways of cells.yaml)")
	fl.StringSliceVar(&f.edges, "edge", nil, "[cell=][tcp|quic|ws://]host:port of an edge, for connect.via: edge (repeatable; default: the edges of cells.yaml)")
	fl.StringVar(&f.signingKey, "signing-key", env("LIVECELL_SIGNING_KEY_FILE", ""), "PEM signing key of the cells, for login: token (env LIVECELL_SIGNING_KEY_FILE)")
	fl.StringVar(&f.edgeCert, "edge-cert", "", "PEM certificate the edges serve QUIC (and wss) with, for players to trust")
	fl.IntVar(&f.players, "players", 0, "replace the scenario's number of players (phases in percent scale with it)")
	fl.IntVar(&f.processes, "processes", 0, "load-generating processes (0: as many as --max-sessions-per-process needs)")
	fl.IntVar(&f.perProcess, "max-sessions-per-process", loadtest.DefaultMaxSessionsPerProcess, "most sessions one process holds")
	fl.StringSliceVar(&f.sources, "source", nil, "local address to open sessions from (repeatable; default 127.0.0.1, .2, … per process for a loopback target)")
	fl.StringSliceVar(&f.sampleURLs, "sample-metrics", nil, "[name=]URL of a Prometheus /metrics to sample CPU and RSS from (repeatable)")
	fl.StringSliceVar(&f.samplePIDs, "sample-pid", nil, "[name=]PID of a local process to sample CPU and RSS from (repeatable)")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.StringVar(&f.html, "html", "", "also write the report as a self-contained HTML page to this file")
	fl.DurationVar(&f.tick, "tick", loadtest.DefaultTick, "resolution of the time series and the progress line")
	fl.BoolVar(&f.failOnErrors, "fail-on-errors", false, "exit 3 when any operation failed")
	cmd.AddCommand(newLoadtestWorkerCmd(g), newLoadtestValidateCmd(g))
	return cmd
}

func runLoadtest(ctx context.Context, g *globals, f *loadtestFlags, path string) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	cfg := loadtest.Config{
		Scenario: data, ScenarioPath: path, Overrides: scenario.Overrides{Players: f.players},
		Processes: f.processes, MaxSessionsPerProcess: f.perProcess, Tick: f.tick, Logger: log,
	}
	if err := f.target(g, &cfg); err != nil {
		return err
	}
	for _, s := range f.sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--source %q: %w", s, err)
		}
		cfg.SourceAddrs = append(cfg.SourceAddrs, a)
	}
	if cfg.WorkerCommand, err = loadtest.SelfWorker(workerArgs(g)...); err != nil {
		return err
	}
	var line *progressLine
	if out, ok := g.stdout.(*os.File); ok && !f.asJSON && isatty.IsTerminal(out.Fd()) {
		line = &progressLine{w: out}
		cfg.Progress = line.show
	}
	r, err := loadtest.Run(ctx, cfg)
	line.clear()
	if err != nil {
		return err
	}
	if f.html != "" {
		if err := writeHTMLReport(f.html, r); err != nil {
			return err
		}
	}
	if f.asJSON {
		err = report.WriteJSON(g.stdout, r)
	} else {
		err = report.WriteText(g.stdout, r)
		if err == nil && f.html != "" {
			fmt.Fprintf(g.stdout, "html report: %s\n", f.html)
		}
	}
	if err != nil {
		return err
	}
	if f.failOnErrors && r.Summary.Errors > 0 {
		return exitError{code: 3}
	}
	return nil
}

// workerArgs are the arguments a worker process runs with: the hidden
// worker subcommand and the logging flags of this process.
func workerArgs(g *globals) []string {
	return []string{"loadtest", "worker", "--log-format", g.logFormat, "--log-level", g.logLevel}
}

func writeHTMLReport(path string, r *report.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".loadtest-*.html")
	if err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	// CreateTemp makes the file private; a report is for sharing.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--html: %w", err)
	}
	if err := report.WriteHTML(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("--html: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// target fills cfg's Target and Usage from --world, the flags, and
// cells.yaml for what neither gives.
func (f *loadtestFlags) target(g *globals, cfg *loadtest.Config) error {
	t := &cfg.Target
	t.SigningKeyFile, t.EdgeCertFile = f.signingKey, f.edgeCert
	if f.world != "" {
		st, err := mpworld.Load(f.world)
		if err != nil {
			return err
		}
		worldTarget(st, cfg)
	}
	for _, r := range f.routers {
		t.Routers = append(t.Routers, strings.TrimRight(r, "/"))
	}
	for _, gw := range f.gateways {
		cell, addr, ok := strings.Cut(gw, "=")
		if !ok || cell == "" || addr == "" {
			return fmt.Errorf("--gateway %q: want cell=host:port", gw)
		}
		if t.Gateways == nil {
			t.Gateways = map[string][]string{}
		}
		t.Gateways[cell] = append(t.Gateways[cell], addr)
	}
	for _, e := range f.edges {
		ed, err := parseEdge(e)
		if err != nil {
			return err
		}
		t.Edges = append(t.Edges, ed)
	}
	if f.world == "" && (len(t.Routers) == 0 || len(t.Gateways) == 0 || len(t.Edges) == 0) {
		cells, err := g.cells()
		if err != nil {
			return err
		}
		cellsTarget(cells, t)
		if len(f.sampleURLs) == 0 && len(f.samplePIDs) == 0 && len(t.Routers) > 0 {
			// In `livecell dev` the router shares the process with every
			// cell: its /metrics are the whole world's.
			cfg.Usage = append(cfg.Usage, usage.MetricsTarget("router", t.Routers[0]+"/metrics", nil))
		}
	}
	for _, s := range f.sampleURLs {
		name, url := splitName(s, "metrics")
		cfg.Usage = append(cfg.Usage, usage.MetricsTarget(name, url, nil))
	}
	for _, s := range f.samplePIDs {
		name, v := splitName(s, "")
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return fmt.Errorf("--sample-pid %q: want [name=]PID", s)
		}
		if name == "" {
			name = "pid " + v
		}
		cfg.Usage = append(cfg.Usage, usage.PIDTarget(name, func() []int { return []int{pid} }))
	}
	return nil
}

// splitName splits "name=value"; without a name, def (or the value).
func splitName(s, def string) (string, string) {
	if name, v, ok := strings.Cut(s, "="); ok && !strings.Contains(name, "/") && !strings.Contains(name, ":") {
		return name, v
	}
	if def == "" {
		return "", s
	}
	return def, s
}

// parseEdge reads [cell=][transport://]host:port.
func parseEdge(s string) (loadtest.Edge, error) {
	var e loadtest.Edge
	rest := s
	if cell, r, ok := strings.Cut(rest, "="); ok {
		e.Cell, rest = cell, r
	}
	if tr, r, ok := strings.Cut(rest, "://"); ok {
		e.Transport, rest = tr, r
	}
	e.Addr = rest
	if e.Addr == "" || !strings.Contains(e.Addr, ":") {
		return e, fmt.Errorf("--edge %q: want [cell=][tcp|quic|ws://]host:port", s)
	}
	return e, nil
}

// cellsTarget fills what t lacks from cells.yaml: its router, the gateway
// and the edges of every cell that is not disabled.
func cellsTarget(cells *config.Cells, t *loadtest.Target) {
	if len(t.Routers) == 0 && cells.Router.Listen != "" {
		t.Routers = []string{"http://" + cells.Router.Listen}
	}
	fillGateways := len(t.Gateways) == 0
	fillEdges := len(t.Edges) == 0
	if fillGateways {
		t.Gateways = map[string][]string{}
	}
	for _, c := range cells.Cells {
		if c.State == config.StateDisabled {
			continue
		}
		if fillGateways && c.Gateway != "" {
			t.Gateways[c.ID] = append(t.Gateways[c.ID], c.Gateway)
		}
		if !fillEdges {
			continue
		}
		for _, e := range c.Edges {
			for tr, addr := range map[string]string{"tcp": e.TCP, "quic": e.QUIC, "ws": e.WS} {
				if addr != "" {
					t.Edges = append(t.Edges, loadtest.Edge{Cell: c.ID, Transport: tr, Addr: addr})
				}
			}
		}
	}
	sort.Slice(t.Edges, func(i, j int) bool { return t.Edges[i].Addr < t.Edges[j].Addr })
}

// worldTarget takes everything from a multi-process world's state file:
// routers, gateways, edges, the signing key, and every running process to
// sample.
func worldTarget(st *mpworld.State, cfg *loadtest.Config) {
	t := &cfg.Target
	t.Routers = st.RouterURLs()
	t.Gateways = map[string][]string{}
	for _, p := range st.ByRole(mpworld.RoleCell) {
		if a := p.Addrs[mpworld.AddrGateway]; a != "" {
			t.Gateways[p.Cell] = append(t.Gateways[p.Cell], a)
		}
	}
	for _, p := range st.ByRole(mpworld.RoleEdge) {
		for _, tr := range []string{mpworld.AddrTCP, mpworld.AddrQUIC, mpworld.AddrWS} {
			if a := p.Addrs[tr]; a != "" {
				t.Edges = append(t.Edges, loadtest.Edge{Cell: p.Cell, Transport: tr, Addr: a})
			}
		}
	}
	if t.SigningKeyFile == "" {
		t.SigningKeyFile = st.SigningKeyFile
	}
	if t.EdgeCertFile == "" {
		t.EdgeCertFile = st.EdgeCertFile
	}
	for _, p := range st.Running() {
		pid := p.PID
		cfg.Usage = append(cfg.Usage, usage.PIDTarget(p.Name, func() []int { return []int{pid} }))
	}
}

func newLoadtestWorkerCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "worker",
		Short:  "One process of a sharded load test (started by livecell loadtest; speaks JSON lines on stdin/stdout)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			in := cmd.InOrStdin()
			return loadtest.ServeWorker(cmd.Context(), in, g.stdout, loadtest.WorkerOptions{Logger: log})
		},
	}
}

func newLoadtestValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate <scenario.yaml> ...",
		Short: "Check scenario files and list every problem with its line number",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := false
			for _, p := range args {
				sc, err := scenario.Load(p, scenario.Overrides{})
				if err != nil {
					failed = true
					fmt.Fprintln(g.stderr, err)
					continue
				}
				fmt.Fprintf(g.stdout, "%s: ok, %s\n", p, sc.Summary())
			}
			if failed {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

// progressLine redraws one terminal line per tick.
type progressLine struct {
	w     io.Writer
	width int
}

func (l *progressLine) show(p loadtest.Progress) {
	s := fmt.Sprintf("%6.1f/%.0fs %-10s sessions %d/%d  req/s %.0f  p50 %.2f ms  p99 %.2f ms  errors %d",
		p.Elapsed.Seconds(), p.Total.Seconds(), p.Phase, p.Sessions, p.Wanted, p.ReqPerSec, p.P50MS, p.P99MS, p.Errors)
	if p.PushPerS > 0 {
		s += fmt.Sprintf("  push/s %.0f", p.PushPerS)
	}
	pad := max(l.width-len(s), 0)
	l.width = len(s)
	fmt.Fprintf(l.w, "\r%s%s", s, strings.Repeat(" ", pad))
}

func (l *progressLine) clear() {
	if l == nil || l.width == 0 {
		return
	}
	fmt.Fprintf(l.w, "\r%s\r", strings.Repeat(" ", l.width))
}
