package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/internal/events/amqpbus"
)

// eventGroups is the cell's event topology, as the cell declares it.
func eventGroups() []amqpbus.Group {
	return []amqpbus.Group{{Name: inventory.Group, Topics: inventory.Topics()}}
}

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Inspect the cell's event bus (RabbitMQ): dead letters",
		Args:  cobra.NoArgs,
	}
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "List or replay a consumer group's dead-letter queue",
		Long: `A consumer group dead-letters an event it can never handle (malformed, or
naming an item the catalog does not have), so one poison event does not stop
the others; livecell_events_dead_lettered_total counts them. After fixing
the cause (the catalog, a deploy), replay them: each goes back to the group's
own queue, republished with a publisher confirm before it leaves the
dead-letter queue, so a crash duplicates a message and never loses one (the
consumer is idempotent).`,
		Args: cobra.NoArgs,
	}
	var (
		f      commerceFlags
		group  string
		max    int
		asJSON bool
		wait   time.Duration
	)
	connect := func(ctx context.Context) (*amqpbus.Bus, context.Context, context.CancelFunc, error) {
		if f.amqpURL == "" {
			return nil, nil, nil, errors.New("--amqp-url (or LIVECELL_AMQP_URL) is required: without a broker, dead letters live in the process's memory and its logs")
		}
		log, err := g.logger()
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := amqpbus.New(amqpbus.Config{URL: f.amqpURL, Prefix: f.amqpPrefix, Groups: eventGroups(), ConnectionName: "livecell/events-cli"}, log, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, wait)
		return b, ctx, cancel, nil
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Print dead letters without removing them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, ctx, cancel, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer b.Close()
			dead, err := b.DeadLetters(ctx, group, max)
			if err != nil {
				return err
			}
			if asJSON {
				out, _ := json.Marshal(dead)
				fmt.Fprintln(g.stdout, string(out))
				return nil
			}
			fmt.Fprintf(g.stdout, "%d dead letter(s) in group %s (showing at most %d)\n", len(dead), group, max)
			for _, d := range dead {
				if d.Raw != "" {
					fmt.Fprintf(g.stdout, "  %s  %-8s x%d  not an event: %.120q\n", d.At.UTC().Format(time.RFC3339), d.Reason, d.Count, d.Raw)
					continue
				}
				fmt.Fprintf(g.stdout, "  %s  %-8s x%d  %s  %s  player %s  %.200s\n", d.At.UTC().Format(time.RFC3339), d.Reason, d.Count,
					d.Event.ID, d.Event.Type, d.Event.PlayerID, d.Event.Payload)
			}
			return nil
		},
	}
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Move dead letters back to the group's queue",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, ctx, cancel, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer b.Close()
			n, err := b.Replay(ctx, group, max)
			fmt.Fprintf(g.stdout, "replayed %d dead letter(s) to group %s\n", n, group)
			return err
		},
	}
	for _, c := range []*cobra.Command{list, replay} {
		f.register(c)
		c.Flags().StringVar(&group, "group", inventory.Group, "consumer group")
		c.Flags().IntVar(&max, "max", 100, "at most this many messages")
		c.Flags().DurationVar(&wait, "timeout", 10*time.Second, "give up after this long")
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	dlq.AddCommand(list, replay)
	cmd.AddCommand(dlq)
	return cmd
}
