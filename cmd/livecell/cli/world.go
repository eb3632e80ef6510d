package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/livecell/livecell/cell/cellapi"
	mpworld "github.com/livecell/livecell/chaos/world" // "world" is the dev world type here
	"github.com/livecell/livecell/edge"
	"github.com/livecell/livecell/edge/transport"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// defaultWorldDir is where `livecell world` keeps its state, keys and logs.
const defaultWorldDir = ".world"

func newWorldCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "world",
		Short: "Run the multi-process local world: control plane, routers, cells and edges as separate processes",
		Long: `World runs the local world as separate OS processes on loopback, the way a
deployment runs: the control plane, the router(s), one process per cell of
cells.yaml and one per edge relay. Chaos drills ("livecell chaos") and
cross-cell load tests run against it, since only a separate process can be
killed like a machine.

  livecell world up       start it in the background and wait until it serves
  livecell world status   what runs where, and whether it still does
  livecell world down     stop it (SIGTERM, then SIGKILL after --timeout)

Everything lives in --dir (default .world): state.json (processes, PIDs,
addresses), the cells.yaml in use, the signing key every process shares, the
edges' self-signed certificate (edge-cert.pem, for QUIC clients to trust),
and one log file per process.`,
	}
	cmd.AddCommand(newWorldUpCmd(g), newWorldDownCmd(g), newWorldStatusCmd(g))
	return cmd
}

// worldUpFlags configure `livecell world up`.
type worldUpFlags struct {
	dir            string
	playersDB      string
	freePorts      bool
	routers        int
	controlListen  string
	probeInterval  time.Duration
	failThreshold  int
	drainGrace     time.Duration
	homeCacheTTL   time.Duration
	timeout        time.Duration
	loginRateLimit bool
	binary         string
	asJSON         bool
}

func newWorldUpCmd(g *globals) *cobra.Command {
	f := &worldUpFlags{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the world in the background and wait until every process serves",
		Long: `Up writes a signing key and the cells.yaml in use into --dir, then starts, each
as its own process of this binary: the control plane, --routers routers
(reading homes from the control plane, probing cells every --probe-interval
and failing a cell over after --fail-threshold missed probes), one cell
process per cell of cells.yaml that is not disabled, and one edge process per
edge of cells.yaml (one edge near the first active cell when the file lists
none). It waits until the routers see every cell up and every edge is linked
to every cell, writes state.json and returns; the processes keep running
with their logs in --dir.

Each cell keeps its players in its own embedded store (player data lives in
the home cell) unless --players-db names a database they all share. Sign-in
rate limits are off unless --login-rate-limit, since drills and load tests
sign in many bots from one address. Up refuses to start over a world that
still runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runWorldUp(cmd.Context(), g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", env("LIVECELL_WORLD_DIR", defaultWorldDir), "world directory: state, key, cells.yaml, logs (env LIVECELL_WORLD_DIR)")
	fl.StringVar(&f.playersDB, "players-db", "", "PostgreSQL/CockroachDB URL every process shares; empty gives each cell its own embedded store")
	fl.BoolVar(&f.freePorts, "free-ports", false, "put every process on a free loopback port instead of the cells.yaml addresses (tests, several worlds at once)")
	fl.IntVar(&f.routers, "routers", 1, "routers to run side by side; the first takes router.listen")
	fl.StringVar(&f.controlListen, "control-listen", defaultControlListen, "control plane listen address (ignored with --free-ports)")
	fl.DurationVar(&f.probeInterval, "probe-interval", 500*time.Millisecond, "how often routers and the control plane probe every cell")
	fl.IntVar(&f.failThreshold, "fail-threshold", 2, "missed probes that fail a cell over")
	fl.DurationVar(&f.drainGrace, "drain-grace", time.Second, "on `world down`, how long cells give players to leave")
	fl.DurationVar(&f.homeCacheTTL, "home-cache-ttl", 10*time.Second, "how long routers answer a player's home from memory")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "give up when the world does not serve within this long")
	fl.BoolVar(&f.loginRateLimit, "login-rate-limit", false, "keep the cells' sign-in rate limits on")
	fl.StringVar(&f.binary, "binary", "", "livecell binary to run (default: this one)")
	fl.BoolVar(&f.asJSON, "json", false, "print the state file instead of a summary")
	return cmd
}

func runWorldUp(ctx context.Context, g *globals, f *worldUpFlags) error {
	if f.routers < 1 {
		return fmt.Errorf("--routers %d: want at least 1", f.routers)
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	if err := refuseRunningWorld(dir); err != nil {
		return err
	}
	bin := f.binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("world: find this binary: %w", err)
		}
	}
	cells, err := g.cells()
	if err != nil {
		return err
	}
	plan, err := planWorld(cells, f)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "cells.yaml")
	if err := writeCells(cfgPath, plan.cells, g.configPath); err != nil {
		return err
	}
	keyPath := filepath.Join(dir, "signing-key.pem")
	if err := writeSigningKey(keyPath); err != nil {
		return err
	}
	certPath, certKeyPath := filepath.Join(dir, "edge-cert.pem"), filepath.Join(dir, "edge-key.pem")
	if err := writeEdgeCert(certPath, certKeyPath); err != nil {
		return err
	}

	l := &mpworld.Launcher{
		Dir: dir, Binary: bin, Timeout: f.timeout,
		// Set, not inherited: every process must use the world's key and
		// store, whatever the caller's shell exports. Flags name the rest.
		Env: []string{
			"LIVECELL_SIGNING_KEY_FILE=" + keyPath,
			"LIVECELL_JWKS_FILE=",
			"LIVECELL_SERVER_TOKEN=",
			// Through the environment rather than argv: the URL may hold a
			// password, and argv is world-readable in /proc.
			"LIVECELL_DATABASE_URL=" + f.playersDB,
		},
	}
	common := []string{"--config", cfgPath, "--log-format", "json", "--log-level", g.logLevel, "--tracing", g.tracing, "--otlp-endpoint", g.otlpEndpoint}
	probeArgs := []string{"--probe-interval", f.probeInterval.String(), "--fail-threshold", strconv.Itoa(f.failThreshold)}
	hc := &http.Client{Timeout: time.Second}
	controlURL := "http://" + plan.control

	st := &mpworld.State{
		Version: mpworld.StateVersion, Dir: dir, StartedAt: time.Now().UTC(), Binary: bin,
		Config: cfgPath, SigningKeyFile: keyPath, SharedDatabase: f.playersDB != "", EdgeCertFile: certPath,
	}
	err = func() error {
		// The control plane first: cells write new players' homes there.
		if err := l.Start(ctx, mpworld.Spec{
			Name: "control", Role: mpworld.RoleControl,
			Args:  append(append([]string{"control"}, common...), append([]string{"--listen", plan.control}, probeArgs...)...),
			Addrs: map[string]string{mpworld.AddrHTTP: plan.control},
			Ready: httpOK(hc, controlURL+"/healthz"),
		}); err != nil {
			return err
		}
		var specs []mpworld.Spec
		for _, c := range plan.cells.Cells {
			if c.State == config.StateDisabled {
				continue
			}
			args := append([]string{"cell"}, common...)
			args = append(args, "--cell", c.ID, "--control", controlURL, "--drain-grace", f.drainGrace.String())
			if !f.loginRateLimit {
				args = append(args, "--no-login-rate-limit")
			}
			specs = append(specs, mpworld.Spec{
				Name: "cell-" + c.ID, Role: mpworld.RoleCell, Cell: c.ID, Args: args,
				Addrs: map[string]string{mpworld.AddrAPI: c.API, mpworld.AddrGateway: c.Gateway, mpworld.AddrBackbone: c.Backbone},
				Ready: cellReady(hc, c),
			})
		}
		if err := l.Start(ctx, specs...); err != nil {
			return err
		}
		// Routers next: ready means they see every running cell up, so a
		// drill can start the moment `world up` returns.
		specs = nil
		var routerURLs []string
		for i, addr := range plan.routers {
			args := append([]string{"router"}, common...)
			args = append(args, "--listen", addr, "--control", controlURL, "--home-cache-ttl", f.homeCacheTTL.String())
			specs = append(specs, mpworld.Spec{
				Name: "router-" + strconv.Itoa(i+1), Role: mpworld.RoleRouter, Args: append(args, probeArgs...),
				Addrs: map[string]string{mpworld.AddrHTTP: addr},
				Ready: routerReady(hc, "http://"+addr),
			})
			routerURLs = append(routerURLs, "http://"+addr)
		}
		if err := l.Start(ctx, specs...); err != nil {
			return err
		}
		// Edges last: they resolve players through the routers, and are
		// ready once linked to every running cell.
		if f.freePorts {
			if err := plan.repickEdgePorts(); err != nil {
				return err
			}
			if err := writeCells(cfgPath, plan.cells, g.configPath); err != nil {
				return err
			}
		}
		specs = nil
		for _, pe := range plan.edges {
			args := append([]string{"edge"}, common...)
			args = append(args, "--edge", pe.edge.ID, "--router", strings.Join(routerURLs, ","), "--metrics-listen", pe.metrics,
				"--tls-cert", certPath, "--tls-key", certKeyPath, "--drain-grace", f.drainGrace.String())
			specs = append(specs, mpworld.Spec{
				Name: "edge-" + pe.edge.ID, Role: mpworld.RoleEdge, Cell: pe.cell, Args: args,
				Addrs: map[string]string{mpworld.AddrTCP: pe.edge.TCP, mpworld.AddrQUIC: pe.edge.QUIC, mpworld.AddrWS: pe.edge.WS, mpworld.AddrHTTP: pe.metrics},
				Ready: edgeReady(hc, pe),
			})
		}
		return l.Start(ctx, specs...)
	}()
	if err != nil {
		if aerr := l.Abort(); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return err
	}
	st.Processes = l.Processes()
	if err := mpworld.Save(st); err != nil {
		_ = l.Abort()
		return err
	}
	if f.asJSON {
		return printJSON(g.stdout, st)
	}
	printWorld(g.stdout, st, "livecell world is up")
	fmt.Fprintf(g.stdout, "drill it with: livecell chaos kill-cell <cell> --dir %s      stop it with: livecell world down --dir %s\n", f.dir, f.dir)
	return nil
}

// refuseRunningWorld fails when dir holds a world that still runs: two
// worlds in one directory would overwrite each other's state and logs.
func refuseRunningWorld(dir string) error {
	st, err := mpworld.Load(dir)
	if errors.Is(err, mpworld.ErrNoWorld) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w (remove it if no world runs)", err)
	}
	if running := st.Running(); len(running) > 0 {
		names := make([]string, len(running))
		for i, p := range running {
			names[i] = fmt.Sprintf("%s (pid %d)", p.Name, p.PID)
		}
		return fmt.Errorf("a world already runs in %s: %s; stop it with `livecell world down --dir %s`", dir, strings.Join(names, ", "), dir)
	}
	return nil // a dead world's state is simply replaced
}

// worldPlan is where each process of the world listens.
type worldPlan struct {
	cells   *config.Cells // with the addresses in use
	control string
	routers []string
	edges   []plannedEdge
}

// plannedEdge is one edge process of the world.
type plannedEdge struct {
	edge    config.Edge // with the addresses in use
	cell    string      // the cell it is listed under
	metrics string
}

func planWorld(cells *config.Cells, f *worldUpFlags) (*worldPlan, error) {
	out := *cells
	out.Cells = append([]config.Cell(nil), cells.Cells...)
	p := &worldPlan{cells: &out, control: f.controlListen}
	next := func(configured string) (string, error) {
		if f.freePorts || configured == "" {
			return mpworld.FreePort()
		}
		return configured, nil
	}
	var err error
	if p.control, err = next(f.controlListen); err != nil {
		return nil, err
	}
	if out.Router.Listen, err = next(out.Router.Listen); err != nil {
		return nil, err
	}
	p.routers = []string{out.Router.Listen}
	// Routers beyond the first have no address in cells.yaml: side-by-side
	// replicas a load balancer would sit in front of.
	for range f.routers - 1 {
		addr, err := mpworld.FreePort()
		if err != nil {
			return nil, err
		}
		p.routers = append(p.routers, addr)
	}
	nextUDP := func(configured string) (string, error) {
		if f.freePorts || configured == "" {
			return mpworld.FreeUDPPort()
		}
		return configured, nil
	}
	firstActive := -1
	for i := range out.Cells {
		c := &out.Cells[i]
		if c.API, err = next(c.API); err != nil {
			return nil, err
		}
		if c.Gateway, err = next(c.Gateway); err != nil {
			return nil, err
		}
		// Every cell gets a backbone, so that the world's edges can reach it.
		if c.Backbone, err = next(c.Backbone); err != nil {
			return nil, err
		}
		if firstActive < 0 && c.State == config.StateActive {
			firstActive = i
		}
		c.Edges = slices.Clone(c.Edges)
		for j := range c.Edges {
			e := &c.Edges[j]
			if e.TCP != "" || f.freePorts {
				if e.TCP, err = next(e.TCP); err != nil {
					return nil, err
				}
			}
			if e.QUIC != "" || f.freePorts {
				if e.QUIC, err = nextUDP(e.QUIC); err != nil {
					return nil, err
				}
			}
			if e.WS != "" || f.freePorts {
				if e.WS, err = next(e.WS); err != nil {
					return nil, err
				}
			}
			p.edges = append(p.edges, plannedEdge{edge: *e, cell: c.ID})
		}
	}
	if len(p.edges) == 0 && firstActive >= 0 {
		// Drills need players behind an edge: one near the first active cell.
		e := config.Edge{ID: "edge-1"}
		if e.TCP, err = mpworld.FreePort(); err != nil {
			return nil, err
		}
		if e.QUIC, err = mpworld.FreeUDPPort(); err != nil {
			return nil, err
		}
		if e.WS, err = mpworld.FreePort(); err != nil {
			return nil, err
		}
		out.Cells[firstActive].Edges = append(out.Cells[firstActive].Edges, e)
		p.edges = append(p.edges, plannedEdge{edge: e, cell: out.Cells[firstActive].ID})
	}
	for i := range p.edges {
		metrics := ""
		if i == 0 && !f.freePorts {
			metrics = defaultEdgeMetrics
		}
		if p.edges[i].metrics, err = next(metrics); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// writeCells writes the cells.yaml every process of the world reads, and
// reads it back, so that a file the processes would reject fails here.
func writeCells(path string, cells *config.Cells, source string) error {
	data, err := yaml.Marshal(cells)
	if err != nil {
		return fmt.Errorf("world: encode cells.yaml: %w", err)
	}
	if source == "" {
		source = "the embedded default"
	}
	header := "# Written by `livecell world up` from " + source + "; every process of the world reads it.\n"
	data = append([]byte(header), data...)
	if _, err := config.Parse(data); err != nil {
		return fmt.Errorf("world: the generated cells.yaml does not load: %w", err)
	}
	// Replaced in one rename: running routers reload it when it changes.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	return nil
}

// repickEdgePorts gives the edges fresh free ports just before they start:
// ports picked at planning time have had seconds to be taken by someone
// else's outgoing connections by then.
func (p *worldPlan) repickEdgePorts() error {
	for i := range p.edges {
		pe := &p.edges[i]
		var err error
		if pe.edge.TCP != "" {
			if pe.edge.TCP, err = mpworld.FreePort(); err != nil {
				return err
			}
		}
		if pe.edge.QUIC != "" {
			if pe.edge.QUIC, err = mpworld.FreeUDPPort(); err != nil {
				return err
			}
		}
		if pe.edge.WS != "" {
			if pe.edge.WS, err = mpworld.FreePort(); err != nil {
				return err
			}
		}
		if pe.metrics, err = mpworld.FreePort(); err != nil {
			return err
		}
		for ci := range p.cells.Cells {
			for ei, e := range p.cells.Cells[ci].Edges {
				if e.ID == pe.edge.ID {
					p.cells.Cells[ci].Edges[ei] = pe.edge
				}
			}
		}
	}
	return nil
}

// writeSigningKey writes a fresh Ed25519 key, readable by the owner only:
// with it every process verifies what the others sign.
func writeSigningKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("world: %w", err)
	}
	pem, err := token.EncodePrivateKeyPEM(priv)
	if err != nil {
		return fmt.Errorf("world: %w", err)
	}
	// Remove first: WriteFile keeps the mode of an existing file.
	_ = os.Remove(path)
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	return nil
}

// writeEdgeCert writes the self-signed certificate every edge of the world
// serves QUIC with; drills and clients of the world trust it.
func writeEdgeCert(certPath, keyPath string) error {
	certPEM, keyPEM, err := transport.GenerateCert([]string{"127.0.0.1", "localhost"}, 90*24*time.Hour)
	if err != nil {
		return fmt.Errorf("world: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{certPath, certPEM}, {keyPath, keyPEM}} {
		_ = os.Remove(f.path)
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return fmt.Errorf("world: %w", err)
		}
	}
	return nil
}

// edgeReady is ready when the edge is linked to every cell it can reach and
// accepts TCP players.
func edgeReady(hc *http.Client, pe plannedEdge) func(context.Context) error {
	return func(ctx context.Context) error {
		var st edge.Status
		if err := getJSON(ctx, hc, "http://"+pe.metrics+"/v1/status", &st); err != nil {
			return err
		}
		for cell, up := range st.Links {
			if !up {
				return fmt.Errorf("edge %s has no backbone link to %s yet", pe.edge.ID, cell)
			}
		}
		if pe.edge.TCP != "" {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", pe.edge.TCP)
			if err != nil {
				return fmt.Errorf("edge tcp: %w", err)
			}
			return conn.Close()
		}
		return nil
	}
}

// httpOK is ready when url answers 200.
func httpOK(hc *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		return getJSON(ctx, hc, url, nil)
	}
}

// cellReady is ready when the cell reports itself healthy and its gateway
// accepts connections.
func cellReady(hc *http.Client, c config.Cell) func(context.Context) error {
	return func(ctx context.Context) error {
		var st cellapi.Status
		if err := getJSON(ctx, hc, "http://"+c.API+cellapi.StatusPath, &st); err != nil {
			return err
		}
		if st.Cell != c.ID || !st.Healthy {
			return fmt.Errorf("status answers cell %q healthy=%v, want %q healthy", st.Cell, st.Healthy, c.ID)
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.Gateway)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		return conn.Close()
	}
}

// routerReady is ready when the router sees every cell that runs up.
func routerReady(hc *http.Client, base string) func(context.Context) error {
	return func(ctx context.Context) error {
		var cr router.CellsResponse
		if err := getJSON(ctx, hc, base+"/v1/cells", &cr); err != nil {
			return err
		}
		for _, c := range cr.Cells {
			if c.State != string(config.StateDisabled) && !c.Up {
				return fmt.Errorf("router sees cell %s down: %s", c.ID, c.LastError)
			}
		}
		return nil
	}
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

func newWorldDownCmd(g *globals) *cobra.Command {
	var (
		dir     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the world: SIGTERM every process, SIGKILL what is left after --timeout",
		Long: `Down reads the state file, asks every process of the world to stop (cells
drain their gateways), SIGKILLs whatever still runs after --timeout, and
removes the state file. Logs, the key and cells.yaml stay in the directory.
With no world running it says so and succeeds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := mpworld.Load(dir)
			if errors.Is(err, mpworld.ErrNoWorld) {
				fmt.Fprintf(g.stdout, "no world runs in %s\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			running := st.Running()
			killed, err := mpworld.Stop(cmd.Context(), running, timeout)
			if err != nil {
				return err
			}
			if err := mpworld.Remove(st.Dir); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "world in %s stopped: %d of %d processes were running", st.Dir, len(running), len(st.Processes))
			if len(killed) > 0 {
				fmt.Fprintf(g.stdout, "; SIGKILLed after %s: %s", timeout, strings.Join(killed, ", "))
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", env("LIVECELL_WORLD_DIR", defaultWorldDir), "world directory (env LIVECELL_WORLD_DIR)")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "how long processes get to stop before SIGKILL")
	return cmd
}

func newWorldStatusCmd(g *globals) *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what runs where in the world, and whether it still runs",
		Long: `Status prints every process of the world with its role, cell, PID, addresses,
log file and whether it is alive. It exits 1 when no world is recorded in
--dir or when any recorded process is no longer running (after a drill
killed a cell, for example).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := mpworld.Load(dir)
			if err != nil {
				return err
			}
			dead := len(st.Processes) - len(st.Running())
			if asJSON {
				type procStatus struct {
					mpworld.Process
					Alive bool `json:"alive"`
				}
				out := struct {
					*mpworld.State
					Processes []procStatus `json:"processes"`
				}{State: st}
				for _, p := range st.Processes {
					out.Processes = append(out.Processes, procStatus{Process: p, Alive: mpworld.Alive(p)})
				}
				if err := printJSON(g.stdout, out); err != nil {
					return err
				}
			} else {
				printWorld(g.stdout, st, "livecell world in "+st.Dir)
			}
			if dead > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", env("LIVECELL_WORLD_DIR", defaultWorldDir), "world directory (env LIVECELL_WORLD_DIR)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state file with each process's liveness")
	return cmd
}

func printWorld(out io.Writer, st *mpworld.State, title string) {
	fmt.Fprintln(out, title)
	for _, p := range st.Processes {
		status := "running"
		if !mpworld.Alive(p) {
			status = "DEAD"
		}
		var addrs []string
		for _, k := range []string{mpworld.AddrHTTP, mpworld.AddrAPI, mpworld.AddrGateway, mpworld.AddrBackbone, mpworld.AddrTCP, mpworld.AddrQUIC, mpworld.AddrWS} {
			if a := p.Addrs[k]; a != "" {
				addrs = append(addrs, k+"="+a)
			}
		}
		fmt.Fprintf(out, "  %-14s %-7s pid %-7d %-7s %s  log %s\n", p.Name, p.Role, p.PID, status, strings.Join(addrs, " "), p.Log)
	}
}

func printJSON(out io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}
