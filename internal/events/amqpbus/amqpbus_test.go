package amqpbus

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/eventstest"
	"github.com/livecell/livecell/internal/protocol"
)

// newBus returns a bus on the test broker (through addr when not empty)
// with a unique prefix, whose topology is deleted when the test ends.
func newBus(t *testing.T, addr string, groups ...Group) (*Bus, *events.Metrics, *prometheus.Registry) {
	t.Helper()
	raw := eventstest.AMQPURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	direct := *u
	if addr != "" {
		u.Host = addr
	}
	reg := prometheus.NewRegistry()
	m, err := events.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: u.String(), Prefix: eventstest.Prefix(), Groups: groups, ConnectionName: "livecell-test-" + t.Name(),
		Retry: events.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond}, Reconnect: events.Backoff{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond}}
	b, err := New(cfg, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		deleteTopology(t, direct.String(), b.cfg)
	})
	return b, m, reg
}

func deleteTopology(t *testing.T, url string, c Config) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, g := range c.Groups {
		_, _ = ch.QueueDelete(c.queue(g.Name), false, false, false)
		_, _ = ch.QueueDelete(c.deadQueue(g.Name), false, false, false)
	}
	for _, x := range []string{c.eventsExchange(), c.deadExchange(), c.pushExchange()} {
		_ = ch.ExchangeDelete(x, false, false)
	}
}

// recorder records handled event ids.
type recorder struct {
	mu  sync.Mutex
	ids []string
}

func (r *recorder) add(id string) {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
}

func (r *recorder) distinct() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func (r *recorder) handle(ctx context.Context, e events.Event) error { r.add(e.ID); return nil }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func batch(n int) ([]events.Event, []string) {
	var evs []events.Event
	var ids []string
	for i := range n {
		e := eventstest.Event(i)
		evs = append(evs, e)
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return evs, ids
}

var group = Group{Name: "inventory", Topics: []string{"test.#"}}

func TestPublishBeforeConsumerStartsAndConsume(t *testing.T) {
	b, _, reg := newBus(t, "", group)
	evs, want := batch(5)
	if err := b.Publish(t.Context(), evs); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all events consumed", func() bool { return slices.Equal(r.distinct(), want) })
	if got := testutil.ToFloat64(mustCounter(t, reg, "livecell_events_consumed_total", "ok")); got < 5 {
		t.Errorf("consumed ok = %v, want 5", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sum"})
	c.Add(total)
	return c
}

func TestUnroutableEventFailsThePublish(t *testing.T) {
	b, _, _ := newBus(t, "", Group{Name: "other", Topics: []string{"other.#"}})
	evs, _ := batch(1)
	err := b.Publish(t.Context(), evs)
	if err == nil || !strings.Contains(err.Error(), "no queue takes") {
		t.Fatalf("Publish of an event no queue takes = %v, want an error (it would be dropped)", err)
	}
}

func TestPoisonIsDeadLetteredListedAndReplayed(t *testing.T) {
	b, _, reg := newBus(t, "", group)
	var poisoned atomic.Bool
	poisoned.Store(true)
	var r recorder
	h := func(ctx context.Context, e events.Event) error {
		if poisoned.Load() {
			return events.Permanent(errors.New("unknown item"))
		}
		return r.handle(ctx, e)
	}
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, h); err != nil {
		t.Fatal(err)
	}
	evs, want := batch(2)
	if err := b.Publish(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two dead letters", func() bool {
		return testutil.ToFloat64(mustCounter(t, reg, "livecell_events_consumed_total", "dead_lettered")) == 2
	})
	var dead []DeadLetter
	waitFor(t, "the dead-letter queue to hold both", func() bool {
		var err error
		dead, err = b.DeadLetters(t.Context(), group.Name, 10)
		return err == nil && len(dead) == 2
	})
	var got []string
	for _, d := range dead {
		got = append(got, d.Event.ID)
		if d.Reason != "rejected" || d.Count != 1 || d.At.IsZero() {
			t.Errorf("dead letter %s: reason %q count %d at %v, want rejected once with a time", d.Event.ID, d.Reason, d.Count, d.At)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
	// Listing leaves them in place.
	if again, _ := b.DeadLetters(t.Context(), group.Name, 10); len(again) != 2 {
		t.Fatalf("a second listing found %d, want the same 2", len(again))
	}
	poisoned.Store(false)
	n, err := b.Replay(t.Context(), group.Name, 10)
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	waitFor(t, "replayed events handled", func() bool { return slices.Equal(r.distinct(), want) })
	if left, _ := b.DeadLetters(t.Context(), group.Name, 10); len(left) != 0 {
		t.Fatalf("after replay %d dead letters are left", len(left))
	}
}

func TestMalformedMessageIsDeadLettered(t *testing.T) {
	b, _, _ := newBus(t, "", group)
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	conn, err := b.connection(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.PublishWithContext(t.Context(), b.cfg.eventsExchange(), "test.thing.garbage", false, false, amqp.Publishing{Body: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the garbage in the dead-letter queue", func() bool {
		dead, err := b.DeadLetters(t.Context(), group.Name, 10)
		return err == nil && len(dead) == 1 && dead[0].Raw == "{not json"
	})
	if len(r.distinct()) != 0 {
		t.Fatal("the handler saw a malformed message")
	}
}

func TestTransientErrorsAreRetriedNotDeadLettered(t *testing.T) {
	b, _, _ := newBus(t, "", group)
	var fails atomic.Int32
	var r recorder
	h := func(ctx context.Context, e events.Event) error {
		if fails.Add(1) <= 3 {
			return errors.New("database down")
		}
		return r.handle(ctx, e)
	}
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, h); err != nil {
		t.Fatal(err)
	}
	evs, want := batch(1)
	if err := b.Publish(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event handled after three failures", func() bool { return slices.Equal(r.distinct(), want) })
	if dead, _ := b.DeadLetters(t.Context(), group.Name, 10); len(dead) != 0 {
		t.Fatalf("a transient failure dead-lettered %d events", len(dead))
	}
}

// A consumer that dies between receiving and acking (its process crashed)
// leaves the delivery unacked: the broker gives it to the next consumer.
func TestUnackedDeliveryIsRedelivered(t *testing.T) {
	b, _, _ := newBus(t, "", group)
	first, stop := context.WithCancel(t.Context())
	received := make(chan string, 1)
	crash := func(ctx context.Context, e events.Event) error {
		select {
		case received <- e.ID:
		default:
		}
		<-ctx.Done() // never acks
		return ctx.Err()
	}
	if err := b.Subscribe(first, group.Name, group.Topics, crash); err != nil {
		t.Fatal(err)
	}
	evs, want := batch(1)
	if err := b.Publish(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("first consumer never got the event")
	}
	stop()
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "redelivery to the second consumer", func() bool { return slices.Equal(r.distinct(), want) })
}

func TestReconnectsAfterTheConnectionIsCut(t *testing.T) {
	u, _ := url.Parse(eventstest.AMQPURL(t))
	proxy := eventstest.NewProxy(t, u.Host)
	b, _, reg := newBus(t, proxy.Addr(), group)
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	before, wantBefore := batch(3)
	if err := b.Publish(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "events before the cut", func() bool { return slices.Equal(r.distinct(), wantBefore) })

	proxy.Down()
	waitFor(t, "the bus to notice", func() bool { return !b.Connected() })
	during, _ := batch(2)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := b.Publish(ctx, during)
	cancel()
	if err == nil {
		t.Fatal("Publish while the broker is unreachable = nil, want an error (the outbox must keep the events)")
	}
	proxy.Up()
	waitFor(t, "reconnection", b.Connected)
	if err := b.Publish(t.Context(), during); err != nil {
		t.Fatalf("Publish after reconnecting = %v", err)
	}
	want := append(slices.Clone(wantBefore), during[0].ID, during[1].ID)
	slices.Sort(want)
	waitFor(t, "the consumer to resume", func() bool { return slices.Equal(r.distinct(), want) })
	if got := connects(t, reg); got < 2 {
		t.Errorf("connections = %v, want at least 2 (a reconnection)", got)
	}
}

func connects(t *testing.T, reg *prometheus.Registry) float64 {
	return testutil.ToFloat64(mustCounter(t, reg, "livecell_events_broker_connects_total", "ok"))
}

// The relay keeps events in the outbox while the broker is away and
// delivers every one of them after: nothing lost.
func TestRelayHoldsTheOutboxThroughABrokerOutage(t *testing.T) {
	u, _ := url.Parse(eventstest.AMQPURL(t))
	proxy := eventstest.NewProxy(t, u.Host)
	b, m, _ := newBus(t, proxy.Addr(), group)
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connection", b.Connected)
	proxy.Down()
	waitFor(t, "the bus to notice", func() bool { return !b.Connected() })

	out := events.NewMemOutbox(nil)
	relay := events.NewRelay(events.RelayConfig{Poll: 20 * time.Millisecond, Backoff: events.Backoff{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond}}, out, publishWithin{b, 200 * time.Millisecond}, nil, m)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()

	evs, want := batch(20)
	out.Add(evs...)
	relay.Kick()
	time.Sleep(300 * time.Millisecond)
	if out.Len() != 20 || len(r.distinct()) != 0 {
		t.Fatalf("during the outage: outbox %d, consumed %d; want 20 held, 0 consumed", out.Len(), len(r.distinct()))
	}
	proxy.Up()
	waitFor(t, "every event delivered after the outage", func() bool { return slices.Equal(r.distinct(), want) })
	waitFor(t, "the outbox to empty", func() bool { return out.Len() == 0 })
}

// publishWithin bounds each publish, as the relay's caller would.
type publishWithin struct {
	b *Bus
	d time.Duration
}

func (p publishWithin) Publish(ctx context.Context, evs []events.Event) error {
	ctx, cancel := context.WithTimeout(ctx, p.d)
	defer cancel()
	return p.b.Publish(ctx, evs)
}

// The broker itself closing the connection (what a broker restart or an
// operator's rabbitmqctl close_connection does: connection.close with
// CONNECTION_FORCED) is recovered from like a network cut. It needs
// rabbitmqctl on the broker's machine; without it the test skips, in CI too:
// the proxy tests above cover reconnection either way.
func TestReconnectsAfterTheBrokerClosesTheConnection(t *testing.T) {
	ctl, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		t.Skip("rabbitmqctl not installed; reconnection is covered by the proxy tests")
	}
	b, _, reg := newBus(t, "", group)
	var r recorder
	if err := b.Subscribe(t.Context(), group.Name, group.Topics, r.handle); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connection", b.Connected)
	pid := connectionPID(t, ctl, b.cfg.ConnectionName)
	if pid == "" {
		t.Skip("rabbitmqctl cannot list this broker's connections (no access to its node)")
	}
	if out, err := exec.Command(ctl, "close_connection", pid, "livecell test: simulated broker restart").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl close_connection: %v: %s", err, out)
	}
	waitFor(t, "a second connection", func() bool { return connects(t, reg) >= 2 && b.Connected() })
	evs, want := batch(3)
	if err := b.Publish(t.Context(), evs); err != nil {
		t.Fatalf("Publish after the broker closed the connection = %v", err)
	}
	waitFor(t, "consumption to resume", func() bool { return slices.Equal(r.distinct(), want) })
}

// connectionPID finds the broker's process id of the connection named
// name. The tab-separated output is used because the JSON formatter prints
// pids in a form close_connection does not accept.
func connectionPID(t *testing.T, ctl, name string) string {
	out, err := exec.Command(ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers").Output()
	if err != nil {
		t.Logf("rabbitmqctl list_connections: %v", err)
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, `"`+name+`"`) {
			return pid
		}
	}
	return ""
}

func TestPushReachesTheGatewayConsumer(t *testing.T) {
	b, _, _ := newBus(t, "", group)
	got := make(chan string, 1)
	b.ConsumePushes(t.Context(), func(ctx context.Context, playerID string, p protocol.Push) {
		got <- playerID + " " + p.Topic + " " + string(p.Data)
	})
	push := protocol.Push{Topic: "inventory.updated", ID: "evt-1", Data: json.RawMessage(`{"version":3}`)}
	want := "p-42 inventory.updated {\"version\":3}"
	deadline := time.After(15 * time.Second)
	for {
		// The consumer binds asynchronously; pushes before that are lost
		// (at-most-once), so keep sending until one arrives.
		if err := b.Push(t.Context(), "p-42", push); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("delivered %q, want %q", g, want)
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("push never delivered")
		}
	}
}
