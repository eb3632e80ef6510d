package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/global/placement"
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
		place    placement.Policy
	)
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the global router (GET /v1/resolve) alone",
		Long: `Router answers GET /v1/resolve from memory: a known player's home cell from the
player directory (or the override table's pin or quarantine), the failover
cell when a home cell is down or draining, and a new player's placement by
the round-trip times the client measured (rtt=cell:ms,...) traded against
each cell's capacity headroom, else by region hint. It probes every cell's
/v1/status for health and load. Several routers can run side by side.

The player directory, the override table and cell states set at run time
(drains) are read from the control plane (--control), cached so that the
router keeps answering while it is down, or straight from the database
(--database); with neither the router uses an empty in-memory directory,
which only suits "livecell dev".`,
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
			var (
				homes   router.HomeLookup
				routing router.RoutingSource
			)
			if ctrl != "" {
				cache, client, err := controlReader(ctrl, cacheTTL, reg)
				if err != nil {
					return err
				}
				homes, routing = cache, client
				// Rehomed players resolve to their new cell within a
				// second, not a cache TTL later.
				go cache.FollowMoves(ctx, client, time.Second)
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
				if sr, ok := st.directory.(storeRouting); ok {
					routing = control.StoreRouting{Store: sr}
				}
			}
			if place.Target <= 0 || place.Target >= 1 || place.PenaltyMS <= 0 {
				return fmt.Errorf("--placement-headroom must be between 0 and 1 and --placement-penalty-ms positive")
			}
			rcfg := probes.config(cells)
			rcfg.Placement = place
			r, err := router.New(rcfg, router.Deps{Logger: log, Metrics: reg, Homes: homes, Routing: routing})
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
	cmd.Flags().Float64Var(&place.Target, "placement-headroom", placement.DefaultTarget, "placement: load (sessions/capacity) up to which a cell costs only its RTT; above it a penalty spills new players to the next-nearest cell")
	cmd.Flags().Float64Var(&place.PenaltyMS, "placement-penalty-ms", placement.DefaultPenaltyMS, "placement: milliseconds added to a full cell's RTT (linear from the headroom line)")
	probes.register(cmd)
	return cmd
}

// storeRouting is a directory store the router can read the routing table
// from when it reads the database itself (directory.Postgres).
type storeRouting interface {
	Overrides(ctx context.Context) ([]directory.Override, error)
	CellStates(ctx context.Context) ([]directory.CellState, error)
}
