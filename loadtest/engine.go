package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/loadtest/scenario"
	"github.com/livecell/livecell/loadtest/stats"
)

// Session steps reported next to the request mix; scenario names reserve
// them.
const (
	opResolve   = "resolve"
	opRegister  = "register"
	opLogin     = "login"
	opRefresh   = "refresh"
	opConnect   = "connect"
	opReconnect = "reconnect"
	// opAll is the request mix taken together.
	opAll = "all"
)

var sessionOps = []string{opResolve, opRegister, opLogin, opRefresh, opConnect, opReconnect}

// shardSpec is one process's share of a run. The parent sends it, as one
// JSON line, to a worker process on its standard input; an in-process run
// uses it directly.
type shardSpec struct {
	Scenario     []byte             `json:"scenario"` // the YAML, parsed again by the worker
	ScenarioPath string             `json:"scenario_path,omitempty"`
	Overrides    scenario.Overrides `json:"overrides"`
	Target       Target             `json:"target"`
	Shard        int                `json:"shard"`
	Shards       int                `json:"shards"`
	Source       string             `json:"source,omitempty"` // local address to bind, e.g. 127.0.0.3
	Tick         time.Duration      `json:"tick"`
	RunID        string             `json:"run_id"`
	// Password is every development account's password in this run:
	// random per run, sent through the worker's stdin pipe, never argv.
	Password string `json:"password"`
	Seed     int64  `json:"seed"`
}

// engine runs one process's share of the players and records what they
// see.
type engine struct {
	spec      shardSpec
	sc        *scenario.Scenario
	target    Target
	start     time.Time
	tick      time.Duration
	rec       *stats.Recorder
	ops       opIndex
	transport Transport
	local     netip.Addr
	signer    *token.Signer // token login
	http      *http.Client
	cells     []string // cells players are homed to, round-robin
	password  string
	seed      int64
}

type opIndex struct {
	resolve, register, login, refresh, connect, reconnect int
	mix                                                   map[string]int
}

// newEngine prepares a shard: everything that can fail does so here,
// before the run starts.
func newEngine(spec shardSpec, extra map[string]Transport) (*engine, error) {
	sc, err := scenario.ParseWith(spec.Scenario, spec.Overrides)
	if err != nil {
		if e, ok := errors.AsType[*scenario.Error](err); ok {
			e.File = spec.ScenarioPath
		}
		return nil, err
	}
	if err := checkTarget(sc, spec.Target, extra); err != nil {
		return nil, err
	}
	e := &engine{
		spec: spec, sc: sc, target: spec.Target, tick: spec.Tick,
		password: spec.Password, seed: spec.Seed,
	}
	if e.tick <= 0 {
		e.tick = DefaultTick
	}
	if spec.Source != "" {
		if e.local, err = netip.ParseAddr(spec.Source); err != nil {
			return nil, fmt.Errorf("loadtest: source address %q: %w", spec.Source, err)
		}
	}
	all, err := transports(extra, spec.Target)
	if err != nil {
		return nil, err
	}
	if e.transport, err = transportFor(all, sc.Connect.Transport); err != nil {
		return nil, err
	}
	e.cells = sc.Cells
	if len(e.cells) == 0 && sc.Login == scenario.LoginToken {
		e.cells = spec.Target.cells()
	}
	if sc.Login == scenario.LoginToken {
		ks, err := token.LoadKeySet(spec.Target.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loadtest: token login: %w", err)
		}
		if e.signer, err = token.NewSigner(ks, nil); err != nil {
			return nil, fmt.Errorf("loadtest: token login: %w", err)
		}
	}
	names := append([]string(nil), sessionOps...)
	e.ops.mix = map[string]int{}
	for _, op := range sc.Requests.Mix {
		e.ops.mix[op.Name] = len(names)
		names = append(names, op.Name)
	}
	e.rec = stats.NewRecorder(names, len(sc.Phases))
	e.ops.resolve, e.ops.register, e.ops.login = e.rec.Op(opResolve), e.rec.Op(opRegister), e.rec.Op(opLogin)
	e.ops.refresh, e.ops.connect, e.ops.reconnect = e.rec.Op(opRefresh), e.rec.Op(opConnect), e.rec.Op(opReconnect)

	// Sign-ins and resolves go over HTTP from the same source address as
	// the sessions, so a sharded run spreads those ports too.
	dialer := &net.Dialer{Timeout: sc.Connect.Timeout}
	if e.local.IsValid() {
		dialer.LocalAddr = &net.TCPAddr{IP: e.local.AsSlice()}
	}
	e.http = &http.Client{Transport: &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
	return e, nil
}

// checkTarget reports what the scenario needs that the target lacks.
func checkTarget(sc *scenario.Scenario, t Target, extra map[string]Transport) error {
	var probs []string
	if all, err := transports(extra, t); err != nil {
		probs = append(probs, err.Error())
	} else if _, err := transportFor(all, sc.Connect.Transport); err != nil {
		probs = append(probs, err.Error())
	}
	if sc.Connect.Transport == "quic" && t.EdgeCertFile == "" && extra["quic"] == nil {
		probs = append(probs, "connect.transport: quic needs the edge's certificate to trust (--edge-cert, --world)")
	}
	switch sc.Login {
	case scenario.LoginPassword:
		if len(t.Routers) == 0 {
			probs = append(probs, "login: password resolves players at a router: give one (--router, --world)")
		}
	case scenario.LoginToken:
		if t.SigningKeyFile == "" {
			probs = append(probs, "login: token mints tokens with the cells' signing key: give its file (--signing-key, --world)")
		}
		cells := sc.Cells
		if len(cells) == 0 {
			cells = t.cells()
		}
		if len(cells) == 0 {
			probs = append(probs, "login: token needs the cells' gateways (--gateway cell=host:port, --world)")
		}
		if sc.Connect.Via == scenario.ViaGateway {
			for _, c := range cells {
				if len(t.Gateways[c]) == 0 {
					probs = append(probs, fmt.Sprintf("login: token connects straight to the gateway of cell %s, but none is known (--gateway %s=host:port)", c, c))
				}
			}
		}
	}
	if sc.Connect.Via == scenario.ViaEdge && len(t.edgesFor(sc.Connect.Transport)) == 0 {
		probs = append(probs, fmt.Sprintf("connect.via: edge needs an edge address for transport %s (--edge)", sc.Connect.Transport))
	}
	if len(probs) > 0 {
		return fmt.Errorf("loadtest: the target cannot run scenario %s:\n  %s", sc.Name, strings.Join(probs, "\n  "))
	}
	return nil
}

// username names player n of this run: unique across runs, within the
// accounts service's limits.
func (e *engine) username(n int) string { return fmt.Sprintf("lt-%s-%d", e.spec.RunID, n) }

// players returns the indexes this shard plays: every shards-th one, so
// each ramp spreads evenly over the processes.
func (e *engine) players() []int {
	shards := max(e.spec.Shards, 1)
	var out []int
	for n := e.spec.Shard; n < e.sc.Players; n += shards {
		out = append(out, n)
	}
	return out
}

// edgeFor picks the edge player p dials: one near its home cell when the
// target says which edges are near which cells.
func (e *engine) edgeFor(p *player) string {
	all := e.target.edgesFor(e.sc.Connect.Transport)
	var near []string
	for _, ed := range all {
		if ed.Cell != "" && (ed.Cell == p.home || ed.Cell == p.cell) {
			near = append(near, ed.Addr)
		}
	}
	if len(near) == 0 {
		for _, ed := range all {
			near = append(near, ed.Addr)
		}
	}
	return near[p.n%len(near)]
}

// result records the outcome of operation op, meant to start at intended
// and started at start. Failures caused by the run itself ending (ctx) are
// not the target's: they are not counted.
func (e *engine) result(ctx context.Context, op int, intended, start time.Time, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	phase := e.sc.PhaseAt(intended.Sub(e.start))
	if err != nil {
		e.rec.Failure(op, phase, errorKind(err), err.Error())
		return
	}
	now := time.Now()
	e.rec.Success(op, phase, now.Sub(intended), now.Sub(start))
}

// run plays the shard from start to the end of the schedule (or until ctx
// ends), handing emit one Interval per tick and a last one when every
// player has left.
func (e *engine) run(ctx context.Context, start time.Time, emit func(stats.Interval) error) error {
	e.start = start
	runCtx, cancel := context.WithDeadline(ctx, start.Add(e.sc.Duration()))
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range e.players() {
		p := newPlayer(e, n)
		wg.Go(func() { p.run(runCtx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	defer e.http.CloseIdleConnections()

	t := time.NewTimer(time.Until(start.Add(e.tick)))
	defer t.Stop()
	for idx := 0; ; idx++ {
		select {
		case <-done:
			iv, err := e.rec.Flush(e.spec.Shard, idx)
			if err != nil {
				return err
			}
			return emit(iv)
		case <-t.C:
		}
		iv, err := e.rec.Flush(e.spec.Shard, idx)
		if err == nil {
			err = emit(iv)
		}
		if err != nil {
			cancel()
			<-done
			return err
		}
		t.Reset(time.Until(start.Add(time.Duration(idx+2) * e.tick)))
	}
}

// cells returns the cells the target knows gateways for, sorted.
func (t Target) cells() []string {
	out := make([]string, 0, len(t.Gateways))
	for c := range t.Gateways {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// edgesFor returns the edges serving transport.
func (t Target) edgesFor(transport string) []Edge {
	var out []Edge
	for _, e := range t.Edges {
		tr := e.Transport
		if tr == "" {
			tr = "tcp"
		}
		if tr == transport {
			out = append(out, e)
		}
	}
	return out
}
