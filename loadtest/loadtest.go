// Package loadtest is livecell's game-client load tester: simulated players
// that keep state like a game client (account, tokens, home cell, resume
// token) and follow a declarative scenario (loadtest/scenario): resolve
// their home cell at a router, sign in, connect to a gateway or an edge,
// heartbeat, send a weighted mix of requests at an open-loop rate or with
// think times, read pushes, end sessions and resume them, and follow the
// server when it moves them.
//
// Run drives a whole run. When the scenario asks for more sessions than one
// process should hold (this machine allows 20,000 descriptors per process,
// and one source address about 28,000 ports toward a destination), Run
// shards itself: it starts worker processes (Config.WorkerCommand, normally
// this binary's hidden `loadtest worker`), gives each a share of the
// players and its own source address 127.0.0.x, and merges the HDR
// histograms and counters they stream back as JSON lines. Meanwhile it
// samples the target's CPU and memory. The Report it returns has per
// operation counts, errors by code, throughput and latency percentiles,
// per phase and over time.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"time"

	"github.com/livecell/livecell/loadtest/report"
	"github.com/livecell/livecell/loadtest/scenario"
	"github.com/livecell/livecell/loadtest/usage"
)

// Defaults of zero Config fields.
const (
	DefaultTick = time.Second
	// DefaultMaxSessionsPerProcess leaves room under the 20,000
	// descriptors a process may hold for HTTP connections and the rest.
	DefaultMaxSessionsPerProcess = 15_000
	// DefaultMaxSessionsPerSource stays under the ≈28,000 ephemeral ports
	// one source address has toward a destination.
	DefaultMaxSessionsPerSource = 25_000
)

// Target is what the simulated players reach.
type Target struct {
	// Routers are base URLs of global routers ("http://127.0.0.1:4100"):
	// password login resolves home cells there.
	Routers []string `json:"routers,omitempty"`
	// Gateways maps a cell to its gateway addresses (host:port): token
	// login connects there directly.
	Gateways map[string][]string `json:"gateways,omitempty"`
	// Edges are edge relays: players dial them with connect.via: edge.
	Edges []Edge `json:"edges,omitempty"`
	// SigningKeyFile is the PEM signing key of the cells (see `livecell
	// keys`): token login mints access tokens with it.
	SigningKeyFile string `json:"signing_key_file,omitempty"`
	// EdgeCertFile holds the certificate(s) the edges serve QUIC (and
	// wss) with, for players to trust.
	EdgeCertFile string `json:"edge_cert_file,omitempty"`
}

// Edge is one edge relay endpoint.
type Edge struct {
	Cell      string `json:"cell,omitempty"`      // the cell it is near; "" for any
	Transport string `json:"transport,omitempty"` // "tcp" (default), "quic", "ws"
	Addr      string `json:"addr"`
}

// Config is one run.
type Config struct {
	// Scenario is the scenario file's YAML; ScenarioPath names it in
	// messages and the report.
	Scenario     []byte
	ScenarioPath string
	Overrides    scenario.Overrides
	Target       Target
	// Usage are processes whose CPU and memory to sample into the report
	// (the target's cells or gateways). The load tester's own processes
	// are always sampled.
	Usage []usage.Target

	// Processes forces the number of load processes; 0 uses as many as
	// MaxSessionsPerProcess requires. More than one needs WorkerCommand.
	Processes             int
	MaxSessionsPerProcess int
	MaxSessionsPerSource  int
	// SourceAddrs are the local addresses sessions are spread over, one
	// per process in turn. Empty: when the run is sharded and every target
	// address is on loopback, 127.0.0.1, 127.0.0.2, … one per process;
	// otherwise the system's choice.
	SourceAddrs []netip.Addr
	// WorkerCommand returns the command that runs one worker process,
	// which must call ServeWorker with its standard input and output
	// (see SelfWorker).
	WorkerCommand func(ctx context.Context) *exec.Cmd
	// Transports add or replace transports by name ("tcp" is built in).
	// Workers have their own: give the same to ServeWorker.
	Transports map[string]Transport

	Tick time.Duration // time-series resolution; DefaultTick when zero
	// Progress, when set, is called after every tick with the figures of
	// that tick.
	Progress func(Progress)
	Logger   *slog.Logger
}

// Progress is one tick of a running test.
type Progress struct {
	Elapsed   time.Duration
	Total     time.Duration // the scenario's length
	Phase     string
	Sessions  int64   // open now
	Wanted    int     // players the schedule wants now
	ReqPerSec float64 // requests answered during the tick
	P50MS     float64 // of those requests
	P99MS     float64
	Errors    int64 // failed operations of every kind during the tick
	PushPerS  float64
}

// Run runs the scenario against the target and reports what the players
// saw. It fails only when the run cannot start (a bad scenario, a target
// that lacks what the scenario needs, workers that cannot be started);
// whatever the target does once it runs — refusing connections, dropping
// them, answering with errors — is counted in the Report.
func Run(ctx context.Context, cfg Config) (*report.Report, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := scenario.ParseWith(cfg.Scenario, cfg.Overrides)
	if err != nil {
		if e, ok := errors.AsType[*scenario.Error](err); ok {
			e.File = cfg.ScenarioPath
		}
		return nil, err
	}
	if err := checkTarget(sc, cfg.Target, cfg.Transports); err != nil {
		return nil, err
	}
	specs, err := plan(sc, cfg)
	if err != nil {
		return nil, err
	}
	log.Info("loadtest: starting", "scenario", sc.Summary(), "processes", len(specs))

	var shards []shardRunner
	if len(specs) == 1 {
		eng, err := newEngine(specs[0], cfg.Transports)
		if err != nil {
			return nil, err
		}
		shards = []shardRunner{&localShard{eng: eng}}
	} else {
		if cfg.WorkerCommand == nil {
			return nil, fmt.Errorf("loadtest: %d players need %d processes, and Config.WorkerCommand is not set", sc.Players, len(specs))
		}
		for _, sp := range specs {
			shards = append(shards, &workerShard{spec: sp, command: cfg.WorkerCommand, log: log})
		}
	}
	return coordinate(ctx, sc, cfg, specs, shards, log)
}

// plan splits the players over processes and source addresses.
func plan(sc *scenario.Scenario, cfg Config) ([]shardSpec, error) {
	perProc := cfg.MaxSessionsPerProcess
	if perProc <= 0 {
		perProc = DefaultMaxSessionsPerProcess
	}
	perSource := cfg.MaxSessionsPerSource
	if perSource <= 0 {
		perSource = DefaultMaxSessionsPerSource
	}
	peak := 0
	for _, ph := range sc.Phases {
		peak = max(peak, ph.From, ph.To)
	}
	procs := cfg.Processes
	if procs <= 0 {
		procs = max(1, (peak+perProc-1)/perProc)
	}
	if procs > sc.Players {
		procs = sc.Players
	}
	if per := (peak + procs - 1) / procs; per > perProc {
		return nil, fmt.Errorf("loadtest: %d processes would hold %d sessions each, more than the %d a process may (raise Processes or MaxSessionsPerProcess)", procs, per, perProc)
	}
	sources := cfg.SourceAddrs
	if len(sources) == 0 && procs > 1 && cfg.Target.loopback() {
		for i := range procs {
			sources = append(sources, netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%254)}))
		}
	}
	if len(sources) > 0 {
		per := map[netip.Addr]int{}
		for i := range procs {
			per[sources[i%len(sources)]] += (peak + procs - 1 - i) / procs
		}
		for a, n := range per {
			if n > perSource {
				return nil, fmt.Errorf("loadtest: source address %s would hold %d sessions, more than the %d one address has ports for: give more source addresses", a, n, perSource)
			}
		}
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	tick := cfg.Tick
	if tick <= 0 {
		tick = DefaultTick
	}
	specs := make([]shardSpec, procs)
	for i := range specs {
		specs[i] = shardSpec{
			Scenario: cfg.Scenario, ScenarioPath: cfg.ScenarioPath, Overrides: cfg.Overrides, Target: cfg.Target,
			Shard: i, Shards: procs, Tick: tick, RunID: hex.EncodeToString(rnd[:3]),
			Password: hex.EncodeToString(pw[:]), Seed: int64(rnd[3])<<32 | int64(rnd[4])<<16 | int64(rnd[5]),
		}
		if len(sources) > 0 {
			specs[i].Source = sources[i%len(sources)].String()
		}
	}
	return specs, nil
}

// loopback reports whether every address the target names is on loopback
// (so 127.0.0.x source addresses reach it).
func (t Target) loopback() bool {
	var addrs []string
	for _, gws := range t.Gateways {
		addrs = append(addrs, gws...)
	}
	for _, e := range t.Edges {
		addrs = append(addrs, e.Addr)
	}
	for _, r := range t.Routers {
		addrs = append(addrs, hostPort(r))
	}
	if len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return false
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			if host != "localhost" {
				return false
			}
			continue
		}
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// hostPort returns the host:port of a base URL.
func hostPort(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

// summaryPhase names the phase the report's headline figures come from.
const summaryPhase = "steady"

// opsFor lists the operations a report shows, in order: session steps,
// then the request mix.
func opsFor(sc *scenario.Scenario) (session []string, mix []string) {
	for _, op := range sc.Requests.Mix {
		mix = append(mix, op.Name)
	}
	return sessionOps, mix
}
