package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCellsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cells",
		Short: "Inspect and validate cells.yaml",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate [cells.yaml]",
		Short: "Check cells.yaml and list every problem with its line number",
		Long: `Validate parses cells.yaml strictly (unknown keys are errors) and checks its
rules: unique cell ids, host:port endpoints, positive capacities, known states,
failover targets that exist, and at least one active cell. Without an argument
it checks --config, or the embedded default.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.configPath = args[0]
			}
			c, err := g.cells()
			if err != nil {
				fmt.Fprintln(g.stderr, err)
				return exitError{code: 1}
			}
			src := g.configPath
			if src == "" {
				src = "embedded cells.yaml"
			}
			fmt.Fprintf(g.stdout, "%s: ok, %d cells\n", src, len(c.Cells))
			for _, cl := range c.Cells {
				fmt.Fprintf(g.stdout, "  %-12s %-16s %-8s gateway=%s api=%s capacity=%d failover=%v\n",
					cl.ID, cl.Region, cl.State, cl.Gateway, cl.API, cl.Capacity, cl.Failover)
			}
			return nil
		},
	})
	return cmd
}
