package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	mpworld "github.com/livecell/livecell/chaos/world"
	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/token"
)

// opsFlags are what every operator subcommand of `livecell control` needs:
// where the control plane is and a credential for it.
type opsFlags struct {
	control string
	world   string
	asJSON  bool
	timeout time.Duration
}

func (f *opsFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.control, "control", env("LIVECELL_CONTROL_URL", "http://"+defaultControlListen), "control plane base URL (env LIVECELL_CONTROL_URL)")
	fl.StringVar(&f.world, "world", "", "operate the multi-process local world in this directory (its control plane and signing key), e.g. .world")
	fl.BoolVar(&f.asJSON, "json", false, "print the control plane's JSON answer")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
}

// client returns a control plane client whose writes carry a server
// credential with scope control.admin: LIVECELL_SERVER_TOKEN when set, else
// one minted with the signing key (LIVECELL_SIGNING_KEY_FILE, or the
// world's).
func (f *opsFlags) client() (*control.Client, error) {
	base, keyFile := f.control, os.Getenv("LIVECELL_SIGNING_KEY_FILE")
	if f.world != "" {
		st, err := mpworld.Load(f.world)
		if err != nil {
			return nil, err
		}
		if base = st.ControlURL(); base == "" {
			return nil, fmt.Errorf("the world in %s runs no control plane", f.world)
		}
		if keyFile == "" {
			keyFile = st.SigningKeyFile
		}
	}
	c := &control.Client{BaseURL: base, HTTP: &http.Client{Timeout: f.timeout}}
	switch static := env("LIVECELL_SERVER_TOKEN", ""); {
	case static != "":
		c.Token = func(context.Context) (string, error) { return static, nil }
	case keyFile != "":
		keys, err := token.LoadKeySet(keyFile)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		signer, err := token.NewSigner(keys, nil)
		if err != nil {
			return nil, err
		}
		who := env("USER", "unknown")
		c.Token = (&mintedToken{signer: signer, subject: "operator/" + who, scopes: []string{control.ScopeAdmin}, ttl: 10 * time.Minute}).Token
	default:
		// Reads work without one; writes fail with a clear message.
		c.Token = func(context.Context) (string, error) {
			return "", errors.New("set LIVECELL_SERVER_TOKEN (scope " + control.ScopeAdmin + ", see `livecell keys server-token`) or LIVECELL_SIGNING_KEY_FILE, or pass --world")
		}
	}
	return c, nil
}

// open returns the control plane client and the command's context, bounded
// by --timeout.
func (f *opsFlags) open(cmd *cobra.Command) (context.Context, *control.Client, context.CancelFunc, error) {
	c, err := f.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	return ctx, c, cancel, nil
}

// print writes v as indented JSON with --json, else runs text.
func (f *opsFlags) print(out io.Writer, v any, text func()) error {
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text()
	return nil
}

func newControlOpsCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newControlCellsCmd(g), newControlDrainCmd(g), newControlUndrainCmd(g), newControlOverrideCmd(g), newControlRehomeCmd(g)}
}

func newControlCellsCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	cmd := &cobra.Command{
		Use:   "cells",
		Short: "Show every cell as the control plane sees it: state, health, load",
		Long: `Cells prints every cell: the state routing applies (and where it comes from:
cells.yaml or an operator), whether the cell itself reports it (a drained
cell reports "draining" once its processes applied it), health and load.
Watch a drain with it: the sessions of a draining cell fall to zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			cells, err := c.Cells(ctx)
			if err != nil {
				return err
			}
			return f.print(g.stdout, cells, func() {
				tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CELL\tSTATE\tSET BY\tREPORTED\tUP\tSESSIONS\tLOAD\tLAST ERROR")
				for _, cl := range cells.Cells {
					by := "cells.yaml"
					if cl.OperatorState != "" && cl.OperatorState == cl.State {
						by = "operator"
					}
					up := "down"
					if cl.Up {
						up = "up"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%.0f%%\t%s\n", cl.ID, cl.State, by, orDash(cl.ReportedState), up, cl.Sessions, cl.Capacity, cl.Load*100, cl.LastError)
				}
				_ = tw.Flush()
			})
		},
	}
	f.register(cmd)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newControlDrainCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	var (
		batch    int
		interval time.Duration
		reason   string
	)
	cmd := &cobra.Command{
		Use:   "drain <cell>",
		Short: "Drain a cell: new players elsewhere, connected players moved to its failover cell in batches",
		Long: `Drain sets a cell draining. Within seconds routers place no new player there
and send its players to the first healthy, active cell of its failover list;
the cell refuses new sessions and tells its connected players to reconnect
to that cell, --batch players every --interval. Run it again to change the
rate. "livecell control cells" shows the sessions falling; "livecell control
undrain <cell>" ends it. Draining the last cell that takes new players is
refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch < 1 {
				return fmt.Errorf("--batch %d: want 1 to 10000 players", batch)
			}
			if interval%time.Millisecond != 0 || interval <= 0 {
				return fmt.Errorf("--interval %v: want whole milliseconds from 10ms to 10m", interval)
			}
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			st, err := c.Drain(ctx, args[0], control.DrainRequest{Batch: batch, IntervalMS: interval.Milliseconds(), Reason: reason})
			if err != nil {
				return err
			}
			return f.print(g.stdout, st, func() {
				target := st.Target
				if target == "" {
					target = "nowhere yet: no failover cell is healthy and active, players stay until one is"
				}
				fmt.Fprintf(g.stdout, "%s draining since %s: %d players every %v, to %s\n",
					st.Cell, st.Since.Format(time.RFC3339), st.Batch, time.Duration(st.IntervalMS)*time.Millisecond, target)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&batch, "batch", control.DefaultDrainBatch, "players told to move per batch (1 to 10000)")
	cmd.Flags().DurationVar(&interval, "interval", control.DefaultDrainInterval, "time between batches (10ms to 10m)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the next operator")
	return cmd
}

func newControlUndrainCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	cmd := &cobra.Command{
		Use:   "undrain <cell>",
		Short: "End an operator's drain of a cell",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.Undrain(ctx, args[0]); err != nil {
				return err
			}
			return f.print(g.stdout, map[string]string{"cell": args[0], "state": "undrained"}, func() {
				fmt.Fprintf(g.stdout, "%s takes players again (unless cells.yaml says otherwise)\n", args[0])
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newControlOverrideCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "override",
		Short: "Pin or quarantine players, or list and clear the override table",
		Long: `The override table takes precedence over the directory for the players in it:

  pin <player> <cell>                the player is sent to <cell> while it serves
                                     (testers on a canary cell, a heavy player)
  quarantine <player> [--cell <id>]  without --cell the router refuses the player
                                     (403 quarantined) and their cell closes their
                                     sessions; with --cell they are sent only there
  clear <player>                     remove the entry
  list                               every entry, with who set it and why

Routers and cells apply a change within seconds.`,
	}
	cmd.AddCommand(newOverrideSetCmd(g, "pin"), newOverrideSetCmd(g, "quarantine"), newOverrideClearCmd(g), newOverrideListCmd(g))
	return cmd
}

func newOverrideSetCmd(g *globals, kind string) *cobra.Command {
	f := &opsFlags{}
	var reason, cell string
	cmd := &cobra.Command{Use: kind + " <player>", Short: "Quarantine a player", Args: cobra.ExactArgs(1)}
	if kind == "pin" {
		cmd.Use, cmd.Short, cmd.Args = "pin <player> <cell>", "Pin a player to a cell", cobra.ExactArgs(2)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if kind == "pin" {
			cell = args[1]
		}
		ctx, c, cancel, err := f.open(cmd)
		if err != nil {
			return err
		}
		defer cancel()
		o, err := c.SetOverride(ctx, args[0], control.OverrideRequest{Kind: kind, Cell: cell, Reason: reason})
		if err != nil {
			return err
		}
		return f.print(g.stdout, o, func() { printOverrides(g.stdout, []control.OverrideEntry{o}) })
	}
	f.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the next operator")
	if kind == "quarantine" {
		cmd.Flags().StringVar(&cell, "cell", "", "a quarantine cell to send the player to, instead of refusing them")
	}
	return cmd
}

func newOverrideClearCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	cmd := &cobra.Command{
		Use:   "clear <player>",
		Short: "Remove a player's override",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			if err := c.ClearOverride(ctx, args[0]); err != nil {
				return err
			}
			return f.print(g.stdout, map[string]string{"player_id": strings.ToLower(args[0]), "override": "cleared"}, func() {
				fmt.Fprintf(g.stdout, "override of %s cleared\n", args[0])
			})
		},
	}
	f.register(cmd)
	return cmd
}

func newOverrideListCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the override table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			all, err := c.Overrides(ctx)
			if err != nil {
				return err
			}
			return f.print(g.stdout, control.OverridesResponse{Overrides: all}, func() { printOverrides(g.stdout, all) })
		},
	}
	f.register(cmd)
	return cmd
}

func printOverrides(out io.Writer, all []control.OverrideEntry) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAYER\tKIND\tCELL\tSET\tBY\tREASON")
	for _, o := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.PlayerID, o.Kind, orDash(o.Cell), o.At.Format(time.RFC3339), orDash(o.By), o.Reason)
	}
	_ = tw.Flush()
}

func newControlRehomeCmd(g *globals) *cobra.Command {
	f := &opsFlags{}
	var from string
	cmd := &cobra.Command{
		Use:   "rehome <player> <cell>",
		Short: "Move a player, data and all, to another home cell",
		Long: `Rehome moves a player's rows to <cell> and changes their directory entry in one
transaction, then records a redirect marker for the old cell: within
seconds the old cell tells the player's open session to reconnect to <cell>
(a resume token valid there, so the player keeps playing), and answers any
later session of the player there with player_moved. Needs a control plane
on the players' database (livecell control --database).

If the answer says the marker was not recorded, run the same command again
with --from <old cell>.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c, cancel, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			res, err := c.Rehome(ctx, args[0], control.RehomeRequest{Cell: args[1], From: from})
			if err != nil {
				return err
			}
			return f.print(g.stdout, res, func() {
				if !res.Moved && res.Seq == 0 {
					fmt.Fprintf(g.stdout, "%s already lives in %s\n", res.PlayerID, res.To)
					return
				}
				fmt.Fprintf(g.stdout, "%s moved from %s to %s (redirect marker %d)\n", res.PlayerID, res.From, res.To, res.Seq)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&from, "from", "", "repair: record the redirect marker of an earlier move from this cell")
	return cmd
}
