package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/gateway/benchrig"
)

func newBenchGatewayCmd(g *globals) *cobra.Command {
	var (
		cfg     benchrig.Config
		role    string
		server  benchrig.ServerConfig
		client  benchrig.ClientConfig
		phase   time.Duration
		settle  time.Duration
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "bench-gateway",
		Short: "Benchmark the gateway on this machine: sessions, memory per session, round trips, pushes (JSON)",
		Long: `bench-gateway starts gateway processes sharing one port (SO_REUSEPORT) and
load-generating processes dialing from 127.0.0.2, 127.0.0.3, …, connects
--sessions authenticated sessions, reads the gateways' memory once they are
idle, then runs an open-loop round-trip phase (--rtt-rate OpEcho requests per
second) and a push fan-out phase (--push-rate pushes per second), and prints
one JSON summary. Progress goes to stderr. See docs/benchmarks.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch role {
			case "server":
				return benchrig.RunServer(ctx, server, os.Stdin, g.stdout)
			case "client":
				return benchrig.RunClient(ctx, client, os.Stdin, g.stdout)
			case "":
			default:
				return fmt.Errorf("bench-gateway: unknown --role %q", role)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Exe, cfg.Args = exe, []string{"bench-gateway"}
			cfg.Phase, cfg.Settle = phase, settle
			cfg.Log = g.stderr
			if !verbose {
				cfg.Log = nil
			}
			sum, err := benchrig.Run(ctx, cfg)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(sum)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Sessions, "sessions", 100_000, "authenticated sessions to hold")
	fl.IntVar(&cfg.Servers, "gateways", 0, "gateway processes (0: enough to keep each under 15,000 sessions, with headroom)")
	fl.IntVar(&cfg.Clients, "clients", 0, "load-generator processes (0: 15,000 sessions each)")
	fl.StringVar(&cfg.Engine, "engine", "", "gateway engine: epoll or goroutine (default: the platform's)")
	fl.IntVar(&cfg.Loops, "loops", 1, "event loops per gateway process (epoll engine)")
	fl.Float64Var(&cfg.RTTRate, "rtt-rate", 100_000, "echo round trips per second over all sessions (0 skips)")
	fl.Float64Var(&cfg.PushRate, "push-rate", 250_000, "pushes per second over all sessions (0 skips)")
	fl.DurationVar(&phase, "phase", 10*time.Second, "length of the round-trip and push phases")
	fl.DurationVar(&settle, "settle", 5*time.Second, "idle time before the gateways' memory is read")
	fl.BoolVarP(&verbose, "verbose", "v", true, "progress lines on stderr")
	// The rig re-executes this command for its processes.
	fl.StringVar(&role, "role", "", "internal: server or client process of the rig")
	fl.StringVar(&server.Listen, "listen", "", "internal (server)")
	fl.StringVar(&server.Engine, "engine-server", "", "internal (server)")
	fl.IntVar(&server.Loops, "loops-server", 0, "internal (server)")
	fl.StringVar(&client.Target, "target", "", "internal (client)")
	fl.StringVar(&client.Source, "source", "127.0.0.1", "internal (client)")
	fl.IntVar(&client.Sessions, "client-sessions", 0, "internal (client)")
	fl.IntVar(&client.FirstPlayer, "first-player", 0, "internal (client)")
	fl.StringVar(&server.KeyFile, "key-file", "", "internal")
	for _, name := range []string{"role", "listen", "engine-server", "loops-server", "target", "source", "client-sessions", "first-player", "key-file"} {
		_ = fl.MarkHidden(name)
	}
	cmd.PreRun = func(*cobra.Command, []string) { client.KeyFile = server.KeyFile }
	return cmd
}
