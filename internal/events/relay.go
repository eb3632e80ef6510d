package events

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// RelayConfig tunes a relay; the zero value is usable.
type RelayConfig struct {
	Batch int           // events per publish (default 100)
	Lease time.Duration // how long a claimed batch is this relay's (default 30s)
	// Poll is how often the outbox is read without a Kick (default 1s):
	// it picks up events written by other processes and expired leases.
	Poll    time.Duration
	Backoff Backoff // after a failed publish (default 100ms doubling to 10s)
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Backoff.Base <= 0 {
		c.Backoff = Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second}
	}
	return c
}

// Relay moves events from an Outbox to a Publisher: claim a batch, publish
// it, delete it once confirmed. A failed publish releases the batch and
// retries with backoff, so while the broker is down the outbox holds every
// event and nothing is lost; a crash after publishing and before deleting
// publishes the batch again, which idempotent consumers absorb.
type Relay struct {
	cfg  RelayConfig
	out  Outbox
	pub  Publisher
	log  *slog.Logger
	m    *Metrics
	kick chan struct{}
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig, out Outbox, pub Publisher, log *slog.Logger, m *Metrics) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg.withDefaults(), out: out, pub: pub, log: log, m: m, kick: make(chan struct{}, 1)}
}

// Kick wakes the relay now instead of at the next poll: producers call it
// after committing, which is what keeps a purchase's fulfillment latency in
// milliseconds rather than a poll interval. It never blocks.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	failures := 0
	for {
		n, err := r.once(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			d := r.cfg.Backoff.Delay(failures)
			r.log.Warn("outbox relay failed; events stay in the outbox", "error", err, "retry_in", d, "failures", failures)
			if Sleep(ctx, d) != nil {
				return
			}
			continue
		}
		failures = 0
		if n == r.cfg.Batch {
			continue // more may be waiting
		}
		t := time.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// once relays one batch and returns its size.
func (r *Relay) once(ctx context.Context) (int, error) {
	evs, err := r.out.Claim(ctx, r.cfg.Batch, r.cfg.Lease)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	if err := r.pub.Publish(ctx, evs); err != nil {
		r.m.publishFailure()
		// The lease protects the batch if this fails too; a fresh context,
		// because ctx may be what just ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return 0, errors.Join(err, r.out.Release(rctx, ids))
	}
	r.m.publishedBatch(evs, time.Now())
	// Published but not deleted (crash, database down) means published
	// again later: consumers are idempotent, so that costs a duplicate,
	// never a loss.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return len(evs), r.out.Delete(dctx, ids)
}
