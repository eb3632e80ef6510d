package cli

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/config"
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
		Short: "Run the global control plane: the player directory and the health of every cell",
		Long: `Control owns the player → home-cell directory and serves it to the other
processes of a deployment, and probes every cell's /v1/status for health and
load (with the router's hysteresis):

  GET /v1/directory/{player}   → {"player_id","cell"}, or 404 unknown_player
  PUT /v1/directory/{player}   {"cell"} with a server credential holding the
                               scope directory.write (cells' accounts write
                               new players' homes this way)
  GET /v1/cells                → health and load of every cell

Cells point at it with --control, routers with --control. The directory is
in memory unless --database names PostgreSQL (or CockroachDB). It verifies
credentials with the keys of LIVECELL_SIGNING_KEY_FILE (or LIVECELL_JWKS_FILE).`,
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
			st, err := openStores(ctx, log, database)
			if err != nil {
				return err
			}
			defer st.close()
			// Health is the router's prober: the same rules, the same
			// hysteresis. Its resolve side is unused here.
			health, err := router.New(probes.config(cells), router.Deps{Logger: log.With("component", "health"), Homes: st.directory})
			if err != nil {
				return err
			}
			if err := health.Start(ctx); err != nil {
				return err
			}
			reg := telemetry.NewRegistry("control")
			// The same cells as the routers: cells.yaml reloads, Consul.
			stopCells, err := followCells(ctx, g, log, reg, health, cells)
			if err != nil {
				return err
			}
			defer stopCells(context.Background())
			s, err := control.New(control.Deps{Logger: log, Directory: st.directory, Health: health, Verifier: token.NewVerifier(keys, nil)})
			if err != nil {
				return err
			}
			srv, err := serveHTTP(listen, withMetrics(reg, telemetry.InstrumentHTTP(reg, "control", p.tp, s.Handler())))
			if err != nil {
				return err
			}
			log.Info("control plane up", "listen", srv.addr(), "cells", cells.IDs(), "database", database != "")
			<-ctx.Done()
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return errors.Join(srv.shutdown(stopCtx), health.Stop(stopCtx))
		},
	}
	cmd.Flags().StringVar(&database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL holding the player directory (env LIVECELL_DATABASE_URL); empty keeps it in memory")
	cmd.Flags().StringVar(&listen, "listen", env("LIVECELL_CONTROL_LISTEN", defaultControlListen), "listen address (env LIVECELL_CONTROL_LISTEN)")
	probes.register(cmd)
	return cmd
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

// controlHomes is the router's view of the player directory: the control
// plane's, cached so that known players keep resolving while it is down.
func controlHomes(baseURL string, ttl time.Duration, reg prometheus.Registerer) (*control.HomeCache, error) {
	// A short timeout: past it the cache answers from memory, and a
	// resolve that waits longer than this is a failed resolve anyway.
	c := &control.Client{BaseURL: baseURL, HTTP: &http.Client{Timeout: 2 * time.Second}}
	return control.NewHomeCache(c, control.HomeCacheConfig{TTL: ttl, Metrics: reg})
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
