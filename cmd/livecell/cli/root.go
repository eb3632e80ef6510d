// Package cli implements the livecell command line: one file per
// subcommand, with the flags and environment overrides every process shares
// declared once in this file.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/telemetry"
)

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(stderr, "livecell:", err)
		return 1
	}
	return 0
}

// globals are the flags every subcommand shares.
type globals struct {
	stdout, stderr io.Writer
	configPath     string
	logFormat      string
	logLevel       string
	tracing        string
	otlpEndpoint   string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "livecell",
		Short: "An edge-first regional cell backend for live-service multiplayer games",
		Long: `livecell runs the backend of a live-service multiplayer game as regional cells:
each cell runs accounts and the TCP gateway (more services to come), a thin
global router homes every player to a cell, and cells.yaml describes them all.

Start the whole local world with "livecell dev" (or "make run"), then check it
end to end with "livecell probe --json".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", env("LIVECELL_CONFIG", ""), "path to cells.yaml (env LIVECELL_CONFIG; default: the embedded cells.yaml)")
	pf.StringVar(&g.logFormat, "log-format", env("LIVECELL_LOG_FORMAT", "json"), "log format: json or text (env LIVECELL_LOG_FORMAT)")
	pf.StringVar(&g.logLevel, "log-level", env("LIVECELL_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env LIVECELL_LOG_LEVEL)")
	pf.StringVar(&g.tracing, "tracing", env("LIVECELL_TRACING", "none"), "trace exporter: none, stdout or otlp (env LIVECELL_TRACING)")
	pf.StringVar(&g.otlpEndpoint, "otlp-endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"), "OTLP/HTTP endpoint when --tracing=otlp")

	root.AddCommand(
		newDevCmd(g),
		newCellCmd(g),
		newGatewayCmd(g),
		newRouterCmd(g),
		newEdgeCmd(g),
		newControlCmd(g),
		newWorldCmd(g),
		newChaosCmd(g),
		newProbeCmd(g),
		newLoadtestCmd(g),
		newEventsCmd(g),
		newBenchGatewayCmd(g),
		newCellsCmd(g),
		newKeysCmd(g),
		newMigrateCmd(g),
		newVersionCmd(g),
	)
	return root
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(g.logLevel))); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", g.logLevel, err)
	}
	return telemetry.NewLogger(g.stderr, g.logFormat, lvl)
}

func (g *globals) cells() (*config.Cells, error) {
	return config.Load(g.configPath)
}

// process is what every long-running subcommand sets up first.
type process struct {
	log   *slog.Logger
	cells *config.Cells
	tp    trace.TracerProvider
	// shutdown flushes traces; call it when the process ends.
	shutdown func(context.Context) error
}

func (g *globals) process(ctx context.Context, service string) (*process, error) {
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	cells, err := g.cells()
	if err != nil {
		return nil, err
	}
	tp, shutdown, err := telemetry.SetupTracing(ctx, telemetry.TracingConfig{
		Exporter: g.tracing, Endpoint: g.otlpEndpoint, ServiceName: service, SampleRatio: 1,
	})
	if err != nil {
		return nil, err
	}
	return &process{log: log, cells: cells, tp: tp, shutdown: shutdown}, nil
}
