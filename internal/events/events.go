// Package events carries a cell's domain events from the service that
// changed state to the services that react, exactly once in effect.
//
// The pieces, from producer to consumer:
//
//   - Transactional outbox: a service writes its state change and the
//     Event announcing it in one transaction (pgoutbox.Insert inside the
//     service's SQL transaction; MemOutbox for embedded stores). Nothing is
//     published from inside a transaction, so a rolled-back change never
//     announces anything and a committed one always does.
//   - Relay: publishes pending outbox events in order and deletes them only
//     after the broker confirmed them. A crash between publish and delete
//     publishes again: at-least-once.
//   - Bus: RabbitMQ in production (amqpbus: durable topology, publisher
//     confirms, automatic reconnection, a dead-letter queue per consumer
//     group), or Bus, the in-process bus of `livecell dev`, which hands
//     events to handlers synchronously so the outbox stays the only queue.
//   - Consumers: Handlers must be idempotent by Event.ID or by a business key
//     (inventory grants are keyed by purchase id), which turns at-least-once
//     delivery into exactly-once effect. A Handler returns nil (done), a
//     Permanent error (poison: dead-lettered at once, never retried) or any
//     other error (transient: retried with backoff).
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Event is one domain event.
type Event struct {
	// ID is unique per event; redeliveries carry the same ID.
	ID string `json:"id"`
	// Type names the event and is its routing key: "<service>.<noun>.<verb>"
	// (store.purchase.completed).
	Type string `json:"type"`
	// PlayerID and HomeCell name the player the event is about; the outbox
	// row lives in the player's region.
	PlayerID string `json:"player_id"`
	HomeCell string `json:"home_cell"`
	// OccurredAt is when the state change committed (the producer's clock).
	OccurredAt time.Time `json:"occurred_at"`
	// Payload is the event body, JSON; its schema belongs to Type's
	// service (<svc>api).
	Payload json.RawMessage `json:"payload"`
}

// Limits that keep an event storable and routable everywhere.
const (
	MaxPayload = 32 << 10
	maxIDLen   = 128
)

var typePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,4}$`)

// New returns an event with a fresh ID and payload as its JSON body.
func New(typ, playerID, homeCell string, at time.Time, payload any) (Event, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("events.New %s: %w", typ, err)
	}
	e := Event{ID: uuid.NewString(), Type: typ, PlayerID: playerID, HomeCell: homeCell, OccurredAt: at.UTC(), Payload: b}
	return e, e.Validate()
}

// Validate checks what every transport relies on.
func (e Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > maxIDLen:
		return fmt.Errorf("events: event id %q must be 1-%d bytes", e.ID, maxIDLen)
	case !typePattern.MatchString(e.Type):
		return fmt.Errorf("events: event type %q must be dot-separated lower-case words", e.Type)
	case e.PlayerID == "" || e.HomeCell == "":
		return fmt.Errorf("events: event %s needs a player and a home cell", e.ID)
	case len(e.Payload) > MaxPayload || !json.Valid(e.Payload):
		return fmt.Errorf("events: event %s payload must be JSON of at most %d bytes", e.ID, MaxPayload)
	}
	return nil
}

// Decode unmarshals the payload strictly; failure is Permanent, since no
// retry makes a malformed payload readable.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Payload, v); err != nil {
		return Permanent(fmt.Errorf("events: decode %s %s: %w", e.Type, e.ID, err))
	}
	return nil
}

// Handler reacts to one event. See the package doc for what its error means.
type Handler func(ctx context.Context, e Event) error

// Publisher sends events. Publish returns nil only when every event is
// durably accepted (a broker confirm, or a handler that finished).
type Publisher interface {
	Publish(ctx context.Context, evs []Event) error
}

// Subscriber starts a consumer group: every event whose type matches one of
// topics (RabbitMQ topic patterns: "store.purchase.*", "#") is delivered to
// h until ctx ends. One group receives each event once, however many
// processes run it.
type Subscriber interface {
	Subscribe(ctx context.Context, group string, topics []string, h Handler) error
}

// permanentError marks a poison event.
type permanentError struct{ err error }

func (p permanentError) Error() string { return "permanent: " + p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as poison: the event is dead-lettered, not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err (anywhere in its chain) is Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Backoff is a capped exponential schedule with equal jitter, so retrying
// consumers and relays spread out instead of hammering a recovering
// dependency in step.
type Backoff struct {
	Base, Cap time.Duration
}

// Delay returns the pause before retry number attempt (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	if b.Base <= 0 {
		b.Base = 50 * time.Millisecond
	}
	if b.Cap < b.Base {
		b.Cap = 10 * time.Second
	}
	d := b.Cap
	if attempt < 30 && b.Base<<(attempt-1) < b.Cap {
		d = b.Base << (attempt - 1)
	}
	half := d / 2
	return half + rand.N(half+1)
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
