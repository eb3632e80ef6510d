package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db"
	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/internal/token"
	"github.com/livecell/livecell/router"
)

// defaultControlListen is where `livecell control` listens by default, next
// to the router's port in the shipped cells.yaml.
const defaultControlListen = "127.0.0.1:4101"

func newControlCmd(g *globals) *cobra.Command {
	var (
		database string
		listen   string
		probes   probeFlags
	)
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the global control plane, or operate it (drain, override, rehome)",
		Long: `Control (without a subcommand) runs the global control plane: it owns the
player → home-cell directory, the override table, the cells' run-time states
and the redirect markers of rehomed players, and probes every cell's
/v1/status for health and load (with the router's hysteresis). Routers and
cells poll it; it never calls them. Its API is docs/openapi/control.yaml:

  GET  /v1/directory/{player}      a player's home (routers)
  PUT  /v1/directory/{player}      a cell records a player it created (scope directory.write)
  GET  /v1/cells                   health, load and state of every cell
  GET  /v1/routing                 cell states and the override table (routers, cells)
  GET  /v1/cells/{cell}/orders     drain orders and redirect markers (a cell's processes)
  drain, override and rehome endpoints for operators (scope control.admin)

Cells point at it with --control, routers with --control. The directory is
in memory unless --database names PostgreSQL (or CockroachDB); rehoming a
player needs the database, since it moves the player's rows. Credentials are
verified with the keys of LIVECELL_SIGNING_KEY_FILE (or LIVECELL_JWKS_FILE).

The subcommands operate a running control plane (see "livecell control
<command> --help" and docs/operations.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := g.process(ctx, "livecell-control")
			if err != nil {
				return err
			}
			defer p.shutdown(context.Background())
			log, cells := p.log, p.cells
			// Throwaway keys would make every server credential fail:
			// the control plane only makes sense with the world's keys.
			keys, err := loadKeys(log, false)
			if err != nil {
				return err
			}
			st, err := openControlStore(ctx, log, database)
			if err != nil {
				return err
			}
			defer st.close()
			reg := telemetry.NewRegistry("control")
			// Health is the router's prober: the same rules, the same
			// hysteresis. Its resolve side is unused here; the control
			// server hands it every routing table it builds.
			health, err := router.New(probes.config(cells), router.Deps{Logger: log.With("component", "health"), Homes: st.dir})
			if err != nil {
				return err
			}
			s, err := control.New(control.Config{}, control.Deps{Logger: log, Directory: st.dir, Health: health, Verifier: token.NewVerifier(keys, nil), Mover: st.mover})
			if err != nil {
				return err
			}
			if err := s.Start(ctx); err != nil {
				return err
			}
			if err := health.Start(ctx); err != nil {
				return err
			}
			// The same cells as the routers: cells.yaml reloads, Consul.
			stopCells, err := followCells(ctx, g, log, reg, health, cells)
			if err != nil {
				return err
			}
			defer stopCells(context.Background())
			srv, err := serveHTTP(listen, withMetrics(reg, telemetry.InstrumentHTTP(reg, "control", p.tp, s.Handler())))
			if err != nil {
				return err
			}
			log.Info("control plane up", "listen", srv.addr(), "cells", cells.IDs(), "database", database != "")
			<-ctx.Done()
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return errors.Join(srv.shutdown(stopCtx), health.Stop(stopCtx), s.Stop(stopCtx))
		},
	}
	cmd.Flags().StringVar(&database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL holding the player directory (env LIVECELL_DATABASE_URL); empty keeps it in memory")
	cmd.Flags().StringVar(&listen, "listen", env("LIVECELL_CONTROL_LISTEN", defaultControlListen), "listen address (env LIVECELL_CONTROL_LISTEN)")
	probes.register(cmd)
	cmd.AddCommand(newControlOpsCmds(g)...)
	return cmd
}

// controlStore is the control plane's storage: the directory, and what
// moves players' data when it rehomes them.
type controlStore struct {
	dir interface {
		router.HomeLookup
		control.Store
	}
	mover control.Mover // nil without a database
	close func()
}

// openControlStore opens the directory in memory, or in PostgreSQL (or
// CockroachDB) with every component's schema migrated, since a rehome
// moves the player's rows in all of them.
func openControlStore(ctx context.Context, log *slog.Logger, url string) (*controlStore, error) {
	if url == "" {
		log.Warn("control plane without --database: the directory is in memory and rehoming is off")
		return &controlStore{dir: directory.NewMemory(), close: func() {}}, nil
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := db.MigrateSchemas(ctx, pool, schemas()); err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("using PostgreSQL", "host", hostOf(pool))
	return &controlStore{dir: directory.NewPostgres(pool), mover: dbMover{pool: pool}, close: pool.Close}, nil
}

// dbMover rehomes a player across every component's tables in one
// transaction (db.Rehome).
type dbMover struct{ pool *pgxpool.Pool }

func (m dbMover) Rehome(ctx context.Context, playerID, cellID string) error {
	return db.Rehome(ctx, m.pool, schemas(), playerID, cellID)
}

// probeFlags tune how the router and the control plane probe cells. The
// defaults suit production; the local world probes faster so that a drill's
// failover takes about a second.
type probeFlags struct {
	interval, timeout time.Duration
	fail, rise        int
}

func (p *probeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&p.interval, "probe-interval", 2*time.Second, "time between probes of every cell's /v1/status")
	fl.DurationVar(&p.timeout, "probe-timeout", time.Second, "time a probe may take")
	fl.IntVar(&p.fail, "fail-threshold", 3, "consecutive failed probes that mark a cell down")
	fl.IntVar(&p.rise, "rise-threshold", 2, "consecutive good probes that bring a down cell back")
}

func (p probeFlags) config(cells *config.Cells) router.Config {
	return router.Config{Cells: cells, ProbeInterval: p.interval, ProbeTimeout: p.timeout, FailThreshold: p.fail, RiseThreshold: p.rise}
}

// controlReader is the router's view of the control plane: homes (cached,
// so that known players keep resolving while it is down) and the routing
// table, from one client.
func controlReader(baseURL string, ttl time.Duration, reg prometheus.Registerer) (*control.HomeCache, *control.Client, error) {
	// A short timeout: past it the cache answers from memory, and a
	// resolve that waits longer than this is a failed resolve anyway.
	c := &control.Client{BaseURL: baseURL, HTTP: &http.Client{Timeout: 2 * time.Second}}
	homes, err := control.NewHomeCache(c, control.HomeCacheConfig{TTL: ttl, Metrics: reg})
	if err != nil {
		return nil, nil, err
	}
	return homes, c, nil
}

// controlDirectory is a cell's writer of new players' homes: the control
// plane's API, with a server credential minted from this process's signing
// key, or LIVECELL_SERVER_TOKEN when it has none.
func controlDirectory(baseURL string, keys *token.KeySet, subject string) (*control.Client, error) {
	c := &control.Client{BaseURL: baseURL, HTTP: &http.Client{Timeout: 5 * time.Second}}
	switch static := env("LIVECELL_SERVER_TOKEN", ""); {
	case keys.CanSign():
		signer, err := token.NewSigner(keys, nil)
		if err != nil {
			return nil, err
		}
		c.Token = (&mintedToken{signer: signer, subject: subject, scopes: []string{control.ScopeDirectoryWrite}, ttl: time.Hour}).Token
	case static != "":
		c.Token = func(context.Context) (string, error) { return static, nil }
	default:
		return nil, errors.New("--control needs a signing key (LIVECELL_SIGNING_KEY_FILE) or a server token with scope " + control.ScopeDirectoryWrite + " (LIVECELL_SERVER_TOKEN)")
	}
	return c, nil
}

// mintedToken mints and caches one server credential, renewing it well
// before it expires.
type mintedToken struct {
	signer  *token.Signer
	subject string
	scopes  []string
	ttl     time.Duration

	mu  sync.Mutex
	tok string
	exp time.Time
}

func (m *mintedToken) Token(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tok != "" && time.Until(m.exp) > m.ttl/4 {
		return m.tok, nil
	}
	tok, exp, err := m.signer.IssueServer(m.subject, m.scopes, m.ttl)
	if err != nil {
		return "", err
	}
	m.tok, m.exp = tok, exp
	return tok, nil
}
