package events

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/internal/apierr"
)

// Bus is the in-process event bus of `livecell dev` and single-process
// deployments without RabbitMQ. Publish hands each event to every consumer
// group whose topics match, synchronously, and returns only when all of
// them handled it: the outbox is the only queue, so nothing is held in
// memory that a crash could lose (with a SQL store the outbox survives the
// crash and the relay publishes again).
//
// Groups are declared up front (Declare), like durable RabbitMQ queues: an
// event for a declared group that has no consumer right now (the service is
// stopped) fails the publish, so the relay keeps it in the outbox until the
// consumer is back. A Permanent error from a handler dead-letters the
// event for that group (DeadLetters, Replay); any other error fails the
// publish and the relay retries the batch later. Handlers must be
// idempotent: a retried batch reaches groups that already handled it.
type Bus struct {
	log *slog.Logger
	m   *Metrics

	mu     sync.Mutex
	groups map[string]*busGroup
	order  []string // declaration order, for deterministic delivery
	dead   []DeadLetter
}

type busGroup struct {
	topics []string
	h      Handler // nil while no consumer is subscribed
}

// DeadLetter is an event a group refused as poison.
type DeadLetter struct {
	Group  string    `json:"group"`
	Event  Event     `json:"event"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

var (
	_ Publisher  = (*Bus)(nil)
	_ Subscriber = (*Bus)(nil)
)

// NewBus returns a bus with no groups.
func NewBus(log *slog.Logger, m *Metrics) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bus{log: log, m: m, groups: map[string]*busGroup{}}
}

// Declare creates group with its topics if it does not exist. Events
// published after Declare wait in the outbox for the group's consumer.
func (b *Bus) Declare(group string, topics []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.declareLocked(group, topics)
}

func (b *Bus) declareLocked(group string, topics []string) *busGroup {
	g, ok := b.groups[group]
	if !ok {
		g = &busGroup{}
		b.groups[group] = g
		b.order = append(b.order, group)
	}
	for _, t := range topics {
		if !slices.Contains(g.topics, t) {
			g.topics = append(g.topics, t)
		}
	}
	return g
}

// Subscribe declares group and makes h its consumer until ctx ends. A group
// has one consumer in process; a second Subscribe while one is active fails.
func (b *Bus) Subscribe(ctx context.Context, group string, topics []string, h Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.declareLocked(group, topics)
	if g.h != nil {
		return fmt.Errorf("events.Bus: group %q already has a consumer", group)
	}
	g.h = h
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		g.h = nil
		b.mu.Unlock()
	})
	return nil
}

// Publish delivers evs in order; see Bus.
func (b *Bus) Publish(ctx context.Context, evs []Event) error {
	for _, e := range evs {
		for _, name := range b.matching(e.Type) {
			if _, err := b.deliver(ctx, name, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// matching returns the groups whose topics match typ.
func (b *Bus) matching(typ string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, name := range b.order {
		if slices.ContainsFunc(b.groups[name].topics, func(t string) bool { return TopicMatch(t, typ) }) {
			out = append(out, name)
		}
	}
	return out
}

// deliver hands e to group's consumer; handled is false when the event was
// dead-lettered instead.
func (b *Bus) deliver(ctx context.Context, group string, e Event) (handled bool, err error) {
	b.mu.Lock()
	h := b.groups[group].h
	b.mu.Unlock()
	if h == nil {
		return false, apierr.New(apierr.Unavailable, "consumer group %s is not running", group)
	}
	start := time.Now()
	err = h(ctx, e)
	switch {
	case err == nil:
		b.m.Handled(group, ResultOK, time.Since(start))
		return true, nil
	case IsPermanent(err):
		b.m.Handled(group, ResultDeadLettered, time.Since(start))
		b.log.Error("event dead-lettered", "group", group, "event", e.ID, "type", e.Type, "error", err)
		b.mu.Lock()
		b.dead = append(b.dead, DeadLetter{Group: group, Event: e, Reason: err.Error(), At: time.Now().UTC()})
		b.mu.Unlock()
		return false, nil
	default:
		b.m.Handled(group, ResultRetried, time.Since(start))
		return false, fmt.Errorf("events.Bus: group %s, event %s: %w", group, e.ID, err)
	}
}

// DeadLetters returns the dead-lettered events, oldest first.
func (b *Bus) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dead)
}

// Replay hands every dead letter of group back to its consumer and returns
// how many were handled; poison is dead-lettered again, and a transient
// failure stops the replay with the rest still dead-lettered.
func (b *Bus) Replay(ctx context.Context, group string) (int, error) {
	b.mu.Lock()
	var todo []DeadLetter
	b.dead = slices.DeleteFunc(b.dead, func(d DeadLetter) bool {
		if d.Group == group {
			todo = append(todo, d)
			return true
		}
		return false
	})
	b.mu.Unlock()
	n := 0
	for i, d := range todo {
		handled, err := b.deliver(ctx, group, d.Event)
		if err != nil {
			b.mu.Lock()
			b.dead = append(b.dead, todo[i:]...)
			b.mu.Unlock()
			return n, err
		}
		if handled {
			n++
		}
	}
	return n, nil
}

// TopicMatch reports whether an AMQP topic pattern matches a routing key:
// words are dot-separated, "*" matches exactly one word and "#" zero or
// more. The in-process bus routes exactly as RabbitMQ's topic exchange does.
func TopicMatch(pattern, key string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(key, "."))
}

func matchWords(p, k []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(k); i++ {
				if matchWords(p[1:], k[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(k) == 0 {
				return false
			}
		default:
			if len(k) == 0 || k[0] != p[0] {
				return false
			}
		}
		p, k = p[1:], k[1:]
	}
	return len(k) == 0
}
