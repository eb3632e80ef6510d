package events

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Outbox is the relay's view of a transactional outbox: events committed
// with a state change and not yet published. Implementations: pgoutbox
// (SQL) and MemOutbox (embedded stores); eventstest is their contract.
type Outbox interface {
	// Claim leases up to n pending events, oldest first, for lease. Events
	// another relay holds a live lease on are skipped, so several relays
	// (one per store replica) share an outbox without publishing the same
	// event at the same time. An expired lease makes an event claimable
	// again: a relay that died mid-batch delays its events, never loses them.
	Claim(ctx context.Context, n int, lease time.Duration) ([]Event, error)
	// Delete removes published events. Unknown ids are ignored.
	Delete(ctx context.Context, ids []string) error
	// Release ends the lease on events that could not be published, so the
	// next attempt need not wait for the lease to expire.
	Release(ctx context.Context, ids []string) error
}

// MemOutbox is an Outbox in memory for embedded stores: they call Add while
// holding their own lock, so the state change and its events become visible
// together. It is safe for concurrent use.
type MemOutbox struct {
	mu      sync.Mutex
	pending []memEntry
	now     func() time.Time
}

type memEntry struct {
	ev          Event
	leasedUntil time.Time
}

var _ Outbox = (*MemOutbox)(nil)

// NewMemOutbox returns an empty outbox. now may be nil (time.Now).
func NewMemOutbox(now func() time.Time) *MemOutbox {
	if now == nil {
		now = time.Now
	}
	return &MemOutbox{now: now}
}

// Add appends events; the caller has validated them.
func (o *MemOutbox) Add(evs ...Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range evs {
		o.pending = append(o.pending, memEntry{ev: e})
	}
}

// Len is the number of events not yet deleted.
func (o *MemOutbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}

func (o *MemOutbox) Claim(ctx context.Context, n int, lease time.Duration) ([]Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	var out []Event
	for i := range o.pending {
		if len(out) >= n {
			break
		}
		if o.pending[i].leasedUntil.After(now) {
			continue
		}
		o.pending[i].leasedUntil = now.Add(lease)
		out = append(out, o.pending[i].ev)
	}
	return out, nil
}

func (o *MemOutbox) Delete(ctx context.Context, ids []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending = slices.DeleteFunc(o.pending, func(e memEntry) bool { return slices.Contains(ids, e.ev.ID) })
	return nil
}

func (o *MemOutbox) Release(ctx context.Context, ids []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.pending {
		if slices.Contains(ids, o.pending[i].ev.ID) {
			o.pending[i].leasedUntil = time.Time{}
		}
	}
	return nil
}
