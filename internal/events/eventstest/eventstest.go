// Package eventstest is the contract every events.Outbox implementation
// must pass, and small helpers for tests of event producers and consumers.
package eventstest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livecell/livecell/internal/events"
)

// Factory returns an empty outbox and a function that commits events into
// it the way its producers do (in a transaction of its own, for SQL).
type Factory func(t *testing.T) (events.Outbox, func(evs ...events.Event))

// RunOutbox runs the outbox contract.
func RunOutbox(t *testing.T, newOutbox Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, o events.Outbox, add func(...events.Event))
	}{
		{"ClaimInOrderAndDelete", testClaimInOrder},
		{"LeaseHidesAndExpires", testLease},
		{"Release", testRelease},
		{"ConcurrentClaimsDoNotOverlap", testConcurrentClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, add := newOutbox(t)
			tt.fn(t, o, add)
		})
	}
}

// Event returns a valid event numbered i.
func Event(i int) events.Event {
	e, err := events.New("test.thing.happened", fmt.Sprintf("player-%d", i%3), "eu-west",
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i)*time.Millisecond), map[string]int{"n": i})
	if err != nil {
		panic(err)
	}
	return e
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testClaimInOrder(t *testing.T, o events.Outbox, add func(...events.Event)) {
	ctx := t.Context()
	var all []events.Event
	for i := range 5 {
		e := Event(i)
		all = append(all, e)
		add(e) // one commit each, so the order is the commit order
	}
	got, err := o.Claim(ctx, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), ids(all[:3])) {
		t.Fatalf("Claim(3) = %v, want the three oldest %v", ids(got), ids(all[:3]))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], all[i]) {
			t.Errorf("claimed event %d = %+v, want %+v", i, got[i], all[i])
		}
	}
	if err := o.Delete(ctx, append(ids(got), "no-such-event")); err != nil {
		t.Fatal(err)
	}
	rest, err := o.Claim(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(rest), ids(all[3:])) {
		t.Fatalf("after deleting the first three, Claim = %v, want %v", ids(rest), ids(all[3:]))
	}
	if err := o.Delete(ctx, ids(rest)); err != nil {
		t.Fatal(err)
	}
	if none, err := o.Claim(ctx, 10, 0); err != nil || len(none) != 0 {
		t.Fatalf("empty outbox: Claim = %v, %v; want nothing", ids(none), err)
	}
}

func testLease(t *testing.T, o events.Outbox, add func(...events.Event)) {
	ctx := t.Context()
	add(Event(1), Event(2))
	first, err := o.Claim(ctx, 10, 300*time.Millisecond)
	if err != nil || len(first) != 2 {
		t.Fatalf("Claim = %v, %v; want both events", ids(first), err)
	}
	if again, err := o.Claim(ctx, 10, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("Claim during the lease = %v, %v; want nothing (another relay holds them)", ids(again), err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		again, err := o.Claim(ctx, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) == 2 {
			return // the expired lease made them claimable again: nothing is lost
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never came back after their lease expired (got %v)", ids(again))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testRelease(t *testing.T, o events.Outbox, add func(...events.Event)) {
	ctx := t.Context()
	add(Event(1), Event(2))
	got, err := o.Claim(ctx, 10, time.Hour)
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim = %v, %v", ids(got), err)
	}
	if err := o.Release(ctx, ids(got[:1])); err != nil {
		t.Fatal(err)
	}
	again, err := o.Claim(ctx, 10, time.Hour)
	if err != nil || !slices.Equal(ids(again), ids(got[:1])) {
		t.Fatalf("after releasing %v, Claim = %v, %v; want exactly the released one", ids(got[:1]), ids(again), err)
	}
}

func testConcurrentClaims(t *testing.T, o events.Outbox, add func(...events.Event)) {
	const n = 40
	for i := range n {
		add(Event(i))
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				got, err := o.Claim(t.Context(), 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("relays claimed %d distinct events, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s claimed %d times under live leases, want once", id, c)
		}
	}
}
