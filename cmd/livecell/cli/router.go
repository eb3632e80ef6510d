package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/internal/telemetry"
	"github.com/livecell/livecell/router"
)

func newRouterCmd(g *globals) *cobra.Command {
	var (
		database string
		listen   string
		ctrl     string // control plane URL: read homes there, not in the database
		cacheTTL time.Duration
		probes   probeFlags
	)
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the global router (GET /v1/resolve) alone",
		Long: `Router answers GET /v1/resolve from memory: a known player's home cell from the
player directory, a new player's placement by region hint and capacity
headroom, and the failover cell when a home cell is down. It probes every
cell's /v1/status for health and load. Several routers can run side by side.

The player directory is read from the control plane (--control), cached so
that known players keep resolving while it is down, or straight from the
database (--database); with neither the router uses an empty in-memory
directory, which only suits "livecell dev".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := g.process(ctx, "livecell-router")
			if err != nil {
				return err
			}
			defer p.shutdown(context.Background())
			log, cells := p.log, p.cells
			reg := telemetry.NewRegistry("router")
			var homes router.HomeLookup
			if ctrl != "" {
				if homes, err = controlHomes(ctrl, cacheTTL, reg); err != nil {
					return err
				}
			} else {
				st, err := openStores(ctx, log, database)
				if err != nil {
					return err
				}
				defer st.close()
				if database == "" {
					log.Warn("router without --control or --database: the player directory is empty and private to this process")
				}
				homes = st.directory
			}
			r, err := router.New(probes.config(cells), router.Deps{Logger: log, Metrics: reg, Homes: homes})
			if err != nil {
				return err
			}
			if err := r.Start(ctx); err != nil {
				return err
			}
			stopCells, err := followCells(ctx, g, log, reg, r, cells) // --config hot reload; Consul discovery
			if err != nil {
				return err
			}
			defer stopCells(context.Background())
			if listen == "" {
				listen = cells.Router.Listen
			}
			srv, err := serveHTTP(listen, withMetrics(reg, telemetry.InstrumentHTTP(reg, "router", p.tp, r.Handler())))
			if err != nil {
				return err
			}
			log.Info("router up", "listen", srv.addr(), "cells", cells.IDs())
			<-ctx.Done()
			stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = r.Stop(stopCtx)
			return srv.shutdown(stopCtx)
		},
	}
	cmd.Flags().StringVar(&database, "database", env("LIVECELL_DATABASE_URL", ""), "PostgreSQL/CockroachDB URL holding the player directory (env LIVECELL_DATABASE_URL)")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (default: router.listen in cells.yaml)")
	cmd.Flags().StringVar(&ctrl, "control", env("LIVECELL_CONTROL_URL", ""), "control plane base URL to read player homes from (env LIVECELL_CONTROL_URL)")
	cmd.Flags().DurationVar(&cacheTTL, "home-cache-ttl", 30*time.Second, "with --control: how long a player's home is answered from memory before asking again")
	probes.register(cmd)
	return cmd
}
