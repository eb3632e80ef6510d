package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/livecell/livecell/cell"
)

// Store and event-bus settings. Stripe keys come from the environment (or
// files it names) only: they are secrets.
const (
	envStripeKey         = "STRIPE_SECRET_KEY"
	envStripeKeyFile     = "STRIPE_SECRET_KEY_FILE"
	envStripeWebhook     = "STRIPE_WEBHOOK_SECRET"
	envStripeWebhookFile = "STRIPE_WEBHOOK_SECRET_FILE"
	envStripeAPI         = "LIVECELL_STRIPE_API_URL"
	envStoreSuccessURL   = "LIVECELL_STORE_SUCCESS_URL"
	envStoreCancelURL    = "LIVECELL_STORE_CANCEL_URL"
	envStorePublicURL    = "LIVECELL_STORE_PUBLIC_URL"
)

// storeHelp is appended to the --help of commands that run the store.
const storeHelp = `

Store and fulfillment (environment; secrets only from the environment or files):
  STRIPE_SECRET_KEY_FILE (or STRIPE_SECRET_KEY)          Stripe API key; unset: TEST MODE
  STRIPE_WEBHOOK_SECRET_FILE (or STRIPE_WEBHOOK_SECRET)  the webhook endpoint's signing secret
  LIVECELL_STRIPE_API_URL                                Stripe API base (stripe-mock in tests)
  LIVECELL_STORE_SUCCESS_URL, LIVECELL_STORE_CANCEL_URL  where Stripe returns players ({PURCHASE_ID})
  LIVECELL_STORE_PUBLIC_URL                              the cell API as players reach it
Without Stripe keys the store runs in TEST MODE: checkouts are paid by a local
simulation (livecell probe --purchase) and no money moves. Without --amqp-url
events travel on an in-process bus, which needs the store, inventory and
gateway in one process.`

// commerceFlags configure the event bus.
type commerceFlags struct {
	amqpURL    string
	amqpPrefix string
}

func (f *commerceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.amqpURL, "amqp-url", env("LIVECELL_AMQP_URL", ""), "RabbitMQ URL of the cell's event bus (env LIVECELL_AMQP_URL); empty: an in-process bus")
	fl.StringVar(&f.amqpPrefix, "amqp-prefix", env("LIVECELL_AMQP_PREFIX", "livecell"), "prefix of the broker's exchanges and queues (env LIVECELL_AMQP_PREFIX)")
}

// commerceConfig reads the store's settings from the environment.
func commerceConfig(log *slog.Logger, f commerceFlags) (cell.StoreConfig, cell.EventsConfig, error) {
	sc := cell.StoreConfig{
		StripeAPIURL: os.Getenv(envStripeAPI),
		SuccessURL:   os.Getenv(envStoreSuccessURL),
		CancelURL:    os.Getenv(envStoreCancelURL),
		PublicURL:    os.Getenv(envStorePublicURL),
	}
	ec := cell.EventsConfig{AMQPURL: f.amqpURL, Prefix: f.amqpPrefix}
	if os.Getenv(envStripeKey) == "" && os.Getenv(envStripeKeyFile) == "" {
		return sc, ec, nil // TEST MODE; the store says so loudly
	}
	key, err := secret(envStripeKey, envStripeKeyFile)
	if err != nil {
		return sc, ec, err
	}
	webhook, err := secret(envStripeWebhook, envStripeWebhookFile)
	if err != nil {
		return sc, ec, fmt.Errorf("a Stripe key needs the webhook signing secret: %w", err)
	}
	sc.StripeSecretKey, sc.WebhookSecret = key, webhook
	log.Info("stripe payments on", "api", firstSet(sc.StripeAPIURL, "api.stripe.com"))
	return sc, ec, nil
}

func firstSet(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
