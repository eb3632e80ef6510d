package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/cell/accounts"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/router"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		database   string
		drainGrace time.Duration
		limits     loginLimitFlags
		commerce   commerceFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the local world: the router and every cell of cells.yaml in one process",
		Long: `Dev starts the global router and every cell in cells.yaml (accounts, gateway,
HTTP API) in this one process on loopback, prints what listens where, and
stops cleanly on Ctrl-C (a second Ctrl-C stops at once).

It needs nothing installed: storage is embedded and in-memory unless
--database points at PostgreSQL (or CockroachDB), and signing keys are
generated at start-up unless LIVECELL_SIGNING_KEY_FILE is set. Every cell
starts with the development catalog, and its store runs in TEST MODE unless
Stripe keys are set: try a purchase with "livecell probe --purchase".` + platformHelp + storeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := g.process(ctx, "livecell-dev")
			if err != nil {
				return err
			}
			defer p.shutdown(context.Background())

			storeCfg, eventsCfg, err := commerceConfig(p.log, commerce)
			if err != nil {
				return err
			}
			w, err := startWorld(ctx, p.log, p.cells, worldOptions{database: database, tracer: p.tp, drainGrace: drainGrace, rateLimit: limits.config(),
				store: storeCfg, events: eventsCfg})
			if err != nil {
				return err
			}
			w.printSummary(g.stdout)
			<-ctx.Done()
			fmt.Fprintln(g.stdout, "stopping (Ctrl-C again to stop at once)…")
			stopCtx, cancel := context.WithTimeout(context.Background(), drainGrace+5*time.Second)
			defer cancel()
			return w.stop(stopCtx)
		},
	}
	cmd.Flags().StringVar(&database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL (env LIVECELL_DATABASE_URL); empty uses the embedded store")
	cmd.Flags().DurationVar(&drainGrace, "drain-grace", 2*time.Second, "on shutdown, how long players get to leave after being told to reconnect")
	limits.register(cmd)
	commerce.register(cmd)
	return cmd
}

type worldOptions struct {
	database   string
	tracer     trace.TracerProvider
	drainGrace time.Duration
	// bindAny listens on 127.0.0.1:0 instead of the cells.yaml ports (tests).
	bindAny bool
	// argon2 overrides the password hashing cost (tests).
	argon2    *accounts.Argon2Params
	rateLimit accounts.RateLimitConfig
	store     cell.StoreConfig
	events    cell.EventsConfig
}

// world is the local world: every cell of cells.yaml and the router.
type world struct {
	log       *slog.Logger
	cells     []*cell.Cell
	cfg       *config.Cells // with the bound addresses
	router    *router.Router
	routerSrv *httpServer
	stores    *stores
}

func startWorld(ctx context.Context, log *slog.Logger, cells *config.Cells, o worldOptions) (_ *world, err error) {
	keys, err := loadKeys(log, true)
	if err != nil {
		return nil, err
	}
	st, err := openStores(ctx, log, o.database)
	if err != nil {
		return nil, err
	}
	var platforms cell.Deps
	if err := platformVerifiers(ctx, log, &platforms); err != nil {
		st.close()
		return nil, err
	}
	w := &world{log: log, stores: st}
	defer func() {
		if err != nil {
			_ = w.stop(context.Background())
		}
	}()

	bound := *cells
	bound.Cells = append([]config.Cell(nil), cells.Cells...)
	for i, cl := range cells.Cells {
		if cl.State == config.StateDisabled {
			continue
		}
		cfg := cell.Config{Cell: cl, Cells: cells, Accounts: accounts.Config{PasswordAuth: true, Argon2: accounts.DefaultArgon2(), RateLimit: o.rateLimit}}
		cfg.Gateway.DrainGrace = o.drainGrace
		cfg.Store, cfg.Events, cfg.SeedDevCatalog = o.store, o.events, true
		if o.argon2 != nil {
			cfg.Accounts.Argon2 = *o.argon2
		}
		if o.bindAny {
			cfg.APIListen, cfg.GatewayListen = "127.0.0.1:0", "127.0.0.1:0"
		}
		c, err := cell.New(cfg, cell.Deps{
			Logger: log, Keys: keys, AccountsStore: st.accounts, Directory: st.directory, Tracer: o.tracer,
			Steam: platforms.Steam, Epic: platforms.Epic, Commerce: st.commerce(cl.ID),
		})
		if err != nil {
			return nil, err
		}
		if err := c.Start(ctx); err != nil {
			return nil, err
		}
		w.cells = append(w.cells, c)
		bound.Cells[i].API, bound.Cells[i].Gateway = c.APIAddr(), c.GatewayAddr()
	}
	w.cfg = &bound

	reg := telemetry.NewRegistry("router")
	r, err := router.New(router.Config{Cells: &bound}, router.Deps{Logger: log.With("component", "router"), Metrics: reg, Homes: st.directory})
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	w.router = r
	addr := bound.Router.Listen
	if o.bindAny || addr == "" {
		addr = "127.0.0.1:0"
	}
	w.routerSrv, err = serveHTTP(addr, withMetrics(reg, telemetry.InstrumentHTTP(reg, "router", o.tracer, r.Handler())))
	if err != nil {
		return nil, fmt.Errorf("router listen: %w", err)
	}
	w.cfg.Router.Listen = w.routerSrv.addr()
	log.Info("local world up", "router", w.routerSrv.addr(), "cells", len(w.cells))
	return w, nil
}

func (w *world) routerURL() string { return "http://" + w.cfg.Router.Listen }

func (w *world) printSummary(out io.Writer) {
	fmt.Fprintln(out, "livecell local world is up")
	fmt.Fprintf(out, "  router   http://%s   (GET /v1/resolve, /v1/cells, /metrics)\n", w.cfg.Router.Listen)
	for _, c := range w.cfg.Cells {
		if c.State == config.StateDisabled {
			continue
		}
		fmt.Fprintf(out, "  cell %-8s gateway tcp://%s   api http://%s   (%s)\n", c.ID, c.Gateway, c.API, c.Region)
	}
	fmt.Fprintln(out, "check it with: livecell probe --json      buy something: livecell probe --purchase      stop with Ctrl-C")
}

// stop drains every gateway, then stops the cells and the router.
func (w *world) stop(ctx context.Context) error {
	errs := make([]error, len(w.cells))
	var wg sync.WaitGroup
	for i, c := range w.cells {
		wg.Go(func() {
			if err := c.Drain(ctx, "shutdown"); err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if w.routerSrv != nil {
		errs = append(errs, w.routerSrv.shutdown(ctx))
	}
	if w.router != nil {
		errs = append(errs, w.router.Stop(ctx))
	}
	for _, c := range w.cells {
		errs = append(errs, c.Stop(ctx))
	}
	if w.stores != nil {
		w.stores.close()
	}
	return errors.Join(errs...)
}
