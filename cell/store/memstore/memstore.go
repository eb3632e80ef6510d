// Package memstore is the embedded store.Store: purchases, processed Stripe
// event ids and the outbox in memory, changed together under one lock.
package memstore

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/livecell/livecell/cell/store"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
)

// Store is a store.Store in memory. It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	purchases map[string]store.Purchase
	processed map[string]bool
	outbox    *events.MemOutbox
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{purchases: map[string]store.Purchase{}, processed: map[string]bool{}, outbox: events.NewMemOutbox(nil)}
}

// Outbox is the store's outbox, for the relay.
func (s *Store) Outbox() *events.MemOutbox { return s.outbox }

func clone(p store.Purchase) store.Purchase {
	p.Grants = slices.Clone(p.Grants)
	return p
}

func (s *Store) CreatePurchase(ctx context.Context, p store.Purchase, now time.Time) (store.Purchase, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var existing *store.Purchase
	for _, q := range s.purchases {
		if q.IdempotencyKey == p.IdempotencyKey && q.Status == storeapi.StatusPending && q.ExpiresAt.After(now) {
			if existing == nil || q.CreatedAt.After(existing.CreatedAt) {
				existing = &q
			}
		}
	}
	if existing != nil {
		return clone(*existing), false, nil
	}
	if _, dup := s.purchases[p.ID]; dup {
		return store.Purchase{}, false, apierr.New(apierr.Conflict, "purchase %s exists", p.ID)
	}
	s.purchases[p.ID] = clone(p)
	return clone(p), true, nil
}

func (s *Store) AttachSession(ctx context.Context, purchaseID, sessionID, url string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.purchases[purchaseID]
	if !ok {
		return apierr.New(apierr.NotFound, "no purchase %s", purchaseID)
	}
	p.SessionID, p.CheckoutURL, p.ExpiresAt = sessionID, url, expiresAt
	s.purchases[purchaseID] = p
	return nil
}

func (s *Store) Purchase(ctx context.Context, id string) (store.Purchase, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.purchases[id]
	if !ok {
		return store.Purchase{}, apierr.New(apierr.NotFound, "no purchase %s", id)
	}
	return clone(p), nil
}

func (s *Store) Purchases(ctx context.Context, playerID string, limit int) ([]store.Purchase, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Purchase
	for _, p := range s.purchases {
		if p.PlayerID == playerID {
			out = append(out, clone(p))
		}
	}
	slices.SortFunc(out, func(a, b store.Purchase) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *Store) Apply(ctx context.Context, eventID string, key store.Key, change store.Change) (store.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.find(key)
	if !ok {
		return store.NotFound, nil
	}
	if s.processed[eventID] {
		return store.Duplicate, nil
	}
	next := clone(p)
	evs, err := change(&next)
	if err != nil {
		return 0, err
	}
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			return 0, err
		}
	}
	s.purchases[next.ID] = next
	s.processed[eventID] = true
	s.outbox.Add(evs...)
	return store.Applied, nil
}

func (s *Store) find(key store.Key) (store.Purchase, bool) {
	if key.PurchaseID != "" {
		if p, ok := s.purchases[key.PurchaseID]; ok {
			return p, true
		}
	}
	if key.PaymentIntent != "" {
		for _, p := range s.purchases {
			if p.PaymentIntent == key.PaymentIntent {
				return p, true
			}
		}
	}
	return store.Purchase{}, false
}
