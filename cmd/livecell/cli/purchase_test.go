package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/amqpbus"
	"github.com/livecell/livecell/internal/events/eventstest"
	"github.com/livecell/livecell/internal/probe"
)

// purchaseProbe runs `livecell probe --purchase --json` against w.
func purchaseProbe(t *testing.T, w *world, args ...string) probe.PurchaseResult {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"probe", "--purchase", "--json", "--router", w.routerURL()}, args...)...)
	var res probe.PurchaseResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("probe --purchase printed %q (%v); stderr %s", stdout, err, stderr)
	}
	if code != 0 || !res.OK {
		t.Fatalf("probe --purchase exited %d: %+v; stderr %s", code, res, stderr)
	}
	return res
}

func checkPurchase(t *testing.T, res probe.PurchaseResult, offer string) {
	t.Helper()
	if !res.TestMode || res.Offer != offer || res.Owned != 1 || res.PurchaseID == "" {
		t.Errorf("purchase = %+v, want %s bought once in test mode", res, offer)
	}
	if res.WebhookToPushMS <= 0 || res.WebhookToPushMS < res.WebhookMS/2 {
		t.Errorf("webhook → push = %v ms (webhook %v ms), want a positive time", res.WebhookToPushMS, res.WebhookMS)
	}
}

func TestDevWorldPurchase(t *testing.T) {
	w := startTestWorld(t, "")
	for _, hint := range []string{"eu-west", "us-east"} {
		res := purchaseProbe(t, w, "--region-hint", hint)
		checkPurchase(t, res, "hat.crimson")
		if res.HomeCell != hint {
			t.Errorf("bought in %s, want %s", res.HomeCell, hint)
		}
	}
	checkPurchase(t, purchaseProbe(t, w, "--offer", "gems.100"), "gems.100")
	_, stderr, code := runCLI(t, "probe", "--purchase", "--router", w.routerURL(), "--offer", "no.such.offer")
	if code == 0 || !strings.Contains(stderr, "checkout") || !strings.Contains(stderr, "unknown offer") {
		t.Errorf("probe of an unknown offer exited %d: %s", code, stderr)
	}
}

func TestDevWorldPurchasePostgres(t *testing.T) {
	pool := dbtest.Pool(t)
	schema := pool.Config().ConnConfig.RuntimeParams["search_path"]
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	w := startTestWorld(t, u.String())
	checkPurchase(t, purchaseProbe(t, w), "hat.crimson")
	var grants int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM inventory_grants`).Scan(&grants); err != nil || grants != 1 {
		t.Fatalf("inventory_grants = %d (%v), want 1", grants, err)
	}
}

// TestEventsDLQCommand dead-letters an event on the real broker, lists it
// with the CLI and replays it to the group's queue.
func TestEventsDLQCommand(t *testing.T) {
	amqpURL := eventstest.AMQPURL(t)
	prefix := eventstest.Prefix()
	b, err := amqpbus.New(amqpbus.Config{URL: amqpURL, Prefix: prefix, Groups: eventGroups()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Cleanup(func() { dropTopology(t, amqpURL, prefix) })
	ctx, cancel := context.WithCancel(t.Context())
	handled := make(chan string, 4)
	poison := func(ctx context.Context, e events.Event) error {
		handled <- e.ID
		return events.Permanent(errors.New("unknown item"))
	}
	if err := b.Subscribe(ctx, "inventory", eventGroups()[0].Topics, poison); err != nil {
		t.Fatal(err)
	}
	e, err := events.New("store.purchase.completed", "p-1", "eu-west", time.Now(), map[string]string{"purchase_id": "pur_1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), []events.Event{e}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the poison event was never consumed")
	}
	cancel() // no consumer: the replayed event stays in the queue

	var out []amqpbus.DeadLetter
	deadline := time.Now().Add(10 * time.Second)
	for len(out) == 0 && time.Now().Before(deadline) {
		stdout, stderr, code := runCLI(t, "events", "dlq", "list", "--amqp-url", amqpURL, "--amqp-prefix", prefix, "--json")
		if code != 0 {
			t.Fatalf("events dlq list exited %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("dlq list printed %q: %v", stdout, err)
		}
	}
	if len(out) != 1 || out[0].Event.ID != e.ID || out[0].Reason != "rejected" {
		t.Fatalf("dlq list = %+v, want the poison event, rejected", out)
	}
	stdout, stderr, code := runCLI(t, "events", "dlq", "replay", "--amqp-url", amqpURL, "--amqp-prefix", prefix)
	if code != 0 || !strings.Contains(stdout, "replayed 1 dead letter") {
		t.Fatalf("events dlq replay exited %d: %s %s", code, stdout, stderr)
	}
	stdout, _, _ = runCLI(t, "events", "dlq", "list", "--amqp-url", amqpURL, "--amqp-prefix", prefix)
	if !strings.Contains(stdout, "0 dead letter(s)") {
		t.Fatalf("after replay: %s", stdout)
	}
	if _, stderr, code := runCLI(t, "events", "dlq", "list"); code == 0 || !strings.Contains(stderr, "--amqp-url") {
		t.Fatalf("dlq list without a broker exited %d: %s", code, stderr)
	}
}

func dropTopology(t *testing.T, amqpURL, prefix string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, q := range []string{prefix + ".inventory", prefix + ".inventory.dlq"} {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, x := range []string{prefix + ".events", prefix + ".events.dlx", prefix + ".push"} {
		_ = ch.ExchangeDelete(x, false, false)
	}
}
