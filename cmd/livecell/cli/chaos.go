package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/chaos"
	mpworld "github.com/livecell/livecell/chaos/world" // "world" is the dev world type here
)

func newChaosCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run chaos drills against the multi-process world (livecell world up)",
	}
	cmd.AddCommand(newChaosKillCellCmd(g))
	return cmd
}

func newChaosKillCellCmd(g *globals) *cobra.Command {
	var (
		dir    string
		o      chaos.KillCellOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "kill-cell <cell>",
		Short: "Kill a cell with SIGKILL under connected players and measure the failover",
		Long: `Kill-cell connects --players bots spread over the running cells of the world,
straight to their gateways, and --edge-players more through the world's edge
(rotating over its TCP, QUIC and WebSocket listeners), SIGKILLs every process
of <cell>, and measures: the time until each direct player of that cell is
connected again to its failover cell (resolving through the router and
resuming its session); the time until the edge has moved each edge player's
session to the failover cell, with the player's own connection never
closing and only in-flight requests failing (retryable); whether players of
the other cells saw anything; and whether the routers answered every
resolve throughout. It prints both time-to-recover distributions
(p50/p99/max) and exits 1 when any player missed --bound, an edge player's
connection closed, an unaffected player was disturbed or a resolve failed.

The cell stays dead afterwards: restart the world with
"livecell world down && livecell world up".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := mpworld.Load(dir)
			if err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			o.World, o.Cell, o.Logger = st, args[0], log
			rep, err := chaos.KillCell(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(g.stdout, rep); err != nil {
					return err
				}
			} else {
				printKillCell(g.stdout, rep)
			}
			if !rep.Pass {
				return exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", env("LIVECELL_WORLD_DIR", defaultWorldDir), "world directory (env LIVECELL_WORLD_DIR)")
	fl.IntVar(&o.Players, "players", chaos.DefaultPlayers, "bots to connect straight to gateways, spread over the running cells")
	fl.IntVar(&o.EdgePlayers, "edge-players", 0, fmt.Sprintf("bots to connect through the world's edge, spread over the cells and its transports (0: %d when the world runs an edge; -1: none)", chaos.DefaultEdgePlayers))
	fl.DurationVar(&o.Bound, "bound", chaos.DefaultBound, "time from the kill within which every affected player must be back")
	fl.DurationVar(&o.ResolveInterval, "resolve-interval", chaos.DefaultResolveInterval, "how often each router is asked during the drill")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printKillCell(out io.Writer, r *chaos.Report) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(out, "kill-cell %s: %s\n", r.Cell, verdict)
	fmt.Fprintf(out, "  killed          %v\n", r.Killed)
	fmt.Fprintf(out, "  players         %d: %d on %s (affected), %d elsewhere\n", r.Players, r.Affected, r.Cell, r.Unaffected)
	fmt.Fprintf(out, "  recovered       %d/%d on %s (%d resumed their session), bound %s\n", r.Recovered, r.Affected, r.FailoverCell, r.Resumed, time.Duration(r.BoundMS*float64(time.Millisecond)))
	d := r.TimeToRecover
	fmt.Fprintf(out, "  time to recover p50 %.0f ms   p99 %.0f ms   max %.0f ms   (n=%d)\n", d.P50MS, d.P99MS, d.MaxMS, d.N)
	d = r.TimeToDetect
	fmt.Fprintf(out, "  time to detect  p50 %.0f ms   p99 %.0f ms   max %.0f ms\n", d.P50MS, d.P99MS, d.MaxMS)
	fmt.Fprintf(out, "  unaffected      %d disconnects\n", r.UnaffectedDisconnects)
	if r.EdgePlayers > 0 {
		fmt.Fprintf(out, "  edge players    %d: %d on %s (affected, by transport %v), %d elsewhere\n", r.EdgePlayers, r.EdgeAffected, r.Cell, r.EdgeTransports, r.EdgePlayers-r.EdgeAffected)
		fmt.Fprintf(out, "  edge moved      %d/%d to %s, %d connections closed, %d requests interrupted (retryable)\n", r.EdgeRecovered, r.EdgeAffected, r.FailoverCell, r.EdgeDisconnects, r.EdgeInterrupted)
		d := r.EdgeTimeToRecover
		fmt.Fprintf(out, "  edge recover    p50 %.0f ms   p99 %.0f ms   max %.0f ms   (n=%d)\n", d.P50MS, d.P99MS, d.MaxMS, d.N)
	}
	fmt.Fprintf(out, "  routers         %d answered %d resolves, %d failed %v\n", r.Routers, r.Resolves, r.ResolveFailures, r.Placements)
	for _, f := range r.Failures {
		fmt.Fprintf(out, "  FAILURE: %s\n", f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "  note: %s\n", n)
	}
}
