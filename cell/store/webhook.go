package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
)

// Webhook outcomes: the "outcome" of the 200 answer and the result label
// of livecell_store_webhooks_total, with the refusals below.
const (
	outcomeApplied   = "applied"   // recorded; the purchase changed (or was already there)
	outcomeDuplicate = "duplicate" // this event id was processed before
	outcomeIgnored   = "ignored"   // not an event the store acts on, or not one of its purchases
	outcomeRejected  = "rejected"  // signed, but contradicts the purchase it names: nothing changed
)

// Refusal reasons (non-2xx), for metrics and logs.
const (
	refusedUnsigned  = "unsigned"
	refusedSignature = "bad_signature"
	refusedStale     = "stale"
	refusedMalformed = "malformed"
)

// errMismatch is a Change's refusal of an event that contradicts its
// purchase.
var errMismatch = errors.New("event contradicts the purchase")

// Webhook verifies one Stripe delivery and applies it. It returns the
// outcome after the change committed; an error means nothing was recorded
// and the caller answers non-2xx, so Stripe delivers it again (refusals
// carry a 4xx code, store failures unavailable).
func (s *Service) Webhook(ctx context.Context, payload []byte, sigHeader string) (string, error) {
	ev, reason, err := s.verifyWebhook(payload, sigHeader)
	if err != nil {
		s.m.webhook(reason)
		s.log.Warn("webhook refused", "reason", reason, "error", err)
		return "", err
	}
	outcome, err := s.applyEvent(ctx, ev)
	if err != nil {
		s.m.webhook("error")
		return "", err
	}
	s.m.webhook(outcome)
	if outcome == outcomeApplied {
		s.kick()
	}
	return outcome, nil
}

// verifyWebhook checks the signature with the endpoint secret and the
// replay window, both ways: stripe-go refuses timestamps older than the
// tolerance, and a timestamp further in the future than that is refused
// here, or a captured delivery signed ahead of time could be replayed for
// as long as its clock allows.
func (s *Service) verifyWebhook(payload []byte, sigHeader string) (stripe.Event, string, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, sigHeader, s.cfg.WebhookSecret, webhook.ConstructEventOptions{
		Tolerance: s.cfg.WebhookTolerance,
		// Only a few fields are read, all present in every API version
		// since 2020; refusing other versions would refuse payments.
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		return ev, refusedUnsigned, apierr.New(apierr.Unauthenticated, "webhook has no Stripe-Signature header")
	case errors.Is(err, webhook.ErrTooOld):
		return ev, refusedStale, apierr.New(apierr.Unauthenticated, "webhook signature is older than the %v replay window", s.cfg.WebhookTolerance)
	case errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrInvalidHeader):
		return ev, refusedSignature, apierr.New(apierr.Unauthenticated, "webhook signature does not verify with this endpoint's secret")
	case err != nil:
		return ev, refusedMalformed, apierr.Wrap("store.Webhook", apierr.BadRequest, "webhook body is not a Stripe event", err)
	}
	if t, ok := signatureTime(sigHeader); ok && time.Until(t) > s.cfg.WebhookTolerance {
		return ev, refusedStale, apierr.New(apierr.Unauthenticated, "webhook signature is dated in the future beyond the %v replay window", s.cfg.WebhookTolerance)
	}
	if ev.ID == "" || ev.Type == "" || ev.Data == nil {
		return ev, refusedMalformed, apierr.New(apierr.BadRequest, "webhook event lacks id, type or data")
	}
	return ev, "", nil
}

// signatureTime reads the t= element of a Stripe-Signature header.
func signatureTime(h string) (time.Time, bool) {
	for _, part := range strings.Split(h, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			return time.Unix(sec, 0), err == nil
		}
	}
	return time.Time{}, false
}

// applyEvent dispatches by event type.
func (s *Service) applyEvent(ctx context.Context, ev stripe.Event) (string, error) {
	switch ev.Type {
	case stripe.EventTypeCheckoutSessionCompleted, stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded, stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			return "", apierr.Wrap("store.Webhook", apierr.BadRequest, "checkout session object is malformed", err)
		}
		id := cs.ClientReferenceID
		if id == "" {
			id = cs.Metadata[MetaPurchase]
		}
		if id == "" {
			s.log.Info("webhook ignored: checkout session without a livecell purchase", "event", ev.ID, "session", cs.ID)
			return outcomeIgnored, nil
		}
		return s.apply(ctx, ev, Key{PurchaseID: id}, func(p *Purchase) ([]events.Event, error) { return s.sessionChange(p, ev, &cs) })
	case stripe.EventTypeChargeRefunded:
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return "", apierr.Wrap("store.Webhook", apierr.BadRequest, "charge object is malformed", err)
		}
		if !ch.Refunded {
			// A partial refund leaves the purchase delivered; support
			// decides what, if anything, to take back.
			s.log.Info("webhook ignored: partial refund", "event", ev.ID, "charge", ch.ID, "refunded", ch.AmountRefunded, "amount", ch.Amount)
			return outcomeIgnored, nil
		}
		key := Key{PurchaseID: ch.Metadata[MetaPurchase]}
		if ch.PaymentIntent != nil {
			key.PaymentIntent = ch.PaymentIntent.ID
		}
		if key == (Key{}) {
			return outcomeIgnored, nil
		}
		return s.apply(ctx, ev, key, s.refundChange)
	default:
		return outcomeIgnored, nil
	}
}

func (s *Service) apply(ctx context.Context, ev stripe.Event, key Key, change Change) (string, error) {
	// The change may run more than once (transaction retries); only the
	// committed run's transition is counted.
	var became string
	res, err := s.store.Apply(ctx, ev.ID, key, func(p *Purchase) ([]events.Event, error) {
		before := p.Status
		evs, err := change(p)
		became = ""
		if p.Status != before {
			became = p.Status
		}
		return evs, err
	})
	switch {
	case errors.Is(err, errMismatch):
		s.m.rejected()
		s.log.Error("webhook rejected: the event contradicts its purchase; nothing granted", "event", ev.ID, "type", ev.Type, "purchase", key.PurchaseID, "error", err)
		return outcomeRejected, nil
	case err != nil:
		return "", apierr.Wrap("store.Webhook", apierr.Unavailable, "", err)
	}
	switch res {
	case Duplicate:
		s.log.Info("webhook duplicate", "event", ev.ID, "type", ev.Type)
		return outcomeDuplicate, nil
	case NotFound:
		s.log.Warn("webhook ignored: no such purchase", "event", ev.ID, "type", ev.Type, "purchase", key.PurchaseID, "payment_intent", key.PaymentIntent)
		return outcomeIgnored, nil
	}
	if became != "" {
		s.m.purchase(became)
		s.log.Info("purchase "+became, "purchase", key.PurchaseID, "event", ev.ID, "type", ev.Type)
	}
	return outcomeApplied, nil
}

// sessionChange moves a purchase on a checkout session event. The session
// must be the purchase's: same player, same amount and currency.
func (s *Service) sessionChange(p *Purchase, ev stripe.Event, cs *stripe.CheckoutSession) ([]events.Event, error) {
	if player := cs.Metadata[MetaPlayer]; player != "" && player != p.PlayerID {
		return nil, fmt.Errorf("%w: session names player %q, purchase %s is %q's", errMismatch, player, p.ID, p.PlayerID)
	}
	if p.SessionID != "" && cs.ID != "" && cs.ID != p.SessionID {
		return nil, fmt.Errorf("%w: session %s, purchase %s has session %s", errMismatch, cs.ID, p.ID, p.SessionID)
	}
	if cs.AmountTotal != p.Amount || !strings.EqualFold(string(cs.Currency), p.Currency) {
		return nil, fmt.Errorf("%w: session charged %d %s, purchase %s costs %d %s", errMismatch, cs.AmountTotal, cs.Currency, p.ID, p.Amount, p.Currency)
	}
	if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" {
		p.PaymentIntent = cs.PaymentIntent.ID
	}
	switch ev.Type {
	case stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		if p.Status == storeapi.StatusPending || p.Status == storeapi.StatusAwaitingPayment {
			s.transition(p, storeapi.StatusFailed)
		}
		return nil, nil
	case stripe.EventTypeCheckoutSessionCompleted:
		if cs.PaymentStatus == stripe.CheckoutSessionPaymentStatusUnpaid {
			if p.Status == storeapi.StatusPending {
				s.transition(p, storeapi.StatusAwaitingPayment)
			}
			return nil, nil
		}
	}
	if p.Status != storeapi.StatusPending && p.Status != storeapi.StatusAwaitingPayment {
		return nil, nil // already paid (or refunded): one grant per purchase
	}
	s.transition(p, storeapi.StatusPaid)
	e, err := s.purchaseEvent(storeapi.TypePurchaseCompleted, p, time.Unix(ev.Created, 0))
	if err != nil {
		return nil, err
	}
	return []events.Event{e}, nil
}

// refundChange revokes a paid purchase on a full refund.
func (s *Service) refundChange(p *Purchase) ([]events.Event, error) {
	switch p.Status {
	case storeapi.StatusRefunded:
		return nil, nil
	case storeapi.StatusPaid:
		s.transition(p, storeapi.StatusRefunded)
		e, err := s.purchaseEvent(storeapi.TypePurchaseRefunded, p, s.now())
		if err != nil {
			return nil, err
		}
		return []events.Event{e}, nil
	default:
		// Never fulfilled, so there is nothing to take back.
		s.transition(p, storeapi.StatusRefunded)
		return nil, nil
	}
}

func (s *Service) transition(p *Purchase, status string) {
	p.Status, p.UpdatedAt = status, s.now().UTC().Truncate(time.Microsecond)
}

func (s *Service) purchaseEvent(typ string, p *Purchase, paidAt time.Time) (events.Event, error) {
	return events.New(typ, p.PlayerID, p.HomeCell, s.now(), storeapi.PurchaseEvent{
		PurchaseID: p.ID, PlayerID: p.PlayerID, HomeCell: p.HomeCell, OfferID: p.OfferID, Grants: p.Grants, PaidAt: paidAt.UTC(),
	})
}
