package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/livecell/livecell/cell"
	"github.com/livecell/livecell/global/registry"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/router"
)

func newCellsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cells",
		Short: "Inspect and validate cells.yaml",
	}
	cmd.AddCommand(newCellsValidateCmd(g))
	return cmd
}

func newCellsValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [cells.yaml ...]",
		Short: "Check cells.yaml and list every problem with its line number",
		Long: `Validate parses each cells.yaml strictly and prints every problem as
file:line: message, then exits 1 if any file has one. It checks: unknown or
repeated keys, values of the wrong type, the version, unique cell and edge
ids, host:port endpoints (gateway, api, services, edges, router.listen) and
that no two share an address, capacities, states, failover lists (known
cells, not itself, no repeats, no dead failover cycle) and that at least one
cell is active. Warnings (a failover list with no active cell, a service this
binary does not run) are printed but do not fail the check.

Without an argument it checks --config, or the embedded default. The schema
and the rules are documented in docs/cells.md.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := args
			if len(paths) == 0 {
				paths = []string{g.configPath}
			}
			failed := 0
			for _, p := range paths {
				if !validateCellsFile(g.stdout, g.stderr, p) {
					failed++
				}
			}
			if failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

// validateCellsFile checks one file (the embedded default when path is
// empty), writes the outcome and reports whether the file is valid.
func validateCellsFile(stdout, stderr io.Writer, path string) bool {
	name := path
	if name == "" {
		name = "embedded cells.yaml"
	}
	c, err := config.Load(path)
	if err != nil {
		ve, ok := errors.AsType[*config.ValidationError](err)
		if !ok {
			fmt.Fprintln(stderr, err)
			return false
		}
		for _, p := range ve.Problems {
			fmt.Fprintln(stderr, p.In(name))
		}
		printWarnings(stderr, name, ve.Warnings)
		fmt.Fprintf(stderr, "%s: invalid, %s\n", name, count(len(ve.Problems), "problem"))
		return false
	}
	fmt.Fprintf(stdout, "%s: ok, %s\n", name, count(len(c.Cells), "cell"))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, cl := range c.Cells {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tgateway=%s\tapi=%s\tcapacity=%d\tfailover=%s%s\n",
			cl.ID, cl.Region, cl.State, cl.Gateway, cl.API, cl.Capacity, list(cl.Failover), extras(cl))
	}
	_ = tw.Flush()
	printWarnings(stderr, name, append(c.Warnings(), c.CheckServices(cell.AllServices())...))
	return true
}

func printWarnings(w io.Writer, name string, ws []config.Problem) {
	slices.SortStableFunc(ws, func(a, b config.Problem) int { return a.Line - b.Line })
	for _, p := range ws {
		p.Msg = "warning: " + p.Msg
		fmt.Fprintln(w, p.In(name))
	}
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func list(s []string) string { return "[" + strings.Join(s, ",") + "]" }

// extras summarises the optional keys of a cell for the validate listing.
func extras(cl config.Cell) string {
	var parts []string
	if cl.Backbone != "" {
		parts = append(parts, "backbone="+cl.Backbone)
	}
	if n := len(cl.Services); n > 0 {
		parts = append(parts, fmt.Sprintf("services=%d", n))
	}
	if n := len(cl.Edges); n > 0 {
		ids := make([]string, n)
		for i, e := range cl.Edges {
			ids[i] = e.ID
		}
		parts = append(parts, "edges="+list(ids))
	}
	if len(parts) == 0 {
		return ""
	}
	return "  " + strings.Join(parts, " ")
}

// consulFromEnv reads the Consul agent to use from the environment
// variables Consul's own tools read. An empty Address means no Consul:
// discovery then comes from cells.yaml and active probing.
func consulFromEnv() registry.ConsulConfig {
	return registry.ConsulConfig{
		Address:    os.Getenv("CONSUL_HTTP_ADDR"),
		Token:      os.Getenv("CONSUL_HTTP_TOKEN"),
		Datacenter: os.Getenv("CONSUL_DATACENTER"),
	}
}

// cellsReloadInterval is how often a process started with --config checks
// the file for changes.
const cellsReloadInterval = 3 * time.Second

// routerCells is what keeps a router's cells current.
type routerCells interface {
	SetCells(*config.Cells)
	WatchCellsFile(ctx context.Context, cfg router.WatchConfig) error
}

var _ routerCells = (*router.Router)(nil)

// followCells keeps r's view of the cells current for as long as ctx lives
// and until the returned stop is called:
//
//   - with --config, the file is polled and each valid change applied; a
//     bad edit is logged with its line numbers and leaves r on its last
//     good config;
//   - with CONSUL_HTTP_ADDR, endpoints come from Consul's healthy instances
//     (global/registry) and file changes go through the registry.
//
// With neither (the embedded cells.yaml) there is nothing to follow.
func followCells(ctx context.Context, g *globals, log *slog.Logger, metrics prometheus.Registerer, r routerCells, cells *config.Cells) (stop func(context.Context) error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stops := []func(context.Context) error{func(context.Context) error { cancel(); wg.Wait(); return nil }}
	stop = func(ctx context.Context) error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i](ctx))
		}
		return errors.Join(errs...)
	}
	apply := r.SetCells
	if consul := consulFromEnv(); consul.Enabled() {
		reg, err := registry.New(registry.Config{Cells: cells, Consul: consul}, registry.Deps{Logger: log.With("component", "registry"), Metrics: metrics})
		if err != nil {
			cancel()
			return nil, err
		}
		if err := reg.Start(ctx); err != nil {
			cancel()
			return nil, err
		}
		stops = append(stops, reg.Stop)
		apply = reg.SetCells
		wg.Go(func() {
			for {
				changed := reg.Changed()
				r.SetCells(reg.Snapshot().Resolved())
				select {
				case <-ctx.Done():
					return
				case <-changed:
				}
			}
		})
		log.Info("cell endpoints from Consul", "consul", consul.Address)
	}
	if g.configPath != "" {
		wg.Go(func() {
			_ = r.WatchCellsFile(ctx, router.WatchConfig{Path: g.configPath, Interval: cellsReloadInterval, Apply: apply})
		})
		log.Info("watching cells.yaml for changes", "path", g.configPath, "every", cellsReloadInterval)
	}
	return stop, nil
}
