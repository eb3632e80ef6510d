// Package cell assembles one regional cell from the services chosen at run
// time: the service implementations, the TCP gateway and the cell's HTTP API.
//
// It is the composition root for a cell and the only package (with cmd/)
// allowed to import service implementations. "All services in one process"
// and "one process per service" differ only in Config.Services: opcodes of a
// service that is not in this process are forwarded to the cell's HTTP API
// through internal/opsrpc, authenticated with a server credential.
package cell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/cell/accounts/platform"
	"github.com/livecell/livecell/cell/cellapi"
	"github.com/livecell/livecell/gateway"
	"github.com/livecell/livecell/global/agent"
	"github.com/livecell/livecell/internal/buildinfo"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/httpapi"
	"github.com/livecell/livecell/internal/opsrpc"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/internal/token"
)

// Service names accepted in Config.Services. The list is written once, here.
const (
	ServiceAccounts  = "accounts"
	ServiceCatalog   = "catalog"
	ServiceInventory = "inventory"
	ServiceStore     = "store"
	ServiceGateway   = "gateway"
)

// AllServices is every service a cell runs when none are named.
func AllServices() []string {
	return []string{ServiceAccounts, ServiceCatalog, ServiceInventory, ServiceStore, ServiceGateway}
}

// ParseServices turns "accounts,gateway" into a validated list; "" or "all"
// means AllServices.
func ParseServices(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return AllServices(), nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(AllServices(), name) {
			return nil, fmt.Errorf("cell: unknown service %q (known: %s)", name, strings.Join(AllServices(), ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Config configures one cell process.
type Config struct {
	Cell     config.Cell     // this cell's entry in cells.yaml
	Cells    *config.Cells   // the whole file, for failover rules
	Services []string        // empty means AllServices
	Gateway  gateway.Config  // CellID and Listen are filled from Cell
	Accounts accounts.Config // CellID is filled from Cell
	Store    StoreConfig     // Stripe, or test mode (commerce.go)
	Events   EventsConfig    // RabbitMQ, or the in-process bus
	// SeedDevCatalog fills an empty catalog with the development catalog.
	SeedDevCatalog bool

	// APIListen and GatewayListen override the cells.yaml addresses (tests
	// use "127.0.0.1:0"); the bound addresses are advertised.
	APIListen     string
	GatewayListen string
	// BackboneListen overrides the cell's backbone address (edge links).
	BackboneListen string

	// ServerTokenTTL bounds the server credential this cell mints for its
	// own service-to-service calls.
	ServerTokenTTL time.Duration
}

// Deps are the cell's external dependencies, built by the caller.
type Deps struct {
	Logger *slog.Logger
	// Keys signs player and server tokens (accounts) and verifies them
	// (gateway, internal APIs). A cell without accounts needs only public keys
	// plus ServerToken.
	Keys *token.KeySet
	// ServerToken, when set, is the credential for calling other processes'
	// internal APIs; otherwise the cell mints one with Keys.
	ServerToken   string
	AccountsStore accounts.Store
	Commerce      CommerceDeps // catalog, inventory and store storage
	Directory     homeWriter
	Tracer        trace.TracerProvider

	// Control is the control plane, whose orders (drains, redirect markers
	// of rehomed players, overrides) a process holding sessions follows;
	// nil: none.
	Control controlOrders

	// Steam and Epic verify platform sign-ins (steam.Verifier,
	// epic.Verifier). A nil one turns that platform off on this cell.
	Steam platformVerifier
	Epic  platformVerifier
}

// homeWriter records a new player's home cell in the global directory.
type homeWriter interface {
	SetHome(ctx context.Context, playerID, cellID string) error
}

// platformVerifier checks a ticket a game client got from its platform.
type platformVerifier interface {
	Verify(ctx context.Context, ticket string) (platform.Identity, error)
}

// Cell is a running cell.
type Cell struct {
	cfg      Config
	log      *slog.Logger
	reg      *prometheus.Registry
	keys     *token.KeySet
	verifier *token.Verifier
	signer   *token.Signer

	accounts *accounts.Service
	commerce *commerce
	gw       *gateway.Gateway
	agent    *agent.Agent // nil without a control plane or a gateway

	apiLn  net.Listener
	apiSrv *http.Server

	mu       sync.Mutex
	serveErr error
	done     chan struct{}
}

// New builds a cell; Start makes it listen.
func New(cfg Config, deps Deps) (*Cell, error) {
	if deps.Logger == nil {
		return nil, errors.New("cell: Deps.Logger is required")
	}
	if deps.Keys == nil {
		return nil, errors.New("cell: Deps.Keys is required")
	}
	if cfg.Cell.ID == "" {
		return nil, errors.New("cell: Config.Cell is required")
	}
	if len(cfg.Services) == 0 {
		cfg.Services = AllServices()
	}
	if cfg.ServerTokenTTL <= 0 {
		cfg.ServerTokenTTL = time.Hour
	}
	c := &Cell{
		cfg:      cfg,
		log:      deps.Logger.With("cell", cfg.Cell.ID),
		reg:      telemetry.NewRegistry("cell"),
		keys:     deps.Keys,
		verifier: token.NewVerifier(deps.Keys, nil),
		done:     make(chan struct{}),
	}
	if deps.Keys.CanSign() {
		s, err := token.NewSigner(deps.Keys, nil)
		if err != nil {
			return nil, fmt.Errorf("cell: %w", err)
		}
		c.signer = s
	}
	metrics := prometheus.WrapRegistererWith(prometheus.Labels{"cell": cfg.Cell.ID}, c.reg)

	handlers := protocol.Handlers{}
	if c.runs(ServiceAccounts) {
		if deps.AccountsStore == nil || deps.Directory == nil {
			return nil, errors.New("cell: accounts needs Deps.AccountsStore and Deps.Directory")
		}
		if c.signer == nil {
			return nil, errors.New("cell: accounts needs a signing key")
		}
		acfg := cfg.Accounts
		acfg.CellID = cfg.Cell.ID
		svc, err := accounts.New(acfg, accounts.Deps{
			Logger:  c.log.With("service", ServiceAccounts),
			Store:   deps.AccountsStore,
			Tokens:  c.signer,
			Verify:  playerVerifier{c.verifier},
			Homes:   deps.Directory,
			Steam:   deps.Steam,
			Epic:    deps.Epic,
			Metrics: metrics,
		})
		if err != nil {
			return nil, fmt.Errorf("cell: %w", err)
		}
		c.accounts = svc
		for op, h := range svc.Ops() {
			handlers[op] = h
		}
	}

	if err := c.newCommerce(cfg, deps, metrics, handlers); err != nil {
		_ = c.commerce.close()
		return nil, err
	}

	if c.runs(ServiceGateway) {
		// Opcodes of services that run elsewhere go to the cell's HTTP API.
		var remote []protocol.Opcode
		for _, oi := range protocol.Ops() {
			if oi.Service != "gateway" && handlers[oi.Op] == nil {
				remote = append(remote, oi.Op)
			}
		}
		if len(remote) > 0 {
			tok, err := c.serverCredential(deps.ServerToken)
			if err != nil {
				return nil, err
			}
			rc := &opsrpc.Client{
				BaseURL: "http://" + cfg.Cell.API,
				HTTP:    &http.Client{Timeout: 10 * time.Second},
				Token:   tok,
			}
			for op, h := range rc.Handlers(remote...) {
				handlers[op] = h
			}
		}
		gcfg := cfg.Gateway
		gcfg.CellID = cfg.Cell.ID
		gcfg.Listen = firstNonEmpty(cfg.GatewayListen, cfg.Cell.Gateway)
		gcfg.BackboneListen = firstNonEmpty(cfg.BackboneListen, cfg.Cell.Backbone)
		var resume gateway.ResumeIssuer
		if c.signer != nil {
			resume = resumeIssuer{c.signer}
		}
		auth := &authenticator{cell: cfg.Cell.ID, failoverFor: failoverSources(cfg.Cells, cfg.Cell.ID), verify: c.verifier}
		gw, err := gateway.New(gcfg, gateway.Deps{
			Logger:   c.log.With("service", ServiceGateway),
			Metrics:  metrics,
			Auth:     auth,
			Resume:   resume,
			Handlers: handlers,
			Edges:    edgeAuthenticator{c.verifier},
		})
		if err != nil {
			return nil, fmt.Errorf("cell: %w", err)
		}
		c.gw = gw
		if err := c.newAgent(deps.Control, auth, metrics); err != nil {
			return nil, err
		}
	}

	c.apiSrv = &http.Server{
		Handler:           telemetry.InstrumentHTTP(metrics, "cell", deps.Tracer, c.apiMux(handlers)),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return c, nil
}

func (c *Cell) runs(svc string) bool { return slices.Contains(c.cfg.Services, svc) }

// serverCredential returns a token source for this cell's internal calls.
func (c *Cell) serverCredential(static string) (func(context.Context) (string, error), error) {
	if static != "" {
		return func(context.Context) (string, error) { return static, nil }, nil
	}
	if c.signer == nil {
		return nil, errors.New("cell: calling remote services needs a server token (LIVECELL_SERVER_TOKEN) or a signing key")
	}
	return (&serverTokens{signer: c.signer, subject: "cell/" + c.cfg.Cell.ID, ttl: c.cfg.ServerTokenTTL}).Token, nil
}

func (c *Cell) apiMux(inproc protocol.Handlers) http.Handler {
	mux := http.NewServeMux()
	if c.accounts != nil {
		h := c.accounts.Handler()
		mux.Handle("/v1/auth/", h)
		mux.Handle("/v1/accounts/", h)
	}
	// Only the opcodes this process answers itself are served to others;
	// forwarding a forwarded opcode would loop.
	local := protocol.Handlers{}
	if c.accounts != nil {
		for op, h := range c.accounts.Ops() {
			local[op] = h
		}
	}
	c.commerce.mount(mux, local)
	mux.Handle("/internal/v1/ops/", opsrpc.NewHandler(local, c.authorizeServer, c.log))
	mux.HandleFunc("GET "+cellapi.StatusPath, c.serveStatus)
	mux.HandleFunc("GET /.well-known/jwks.json", c.serveJWKS)
	debug := telemetry.DebugMux(c.reg)
	mux.Handle("GET /metrics", debug)
	mux.Handle("GET /healthz", debug)
	mux.Handle("GET /buildinfo", debug)
	mux.HandleFunc("/", httpapi.NotFound)
	return mux
}

// authorizeServer admits only server-audience credentials to internal APIs,
// so a player token can never reach them.
func (c *Cell) authorizeServer(r *http.Request) error {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return err
	}
	_, err = c.verifier.Verify(tok, token.AudienceServer)
	return err
}

func (c *Cell) serveStatus(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, c.Status())
}

func (c *Cell) serveJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := c.keys.JWKS()
	if err != nil {
		httpapi.WriteError(w, r, c.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}

// Status is what the router and control plane read from /v1/status.
func (c *Cell) Status() cellapi.Status {
	st := cellapi.Status{
		Cell:     c.cfg.Cell.ID,
		Region:   c.cfg.Cell.Region,
		State:    c.reportedState(),
		Healthy:  true,
		Capacity: c.cfg.Cell.Capacity,
		Version:  buildinfo.Get().Version,
	}
	if c.gw != nil {
		st.Sessions = c.gw.Sessions()
		if a := c.gw.Addr(); a != nil {
			st.Gateway = a.String()
		}
	}
	return st
}

// Start binds the API and gateway listeners and serves in the background.
// A process that runs no HTTP service (a gateway alone) does not take the
// cell's API address, which belongs to the services it forwards to: it serves
// its status and metrics on APIListen, or an ephemeral loopback port.
func (c *Cell) Start(ctx context.Context) error {
	listen := c.cfg.APIListen
	if listen == "" {
		listen = "127.0.0.1:0"
		if c.accounts != nil || c.commerce.servesHTTP() {
			listen = c.cfg.Cell.API
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("cell %s: api listen: %w", c.cfg.Cell.ID, err)
	}
	c.apiLn = ln
	// The agent's first poll comes before the first session: a restarted
	// cell refuses rehomed players from the start.
	if err := c.startAgent(ctx); err != nil {
		_ = ln.Close()
		return fmt.Errorf("cell %s: %w", c.cfg.Cell.ID, err)
	}
	if c.gw != nil {
		if err := c.gw.Start(ctx); err != nil {
			_ = ln.Close()
			return fmt.Errorf("cell %s: %w", c.cfg.Cell.ID, err)
		}
	}
	if err := c.commerce.start(ctx, c); err != nil {
		_ = ln.Close()
		return fmt.Errorf("cell %s: %w", c.cfg.Cell.ID, err)
	}
	go func() {
		defer close(c.done)
		if err := c.apiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.mu.Lock()
			c.serveErr = err
			c.mu.Unlock()
			c.log.Error("api server stopped", "error", err)
		}
	}()
	return nil
}

// APIAddr is the bound HTTP address ("" before Start).
func (c *Cell) APIAddr() string { return addrOf(c.apiLn) }

// GatewayAddr is the gateway's bound address, "" when it does not run here.
func (c *Cell) GatewayAddr() string {
	if c.gw == nil || c.gw.Addr() == nil {
		return ""
	}
	return c.gw.Addr().String()
}

// BackboneAddr is where edges link to the gateway, "" when this process
// runs no gateway or the cell has no backbone.
func (c *Cell) BackboneAddr() string {
	if c.gw == nil || c.gw.BackboneAddr() == nil {
		return ""
	}
	return c.gw.BackboneAddr().String()
}

// Gateway returns the in-process gateway, nil when it runs elsewhere.
func (c *Cell) Gateway() *gateway.Gateway { return c.gw }

// Registry is the cell's metrics registry.
func (c *Cell) Registry() *prometheus.Registry { return c.reg }

// Drain tells connected players to reconnect elsewhere and waits (up to the
// gateway's grace period) for them to leave.
func (c *Cell) Drain(ctx context.Context, reason string) error {
	if c.gw == nil {
		return nil
	}
	return c.gw.Drain(ctx, protocol.Reconnect{Reason: reason, Cell: c.cfg.Cell.ID, RetryAfterMS: 1000})
}

// Stop closes the gateway and the API server.
func (c *Cell) Stop(ctx context.Context) error {
	agentErr := c.stopAgent(ctx)
	// Events not yet relayed stay in the outbox for the next process.
	errs := []error{c.commerce.close()}
	if c.gw != nil {
		errs = append(errs, c.gw.Stop(ctx))
	}
	if c.apiLn != nil {
		errs = append(errs, c.apiSrv.Shutdown(ctx))
		<-c.done
	}
	c.mu.Lock()
	errs = append(errs, c.serveErr, agentErr)
	c.mu.Unlock()
	return errors.Join(errs...)
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
