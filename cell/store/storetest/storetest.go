// Package storetest is the contract every store.Store implementation must
// pass: purchases, idempotent checkouts and, above all, Stripe events that
// take effect exactly once together with their outbox events.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/store"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
)

// Factory returns an empty store and the outbox its Apply writes to.
type Factory func(t *testing.T) (store.Store, events.Outbox)

// Run runs the contract suite.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, out events.Outbox)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"IdempotentCreate", testIdempotentCreate},
		{"ApplyOnceWithItsEvents", testApplyOnce},
		{"ApplyNotFoundRecordsNothing", testApplyNotFound},
		{"ApplyByPaymentIntent", testApplyByPaymentIntent},
		{"FailedChangeRollsBack", testFailedChange},
		{"ConcurrentSameEvent", testConcurrentSameEvent},
		{"ConcurrentEventsOnePurchase", testConcurrentEventsOnePurchase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out := newStore(t)
			tt.fn(t, s, out)
		})
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// Purchase returns a pending purchase of player created at t0+minute.
func Purchase(id, player string, minute int) store.Purchase {
	at := t0.Add(time.Duration(minute) * time.Minute)
	return store.Purchase{
		Purchase: storeapi.Purchase{
			ID: id, PlayerID: player, OfferID: "hat.crimson", Quantity: 1, Currency: "usd", Amount: 499,
			Status: storeapi.StatusPending, Grants: []catalogapi.Grant{{ItemID: "hat.crimson", Quantity: 1}},
			CreatedAt: at, UpdatedAt: at,
		},
		HomeCell: "eu-west", IdempotencyKey: "key-" + id, ExpiresAt: at.Add(30 * time.Minute),
	}
}

func mustCreate(t *testing.T, s store.Store, p store.Purchase, wantCreated bool) store.Purchase {
	t.Helper()
	got, created, err := s.CreatePurchase(t.Context(), p, p.CreatedAt)
	if err != nil || created != wantCreated {
		t.Fatalf("CreatePurchase(%s) = created %v, %v; want created %v", p.ID, created, err, wantCreated)
	}
	return got
}

func mustPurchase(t *testing.T, s store.Store, id string) store.Purchase {
	t.Helper()
	p, err := s.Purchase(t.Context(), id)
	if err != nil {
		t.Fatalf("Purchase(%s) = %v", id, err)
	}
	return p
}

// pay is a Change that marks a pending purchase paid and announces it.
func pay(p *store.Purchase) ([]events.Event, error) {
	if p.Status != storeapi.StatusPending {
		return nil, nil
	}
	p.Status, p.PaymentIntent, p.UpdatedAt = storeapi.StatusPaid, "pi_"+p.ID, p.UpdatedAt.Add(time.Second)
	e, err := events.New(storeapi.TypePurchaseCompleted, p.PlayerID, p.HomeCell, t0, storeapi.PurchaseEvent{PurchaseID: p.ID, PlayerID: p.PlayerID, HomeCell: p.HomeCell, Grants: p.Grants})
	return []events.Event{e}, err
}

func drain(t *testing.T, out events.Outbox) []events.Event {
	t.Helper()
	evs, err := out.Claim(t.Context(), 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func testCreateAndRead(t *testing.T, s store.Store, _ events.Outbox) {
	ctx := t.Context()
	a := mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	mustCreate(t, s, Purchase("pur-b", "p1", 1), true)
	mustCreate(t, s, Purchase("pur-c", "p2", 2), true)
	if got := mustPurchase(t, s, "pur-a"); !reflect.DeepEqual(got, a) {
		t.Fatalf("Purchase = %+v, want %+v", got, a)
	}
	if err := s.AttachSession(ctx, "pur-a", "cs_1", "https://checkout.example/cs_1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got := mustPurchase(t, s, "pur-a")
	if got.SessionID != "cs_1" || got.CheckoutURL != "https://checkout.example/cs_1" || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after AttachSession: %+v", got)
	}
	if _, err := s.Purchase(ctx, "nope"); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("Purchase(unknown) = %v, want not_found", err)
	}
	if err := s.AttachSession(ctx, "nope", "cs", "u", t0); apierr.CodeOf(err) != apierr.NotFound {
		t.Fatalf("AttachSession(unknown) = %v, want not_found", err)
	}
	list, err := s.Purchases(ctx, "p1", 10)
	if err != nil || len(list) != 2 || list[0].ID != "pur-b" || list[1].ID != "pur-a" {
		t.Fatalf("Purchases(p1) = %+v, %v; want pur-b then pur-a", list, err)
	}
	if list, _ := s.Purchases(ctx, "p1", 1); len(list) != 1 {
		t.Fatalf("Purchases with limit 1 returned %d", len(list))
	}
}

func testIdempotentCreate(t *testing.T, s store.Store, _ events.Outbox) {
	first := mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	retry := Purchase("pur-b", "p1", 1)
	retry.IdempotencyKey = first.IdempotencyKey
	if got := mustCreate(t, s, retry, false); got.ID != first.ID {
		t.Fatalf("retry with the same key got %s, want the pending %s", got.ID, first.ID)
	}
	// Expired: a new checkout.
	late := Purchase("pur-c", "p1", 45)
	late.IdempotencyKey = first.IdempotencyKey
	mustCreate(t, s, late, true)
	// Paid: a new checkout too.
	if res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-c"}, pay); err != nil || res != store.Applied {
		t.Fatalf("Apply = %v, %v", res, err)
	}
	again := Purchase("pur-d", "p1", 46)
	again.IdempotencyKey = first.IdempotencyKey
	mustCreate(t, s, again, true)
}

func testApplyOnce(t *testing.T, s store.Store, out events.Outbox) {
	mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	var calls atomic.Int32
	change := func(p *store.Purchase) ([]events.Event, error) { calls.Add(1); return pay(p) }
	res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-a"}, change)
	if err != nil || res != store.Applied {
		t.Fatalf("Apply = %v, %v; want Applied", res, err)
	}
	p := mustPurchase(t, s, "pur-a")
	if p.Status != storeapi.StatusPaid || p.PaymentIntent != "pi_pur-a" || !p.UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after Apply: %+v, want paid with its payment intent", p)
	}
	evs := drain(t, out)
	if len(evs) != 1 || evs[0].Type != storeapi.TypePurchaseCompleted || evs[0].PlayerID != "p1" {
		t.Fatalf("outbox = %+v, want one purchase.completed for p1", evs)
	}
	before := calls.Load()
	res, err = s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-a"}, change)
	if err != nil || res != store.Duplicate || calls.Load() != before {
		t.Fatalf("second Apply of evt-1 = %v, %v (change ran %d more times); want Duplicate without running the change", res, err, calls.Load()-before)
	}
	if evs := drain(t, out); len(evs) != 0 {
		t.Fatalf("duplicate added %d outbox events", len(evs))
	}
}

func testApplyNotFound(t *testing.T, s store.Store, out events.Outbox) {
	res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-x"}, pay)
	if err != nil || res != store.NotFound {
		t.Fatalf("Apply(unknown purchase) = %v, %v; want NotFound", res, err)
	}
	mustCreate(t, s, Purchase("pur-x", "p1", 0), true)
	if res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-x"}, pay); err != nil || res != store.Applied {
		t.Fatalf("the same event once the purchase exists = %v, %v; want Applied (NotFound recorded nothing)", res, err)
	}
}

func testApplyByPaymentIntent(t *testing.T, s store.Store, out events.Outbox) {
	mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	if _, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-a"}, pay); err != nil {
		t.Fatal(err)
	}
	refund := func(p *store.Purchase) ([]events.Event, error) { p.Status = storeapi.StatusRefunded; return nil, nil }
	res, err := s.Apply(t.Context(), "evt-2", store.Key{PaymentIntent: "pi_pur-a"}, refund)
	if err != nil || res != store.Applied || mustPurchase(t, s, "pur-a").Status != storeapi.StatusRefunded {
		t.Fatalf("Apply by payment intent = %v, %v; want the purchase refunded", res, err)
	}
	if res, _ := s.Apply(t.Context(), "evt-3", store.Key{PaymentIntent: "pi_unknown"}, refund); res != store.NotFound {
		t.Fatalf("Apply by unknown payment intent = %v, want NotFound", res)
	}
}

func testFailedChange(t *testing.T, s store.Store, out events.Outbox) {
	mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	boom := errors.New("mismatch")
	res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-a"}, func(p *store.Purchase) ([]events.Event, error) {
		evs, _ := pay(p)
		return evs, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Apply with a failing change = %v, %v; want the change's error", res, err)
	}
	if p := mustPurchase(t, s, "pur-a"); p.Status != storeapi.StatusPending {
		t.Fatalf("failed change left status %s, want pending", p.Status)
	}
	if evs := drain(t, out); len(evs) != 0 {
		t.Fatalf("failed change left %d outbox events", len(evs))
	}
	if res, err := s.Apply(t.Context(), "evt-1", store.Key{PurchaseID: "pur-a"}, pay); err != nil || res != store.Applied {
		t.Fatalf("the event after a failed attempt = %v, %v; want Applied (its id was not recorded)", res, err)
	}
}

func testConcurrentSameEvent(t *testing.T, s store.Store, out events.Outbox) {
	mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	applied := runConcurrently(t, 8, func(i int) (store.Result, error) {
		return s.Apply(context.WithoutCancel(t.Context()), "evt-1", store.Key{PurchaseID: "pur-a"}, pay)
	})
	if applied != 1 {
		t.Fatalf("one event delivered 8 times at once was applied %d times, want 1", applied)
	}
	if evs := drain(t, out); len(evs) != 1 {
		t.Fatalf("outbox holds %d events, want exactly 1", len(evs))
	}
}

func testConcurrentEventsOnePurchase(t *testing.T, s store.Store, out events.Outbox) {
	mustCreate(t, s, Purchase("pur-a", "p1", 0), true)
	// completed and async_payment_succeeded racing: distinct event ids,
	// both recorded, one grant.
	applied := runConcurrently(t, 6, func(i int) (store.Result, error) {
		return s.Apply(context.WithoutCancel(t.Context()), fmt.Sprintf("evt-%d", i), store.Key{PurchaseID: "pur-a"}, pay)
	})
	if applied != 6 {
		t.Fatalf("%d of 6 distinct events applied, want all recorded", applied)
	}
	if evs := drain(t, out); len(evs) != 1 {
		t.Fatalf("six events about one payment produced %d outbox events, want 1", len(evs))
	}
}

func runConcurrently(t *testing.T, n int, fn func(i int) (store.Result, error)) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		applied atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			res, err := fn(i)
			if err != nil {
				t.Error(err)
			}
			if res == store.Applied {
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	return int(applied.Load())
}
