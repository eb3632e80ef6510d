package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/registry"
	"github.com/livecell/livecell/internal/config"
)

// loginLimitFlags configure the accounts service's sign-in rate limits.
type loginLimitFlags struct {
	off              bool
	trustedProxyHops int
}

func (l *loginLimitFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&l.off, "no-login-rate-limit", false, "turn off sign-in rate limits (load tests signing in many bots from one address; never in production)")
	cmd.Flags().IntVar(&l.trustedProxyHops, "trusted-proxy-hops", 0, "reverse proxies in front of the API that append to X-Forwarded-For (0: ignore the header)")
}

func (l loginLimitFlags) config() accounts.RateLimitConfig {
	return accounts.RateLimitConfig{Disabled: l.off, TrustedProxyHops: l.trustedProxyHops}
}

// cellFlags are shared by `livecell cell` and `livecell gateway`.
type cellFlags struct {
	cellID        string
	services      string
	database      string
	control       string // control plane URL: write new players' homes there
	apiListen     string
	gatewayListen string
	reusePort     bool
	engine        string
	loops         int
	drainGrace    time.Duration
	maxSessions   int
	passwordAuth  bool
	limits        loginLimitFlags
	commerce      commerceFlags
}

func (f *cellFlags) register(cmd *cobra.Command, defaultServices string) {
	fl := cmd.Flags()
	fl.StringVar(&f.cellID, "cell", env("LIVECELL_CELL", ""), "id of this cell in cells.yaml (env LIVECELL_CELL; required)")
	fl.StringVar(&f.services, "services", env("LIVECELL_SERVICES", defaultServices), "comma-separated services to run here: "+fmt.Sprint(cell.AllServices())+" (env LIVECELL_SERVICES; empty = all)")
	fl.StringVar(&f.database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL (env LIVECELL_DATABASE_URL); empty uses the embedded store")
	fl.StringVar(&f.control, "control", env("LIVECELL_CONTROL_URL", ""), "control plane base URL that owns the player directory (env LIVECELL_CONTROL_URL); empty writes homes to --database or the embedded store")
	fl.StringVar(&f.apiListen, "api-listen", "", "override the HTTP API listen address from cells.yaml")
	fl.StringVar(&f.gatewayListen, "gateway-listen", "", "override the gateway listen address from cells.yaml")
	fl.BoolVar(&f.reusePort, "reuse-port", true, "bind the gateway with SO_REUSEPORT so several processes share its port")
	fl.StringVar(&f.engine, "gateway-engine", env("LIVECELL_GATEWAY_ENGINE", ""), "gateway connection engine: epoll (Linux default: no goroutine per idle session) or goroutine (env LIVECELL_GATEWAY_ENGINE)")
	fl.IntVar(&f.loops, "gateway-loops", 0, "event loops of the epoll engine (0: one per GOMAXPROCS)")
	fl.DurationVar(&f.drainGrace, "drain-grace", 10*time.Second, "on SIGTERM, how long players get to reconnect elsewhere before their sessions close")
	fl.IntVar(&f.maxSessions, "max-sessions", 0, "refuse sessions beyond this many in this process (0: no limit)")
	fl.BoolVar(&f.passwordAuth, "password-auth", true, "enable username/password registration and login (development and testing)")
	f.limits.register(cmd)
	f.commerce.register(cmd)
}

func newCellCmd(g *globals) *cobra.Command {
	f := &cellFlags{}
	cmd := &cobra.Command{
		Use:   "cell",
		Short: "Run one cell: its services, gateway and HTTP API (all services unless --services)",
		Long: `Cell runs one cell of cells.yaml in this process. With --services it runs only
the named services; opcodes of services that run in other processes are
forwarded to the cell's HTTP API with a server credential. On SIGTERM the
gateway stops accepting, tells every player to reconnect elsewhere and closes
the remaining sessions after --drain-grace. Catalog, inventory and store keep
their data in --database (or embedded stores); split across processes they
need the cell's RabbitMQ (--amqp-url).

With --control, the cell records new players' homes at the control plane and
follows its orders: drains (refuse new sessions, move players to the
failover cell in batches), rehomes (send a moved player's session to the new
cell, answer later ones with player_moved) and the override table. With
CONSUL_HTTP_ADDR set it registers its gateway and API in Consul with health
checks at start, and deregisters before draining on SIGTERM.` + platformHelp + storeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runCell(cmd.Context(), g, f) },
	}
	f.register(cmd, "")
	return cmd
}

func newGatewayCmd(g *globals) *cobra.Command {
	f := &cellFlags{}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run only a cell's TCP gateway (shorthand for `cell --services=gateway`)",
		Long: `Gateway runs a cell's TCP gateway alone, forwarding service opcodes to the
cell's HTTP API. Run several on one port (SO_REUSEPORT is on by default) to
hold more sessions than one process's open-file limit allows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.services = cell.ServiceGateway
			return runCell(cmd.Context(), g, f)
		},
	}
	f.register(cmd, cell.ServiceGateway)
	_ = cmd.Flags().MarkHidden("services")
	return cmd
}

func runCell(ctx context.Context, g *globals, f *cellFlags) error {
	p, err := g.process(ctx, "livecell-cell")
	if err != nil {
		return err
	}
	defer p.shutdown(context.Background())
	log, cells := p.log, p.cells
	if f.cellID == "" {
		return fmt.Errorf("--cell is required (one of %v)", cells.IDs())
	}
	cl, ok := cells.Cell(f.cellID)
	if !ok {
		return fmt.Errorf("--cell %q is not in cells.yaml (have %v)", f.cellID, cells.IDs())
	}
	services, err := cell.ParseServices(f.services)
	if err != nil {
		return err
	}
	keys, err := loadKeys(log, true)
	if err != nil {
		return err
	}
	st, err := openStores(ctx, log, f.database)
	if err != nil {
		return err
	}
	defer st.close()
	if f.control != "" && slices.Contains(services, cell.ServiceAccounts) {
		// The control plane owns the directory; this cell's own store
		// keeps only its players' data. Only accounts writes homes.
		if st.directory, err = controlDirectory(f.control, keys, "cell/"+cl.ID); err != nil {
			return err
		}
	}

	cfg := cell.Config{
		Cell: cl, Cells: cells, Services: services,
		Accounts:  accounts.Config{PasswordAuth: f.passwordAuth, Argon2: accounts.DefaultArgon2(), RateLimit: f.limits.config()},
		APIListen: f.apiListen, GatewayListen: f.gatewayListen,
	}
	if cfg.Store, cfg.Events, err = commerceConfig(log, f.commerce); err != nil {
		return err
	}
	cfg.Gateway.ReusePort = f.reusePort
	cfg.Gateway.Engine, cfg.Gateway.Loops = f.engine, f.loops
	cfg.Gateway.DrainGrace = f.drainGrace
	cfg.Gateway.MaxSessions = f.maxSessions
	deps := cell.Deps{
		Logger: log, Keys: keys, ServerToken: env("LIVECELL_SERVER_TOKEN", ""),
		AccountsStore: st.accounts, Directory: st.directory, Tracer: p.tp, Commerce: st.commerce(cl.ID),
	}
	if f.control != "" {
		// Drains, redirect markers and overrides: the control plane's
		// orders, polled by the processes that hold sessions.
		deps.Control = &control.Client{BaseURL: f.control, HTTP: &http.Client{Timeout: 5 * time.Second}}
	}
	if slices.Contains(services, cell.ServiceAccounts) {
		if err := platformVerifiers(ctx, log, &deps); err != nil {
			return err
		}
	}
	c, err := cell.New(cfg, deps)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	reg, err := registerInConsul(ctx, cl, c, services)
	if err != nil {
		if ctx.Err() != nil {
			err = nil // told to stop while registering: a shutdown, not a failure
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(err, c.Stop(stopCtx))
	}
	log.Info("cell up", "cell", cl.ID, "services", services, "api", c.APIAddr(), "gateway", c.GatewayAddr(), "consul", reg != nil)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), f.drainGrace+10*time.Second)
	defer cancel()
	if reg != nil {
		// Out of discovery first, so that nothing new is sent here while
		// the players leave.
		if err := reg.Deregister(stopCtx); err != nil {
			log.Warn("consul deregister", "error", err)
		}
	}
	log.Info("draining", "grace", f.drainGrace)
	if err := c.Drain(stopCtx, "shutdown"); err != nil {
		log.Warn("drain", "error", err)
	}
	return c.Stop(stopCtx)
}

// registerInConsul registers, when CONSUL_HTTP_ADDR is set, the roles this
// process serves (its gateway; the cell's API when it runs a service
// behind it) at the addresses it bound, with health checks. It returns nil
// without Consul. A Consul agent that refuses is an error: an operator who
// configured Consul expects the cell in it.
func registerInConsul(ctx context.Context, cl config.Cell, c *cell.Cell, services []string) (*registry.Registration, error) {
	cfg := consulFromEnv()
	if !cfg.Enabled() {
		return nil, nil
	}
	consul, err := registry.NewConsul(cfg)
	if err != nil {
		return nil, err
	}
	addrs := registry.Addrs{Gateway: c.GatewayAddr(), API: c.APIAddr()}
	if addrs.Gateway != "" {
		addrs.Roles = append(addrs.Roles, registry.RoleGateway)
	}
	if slices.ContainsFunc(services, func(s string) bool { return s != cell.ServiceGateway }) {
		addrs.Roles = append(addrs.Roles, registry.RoleAPI)
	}
	return consul.Register(ctx, cl, addrs)
}
