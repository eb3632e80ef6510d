package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/internal/probe"
)

func newProbeCmd(g *globals) *cobra.Command {
	var (
		o        probe.Options
		asJSON   bool
		timeout  time.Duration
		purchase bool
		offer    string
	)
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Check a running world end to end as one player and print the timings",
		Long: `Probe resolves a home cell at the router, registers a fresh player there (or
logs in with --username/--password), checks that the router now resolves the
player to the same cell, opens a gateway session, pings, and makes one request.
It exits non-zero, naming the failed stage, when any step fails.

With --json it prints one object:
  {"ok":true,"player":…,"home_cell":…,"gateway":…,"resolve_ms":…,"login_ms":…,
   "connect_ms":…,"rtt_ms":…,"request_ms":…}

With --purchase it buys --offer as a fresh player instead: checkout over the
gateway, payment through the store's TEST MODE simulation (a signed Stripe
webhook), and the inventory.updated push. It prints the time from the webhook
to the push. It needs a store in test mode: livecell dev without Stripe keys.
  {"ok":true,"player":…,"offer":…,"purchase_id":…,"test_mode":true,
   "checkout_ms":…,"webhook_ms":…,"webhook_to_push_ms":…,"owned":1}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.RouterURL == "" {
				cells, err := g.cells()
				if err != nil {
					return err
				}
				o.RouterURL = "http://" + cells.Router.Listen
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if purchase {
				return runPurchaseProbe(ctx, g, o, offer, asJSON)
			}
			res, err := probe.Run(ctx, o)
			if asJSON {
				b, _ := json.Marshal(res)
				fmt.Fprintln(g.stdout, string(b))
			} else if err == nil {
				fmt.Fprintf(g.stdout, "ok: player %s homed to %s via %s\n  resolve %.2f ms, login %.2f ms, connect %.2f ms, rtt %.3f ms, request %.3f ms\n",
					res.Player, res.HomeCell, res.Gateway, res.ResolveMS, res.LoginMS, res.ConnectMS, res.RTTMS, res.RequestMS)
			}
			if err != nil {
				fmt.Fprintln(g.stderr, "livecell probe:", err)
				return exitError{code: 1}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.RouterURL, "router", env("LIVECELL_ROUTER_URL", ""), "router base URL (env LIVECELL_ROUTER_URL; default: router.listen in cells.yaml)")
	fl.StringVar(&o.RegionHint, "region-hint", "", "cell id or cloud region to prefer for a new player")
	fl.StringVar(&o.Username, "username", "", "log in as this player instead of registering a fresh one")
	fl.StringVar(&o.Password, "password", env("LIVECELL_PROBE_PASSWORD", ""), "password for --username (env LIVECELL_PROBE_PASSWORD)")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object")
	fl.BoolVar(&purchase, "purchase", false, "buy an offer end to end (store in TEST MODE) and time webhook → push")
	fl.StringVar(&offer, "offer", probe.DefaultOffer, "offer --purchase buys")
	fl.DurationVar(&timeout, "timeout", 15*time.Second, "give up after this long")
	return cmd
}

func runPurchaseProbe(ctx context.Context, g *globals, o probe.Options, offer string, asJSON bool) error {
	res, err := probe.Purchase(ctx, o, offer)
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(g.stdout, string(b))
	} else if err == nil {
		fmt.Fprintf(g.stdout, "ok: player %s (%s) bought %s, purchase %s (TEST MODE: no money moved)\n  checkout %.2f ms, webhook %.2f ms, webhook → push %.2f ms\n",
			res.Player, res.HomeCell, res.Offer, res.PurchaseID, res.CheckoutMS, res.WebhookMS, res.WebhookToPushMS)
	}
	if err != nil {
		fmt.Fprintln(g.stderr, "livecell probe --purchase:", err)
		return exitError{code: 1}
	}
	return nil
}
