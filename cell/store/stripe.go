package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/checkout/session"

	"github.com/livecell/livecell/internal/apierr"
)

// Metadata keys the store puts on checkout sessions and payment intents.
// Webhooks are matched to purchases by client_reference_id first; the
// metadata lets an operator find a purchase from Stripe's dashboard and lets
// a charge (whose refund arrives as charge.refunded) name its purchase.
const (
	MetaPurchase = "livecell_purchase_id"
	MetaPlayer   = "livecell_player_id"
	MetaOffer    = "livecell_offer_id"
	MetaCell     = "livecell_cell"
)

// StripeConfig configures the Stripe API client.
type StripeConfig struct {
	SecretKey string // sk_live_... / sk_test_... / rk_...
	// APIURL overrides Stripe's API base (stripe-mock in tests:
	// http://127.0.0.1:12111). Empty: api.stripe.com.
	APIURL string
	// HTTP is the client for API calls (nil: 30 s timeout).
	HTTP *http.Client
}

// Stripe creates Checkout Sessions with stripe-go.
type Stripe struct {
	sessions session.Client
}

var _ checkoutSessions = (*Stripe)(nil)

// NewStripe returns a Stripe client. It keeps its own backend: nothing is
// set in stripe-go's package-level state.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("store.NewStripe: a secret key is required")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	bc := &stripe.BackendConfig{
		HTTPClient: cfg.HTTP,
		// stripe-go retries network failures and 409/5xx with the same
		// idempotency key, which is exactly what makes a retry safe.
		MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIURL != "" {
		bc.URL = stripe.String(cfg.APIURL)
	}
	return &Stripe{sessions: session.Client{B: stripe.GetBackendWithConfig(stripe.APIBackend, bc), Key: cfg.SecretKey}}, nil
}

// Create creates a payment-mode Checkout Session for p. The idempotency key
// is the purchase id: a retried checkout of the same purchase gets the same
// session from Stripe instead of a second one.
func (s *Stripe) Create(ctx context.Context, sp SessionParams) (Session, error) {
	p := sp.Purchase
	meta := map[string]string{MetaPurchase: p.ID, MetaPlayer: p.PlayerID, MetaOffer: p.OfferID, MetaCell: p.HomeCell}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(p.ID),
		SuccessURL:        stripe.String(sp.SuccessURL),
		CancelURL:         stripe.String(sp.CancelURL),
		ExpiresAt:         stripe.Int64(p.ExpiresAt.Unix()),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			Quantity: stripe.Int64(int64(p.Quantity)),
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(p.Currency),
				UnitAmount: stripe.Int64(sp.UnitAmount),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name:     stripe.String(sp.Title),
					Metadata: map[string]string{MetaOffer: p.OfferID},
				},
			},
		}},
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{Metadata: meta},
	}
	params.Metadata = meta
	params.Context = ctx
	params.SetIdempotencyKey("livecell-checkout-" + p.ID)
	cs, err := s.sessions.New(params)
	if err != nil {
		return Session{}, stripeError(err)
	}
	if cs.ID == "" || cs.URL == "" {
		return Session{}, apierr.Wrap("store.Stripe", apierr.Unavailable, "payment provider returned no checkout page", fmt.Errorf("session %q url %q", cs.ID, cs.URL))
	}
	exp := p.ExpiresAt
	if cs.ExpiresAt > 0 {
		exp = time.Unix(cs.ExpiresAt, 0).UTC()
	}
	return Session{ID: cs.ID, URL: cs.URL, ExpiresAt: exp}, nil
}

// stripeError maps a Stripe API failure: Stripe rejecting our request is a
// configuration problem (internal), anything else is the provider being
// unavailable, which the client may retry.
func stripeError(err error) error {
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode >= 400 && se.HTTPStatusCode < 500 && se.HTTPStatusCode != http.StatusTooManyRequests {
		return apierr.Wrap("store.Stripe", apierr.Internal, "payment provider refused the checkout", err)
	}
	return apierr.Wrap("store.Stripe", apierr.Unavailable, "payment provider unavailable; try again", err)
}
