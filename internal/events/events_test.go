package events_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/eventstest"
)

func TestMemOutboxContract(t *testing.T) {
	eventstest.RunOutbox(t, func(t *testing.T) (events.Outbox, func(...events.Event)) {
		o := events.NewMemOutbox(nil)
		return o, o.Add
	})
}

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"store.purchase.completed", "store.purchase.completed", true},
		{"store.purchase.*", "store.purchase.completed", true},
		{"store.purchase.*", "store.purchase", false},
		{"store.purchase.*", "store.purchase.completed.late", false},
		{"store.#", "store.purchase.completed", true},
		{"store.#", "store", true},
		{"#", "anything.at.all", true},
		{"*.purchase.*", "store.purchase.refunded", true},
		{"#.refunded", "store.purchase.refunded", true},
		{"#.refunded", "store.purchase.completed", false},
		{"store.*.refunded", "store.refunded", false},
		{"inventory.#", "store.purchase.completed", false},
	}
	for _, tt := range tests {
		if got := events.TopicMatch(tt.pattern, tt.key); got != tt.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

func TestEventValidate(t *testing.T) {
	good := eventstest.Event(1)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for name, mutate := range map[string]func(*events.Event){
		"no id":        func(e *events.Event) { e.ID = "" },
		"bad type":     func(e *events.Event) { e.Type = "Store Purchase" },
		"one word":     func(e *events.Event) { e.Type = "store" },
		"no player":    func(e *events.Event) { e.PlayerID = "" },
		"no home":      func(e *events.Event) { e.HomeCell = "" },
		"not JSON":     func(e *events.Event) { e.Payload = []byte("{") },
		"huge payload": func(e *events.Event) { e.Payload = make([]byte, events.MaxPayload+1) },
	} {
		e := good
		mutate(&e)
		if e.Validate() == nil {
			t.Errorf("%s: Validate = nil, want an error", name)
		}
	}
	var v struct{ N string }
	if err := good.Decode(&v); !events.IsPermanent(err) {
		t.Errorf("Decode into the wrong type = %v, want a Permanent error", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	b := events.Backoff{Base: 10 * time.Millisecond, Cap: 80 * time.Millisecond}
	for attempt := 1; attempt < 100; attempt++ {
		want := min(10*time.Millisecond<<min(attempt-1, 20), 80*time.Millisecond)
		if d := b.Delay(attempt); d < want/2 || d > want {
			t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
		}
	}
}

// recorder is a consumer that records what it handled and fails on demand.
type recorder struct {
	mu   sync.Mutex
	got  []string
	fail func(events.Event) error
}

func (r *recorder) handle(ctx context.Context, e events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	r.got = append(r.got, e.ID)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestBusRoutesByTopic(t *testing.T) {
	bus := events.NewBus(nil, nil)
	var inv, audit recorder
	if err := bus.Subscribe(t.Context(), "inventory", []string{"test.thing.*"}, inv.handle); err != nil {
		t.Fatal(err)
	}
	if err := bus.Subscribe(t.Context(), "audit", []string{"#"}, audit.handle); err != nil {
		t.Fatal(err)
	}
	if err := bus.Subscribe(t.Context(), "inventory", nil, inv.handle); err == nil {
		t.Fatal("second consumer for one group = nil, want an error")
	}
	other := eventstest.Event(2)
	other.Type = "other.thing.happened"
	evs := []events.Event{eventstest.Event(1), other}
	if err := bus.Publish(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if got := inv.ids(); !slices.Equal(got, []string{evs[0].ID}) {
		t.Errorf("inventory got %v, want only the matching event", got)
	}
	if got := audit.ids(); !slices.Equal(got, []string{evs[0].ID, evs[1].ID}) {
		t.Errorf("audit got %v, want both in order", got)
	}
}

func TestBusWithoutConsumerHoldsEvents(t *testing.T) {
	bus := events.NewBus(nil, nil)
	bus.Declare("inventory", []string{"test.#"})
	out := events.NewMemOutbox(nil)
	e := eventstest.Event(1)
	out.Add(e)
	relay := events.NewRelay(events.RelayConfig{Poll: 10 * time.Millisecond, Backoff: events.Backoff{Base: time.Millisecond, Cap: 5 * time.Millisecond}}, out, bus, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	err := bus.Publish(t.Context(), []events.Event{e})
	if apierr.CodeOf(err) != apierr.Unavailable {
		t.Fatalf("Publish with the group's consumer stopped = %v, want unavailable", err)
	}
	time.Sleep(50 * time.Millisecond)
	if out.Len() != 1 {
		t.Fatalf("outbox holds %d events while the consumer is down, want 1", out.Len())
	}
	var inv recorder
	if err := bus.Subscribe(t.Context(), "inventory", nil, inv.handle); err != nil {
		t.Fatal(err)
	}
	relay.Kick()
	waitFor(t, func() bool { return out.Len() == 0 && len(inv.ids()) == 1 })
}

func TestBusDeadLettersPoisonAndReplays(t *testing.T) {
	bus := events.NewBus(nil, nil)
	poisoned := true
	inv := recorder{fail: func(e events.Event) error {
		if poisoned {
			return events.Permanent(errors.New("unknown item"))
		}
		return nil
	}}
	if err := bus.Subscribe(t.Context(), "inventory", []string{"#"}, inv.handle); err != nil {
		t.Fatal(err)
	}
	e := eventstest.Event(1)
	if err := bus.Publish(t.Context(), []events.Event{e}); err != nil {
		t.Fatalf("Publish of a poison event = %v, want nil (dead-lettered, not retried)", err)
	}
	dead := bus.DeadLetters()
	if len(dead) != 1 || dead[0].Event.ID != e.ID || dead[0].Group != "inventory" {
		t.Fatalf("dead letters = %+v, want the poison event for inventory", dead)
	}
	if n, err := bus.Replay(t.Context(), "inventory"); err != nil || n != 0 || len(bus.DeadLetters()) != 1 {
		t.Fatalf("Replay while still poison = %d, %v, %d dead; want 0 handled and it stays dead", n, err, len(bus.DeadLetters()))
	}
	poisoned = false
	if n, err := bus.Replay(t.Context(), "inventory"); err != nil || n != 1 {
		t.Fatalf("Replay after the fix = %d, %v; want 1", n, err)
	}
	if len(bus.DeadLetters()) != 0 || !slices.Equal(inv.ids(), []string{e.ID}) {
		t.Fatalf("after replay: dead %v, handled %v", bus.DeadLetters(), inv.ids())
	}
}

// failingPublisher fails until healed, then records.
type failingPublisher struct {
	mu     sync.Mutex
	broken bool
	got    []string
}

func (p *failingPublisher) Publish(ctx context.Context, evs []events.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken {
		return errors.New("broker down")
	}
	for _, e := range evs {
		p.got = append(p.got, e.ID)
	}
	return nil
}

func (p *failingPublisher) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func TestRelayHoldsEventsWhileThePublisherFails(t *testing.T) {
	out := events.NewMemOutbox(nil)
	pub := &failingPublisher{broken: true}
	relay := events.NewRelay(events.RelayConfig{Batch: 2, Poll: 10 * time.Millisecond, Backoff: events.Backoff{Base: time.Millisecond, Cap: 10 * time.Millisecond}}, out, pub, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var want []string
	for i := range 5 {
		e := eventstest.Event(i)
		want = append(want, e.ID)
		out.Add(e)
		relay.Kick()
	}
	time.Sleep(60 * time.Millisecond)
	if out.Len() != 5 || len(pub.ids()) != 0 {
		t.Fatalf("while the broker is down: outbox %d, published %v; want 5 held and none published", out.Len(), pub.ids())
	}
	pub.mu.Lock()
	pub.broken = false
	pub.mu.Unlock()
	waitFor(t, func() bool { return out.Len() == 0 })
	if got := pub.ids(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want every event once, in order %v", got, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
