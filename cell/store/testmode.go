package store

import (
	"context"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/livecell/livecell/cell/store/stripetest"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/httpapi"
)

// testSessions is the TEST MODE stand-in for Stripe Checkout: the "hosted
// page" is the store's own test-mode pay endpoint.
type testSessions struct{ s *Service }

func (t testSessions) Create(ctx context.Context, sp SessionParams) (Session, error) {
	return Session{
		ID:        stripetest.ID("cs_test_livecell"),
		URL:       t.s.base() + storeapi.PathTestModePay + "/" + sp.Purchase.ID,
		ExpiresAt: sp.Purchase.ExpiresAt,
	}, nil
}

// handleTestModePay plays the player paying and Stripe calling back: it
// builds the checkout.session.completed event Stripe would send for the
// purchase, signs it with the store's webhook secret and hands it to the
// same Webhook code a real delivery goes through. It exists only in TEST
// MODE; with Stripe keys it answers not_found.
func (s *Service) handleTestModePay(w http.ResponseWriter, r *http.Request) {
	p, err := s.testModePay(r.Context(), r.PathValue("purchase"))
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, p.Purchase)
}

func (s *Service) testModePay(ctx context.Context, id string) (Purchase, error) {
	if !s.testMode {
		return Purchase{}, apierr.New(apierr.NotFound, "the store is not in test mode: pay on Stripe's checkout page")
	}
	p, err := s.store.Purchase(ctx, id)
	if err != nil {
		return Purchase{}, err
	}
	if p.Status != storeapi.StatusPending {
		return p, nil // paying twice changes nothing
	}
	if s.now().After(p.ExpiresAt) {
		return Purchase{}, apierr.New(apierr.Conflict, "checkout %s expired at %s", p.ID, p.ExpiresAt.Format(time.RFC3339))
	}
	now := s.now()
	payload := stripetest.Event("", string(stripe.EventTypeCheckoutSessionCompleted), stripetest.Session{
		ID: p.SessionID, ClientReferenceID: p.ID, AmountTotal: p.Amount, Currency: p.Currency,
		Metadata:      map[string]string{MetaPurchase: p.ID, MetaPlayer: p.PlayerID, MetaOffer: p.OfferID, MetaCell: p.HomeCell},
		PaymentStatus: string(stripe.CheckoutSessionPaymentStatusPaid), Status: "complete",
		PaymentIntent: stripetest.ID("pi_test_livecell"),
	}, now)
	if _, err := s.Webhook(ctx, payload, stripetest.Sign(payload, s.cfg.WebhookSecret, time.Now())); err != nil {
		return Purchase{}, err
	}
	return s.store.Purchase(ctx, id)
}
