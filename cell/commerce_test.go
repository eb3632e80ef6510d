package cell

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/livecell/livecell/cell/accounts/memstore"
	"github.com/livecell/livecell/cell/accountsapi"
	catalogpg "github.com/livecell/livecell/cell/catalog/pgstore"
	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventory"
	inventorypg "github.com/livecell/livecell/cell/inventory/pgstore"
	"github.com/livecell/livecell/cell/inventoryapi"
	storemem "github.com/livecell/livecell/cell/store/memstore"
	storepg "github.com/livecell/livecell/cell/store/pgstore"
	"github.com/livecell/livecell/cell/store/stripetest"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/global/directory"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/amqpbus"
	"github.com/livecell/livecell/internal/events/eventstest"
	"github.com/livecell/livecell/internal/events/pgoutbox"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

const webhookSecret = "whsec_cell_test"

// waitPush returns the next inventory.updated push.
func waitPush(t *testing.T, conn *gameclient.Conn, within time.Duration) inventoryapi.Updated {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case p := <-conn.Pushes():
			if p.Topic != inventoryapi.TopicUpdated {
				continue
			}
			var u inventoryapi.Updated
			if err := json.Unmarshal(p.Data, &u); err != nil {
				t.Fatalf("push data %s: %v", p.Data, err)
			}
			return u
		case <-deadline:
			t.Fatalf("no inventory.updated push within %v", within)
		}
	}
}

func request[T any](t *testing.T, conn *gameclient.Conn, op protocol.Opcode, payload string) T {
	t.Helper()
	b, err := conn.Request(t.Context(), op, []byte(payload))
	if err != nil {
		t.Fatalf("%s %s: %v", op, payload, err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s answer %s: %v", op, b, err)
	}
	return out
}

// TestPurchaseFlowInProcess is `livecell dev`'s purchase: every service in
// one process, embedded stores, the in-process bus, the store in TEST MODE.
// Checkout over the gateway, pay, the push arrives; equip; a refund
// revokes, unequips and pushes again.
func TestPurchaseFlowInProcess(t *testing.T) {
	cells := testCells(t)
	eu, _ := cells.Cell("eu-west")
	keys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	purchases := storemem.New()
	c := startCell(t, Config{Cell: eu, Cells: cells, Services: AllServices(), APIListen: "127.0.0.1:0", SeedDevCatalog: true,
		Store: StoreConfig{WebhookSecret: webhookSecret}},
		Deps{Keys: keys, AccountsStore: memstore.New(), Directory: directory.NewMemory(),
			Commerce: CommerceDeps{StoreStore: purchases, Outbox: purchases.Outbox()}})
	api := "http://" + c.APIAddr()
	auth, err := (&accountsapi.Client{BaseURL: api}).Register(t.Context(), accountsapi.RegisterRequest{Username: "buyer", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gameclient.Dial(t.Context(), c.GatewayAddr(), gameclient.Options{Token: auth.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cat := request[catalogapi.Catalog](t, conn, protocol.OpCatalogGet, `{}`)
	if _, ok := cat.Offer("hat.crimson"); !ok {
		t.Fatalf("the development catalog has no hat.crimson offer: %+v", cat.Offers)
	}
	co := request[storeapi.CheckoutResponse](t, conn, protocol.OpStoreCheckout, `{"offer_id":"hat.crimson","currency":"usd"}`)
	if !co.TestMode || !strings.HasPrefix(co.CheckoutURL, api+storeapi.PathTestModePay) {
		t.Fatalf("checkout = %+v, want a test-mode URL on %s", co, api)
	}
	paid, err := (&storeapi.Client{}).TestModePay(t.Context(), co.CheckoutURL)
	if err != nil || paid.Status != storeapi.StatusPaid {
		t.Fatalf("pay = %+v, %v", paid, err)
	}
	u := waitPush(t, conn, 5*time.Second)
	if u.Reason != inventoryapi.ReasonPurchase || u.PurchaseID != co.PurchaseID || u.Owns("hat.crimson") != 1 {
		t.Fatalf("push = %+v, want the hat from purchase %s", u, co.PurchaseID)
	}
	inv := request[inventoryapi.Inventory](t, conn, protocol.OpInventoryEquip, `{"slot":"head","item_id":"hat.crimson"}`)
	if inv.Loadout["head"] != "hat.crimson" {
		t.Fatalf("equip answered %+v", inv)
	}
	if _, err := conn.Request(t.Context(), protocol.OpStoreCheckout, []byte(`{"offer_id":"hat.crimson","currency":"usd"}`)); err == nil || !strings.Contains(err.Error(), "already own") {
		t.Fatalf("buying the hat again = %v, want a conflict", err)
	}
	if _, err := conn.Request(t.Context(), protocol.OpInventoryEquip, []byte(`{"slot":"body","item_id":"jacket.ember"}`)); err == nil || !strings.Contains(err.Error(), "do not own") {
		t.Fatalf("equipping an item not owned = %v, want permission_denied", err)
	}

	// Stripe refunds the payment in full.
	p, err := purchases.Purchase(t.Context(), co.PurchaseID)
	if err != nil || p.PaymentIntent == "" {
		t.Fatalf("purchase %+v (%v) has no payment intent", p, err)
	}
	refund := stripetest.Event("", "charge.refunded", stripetest.Charge{ID: "ch_1", Amount: 499, AmountRefunded: 499, Currency: "usd", Refunded: true, PaymentIntent: p.PaymentIntent}, time.Now())
	deliverWebhook(t, api, refund)
	u = waitPush(t, conn, 5*time.Second)
	if u.Reason != inventoryapi.ReasonRefund || u.Owns("hat.crimson") != 0 || len(u.Loadout) != 0 {
		t.Fatalf("refund push = %+v, want the hat gone and unequipped", u)
	}
	if n := len(c.DeadLetters()); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

func deliverWebhook(t *testing.T, api string, payload []byte) storeapi.WebhookAnswer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, api+storeapi.PathWebhook, strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", stripetest.Sign(payload, webhookSecret, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans storeapi.WebhookAnswer
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&ans) != nil {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
	return ans
}

// front routes the cell's API address to the processes that serve each
// path, as the cell's load balancer does in a split deployment: the store
// and catalog in one process, accounts, inventory and the gateway in the
// other (whichever is up).
type front struct {
	mu          sync.Mutex
	store, rest string
}

func (f *front) set(store, rest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if store != "" {
		f.store = store
	}
	if rest != "" {
		f.rest = rest
	}
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	target := f.rest
	p := r.URL.Path
	if strings.HasPrefix(p, "/v1/store/") || strings.HasPrefix(p, "/v1/catalog") || strings.HasPrefix(p, "/v1/admin/catalog") ||
		strings.HasPrefix(p, "/internal/v1/ops/03") || strings.HasPrefix(p, "/internal/v1/ops/04") {
		target = f.store
	}
	f.mu.Unlock()
	if target == "" {
		http.Error(w, "process down", http.StatusBadGateway)
		return
	}
	u, _ := url.Parse("http://" + target)
	httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
}

// TestExactlyOnceAcrossFailures runs the store and the inventory as two
// processes on PostgreSQL and RabbitMQ and breaks what can break: the
// inventory is down while payments arrive, the broker is unreachable, the
// store process dies with events committed but not published, a webhook is
// delivered many times at once, an event is published twice. Every paid
// purchase is granted exactly once in the end.
func TestExactlyOnceAcrossFailures(t *testing.T) {
	pool := dbtest.Pool(t)
	amqpURL := eventstest.AMQPURL(t)
	for _, m := range []func(context.Context) error{catalogpg.New(pool).Migrate, inventorypg.New(pool).Migrate, storepg.New(pool).Migrate} {
		if err := m(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	broker, _ := url.Parse(amqpURL)
	proxy := eventstest.NewProxy(t, broker.Host)
	viaProxy := *broker
	viaProxy.Host = proxy.Addr()
	prefix := eventstest.Prefix()
	t.Cleanup(func() { deleteTopology(t, amqpURL, prefix) })

	fr := &front{}
	srv := httptest.NewServer(fr)
	defer srv.Close()
	cells := testCells(t)
	eu, _ := cells.Cell("eu-west")
	eu.API = strings.TrimPrefix(srv.URL, "http://")
	keys, err := token.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	accountsStore, dir := memstore.New(), directory.NewMemory()
	relay := events.RelayConfig{Poll: 50 * time.Millisecond, Backoff: events.Backoff{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond}}

	startStore := func() *Cell {
		c := startCell(t, Config{Cell: eu, Cells: cells, Services: []string{ServiceCatalog, ServiceStore}, APIListen: "127.0.0.1:0", SeedDevCatalog: true,
			Store:  StoreConfig{WebhookSecret: webhookSecret, PublicURL: srv.URL},
			Events: EventsConfig{AMQPURL: viaProxy.String(), Prefix: prefix, Relay: relay}},
			Deps{Keys: keys, Commerce: CommerceDeps{CatalogStore: catalogpg.New(pool), StoreStore: storepg.New(pool), Outbox: pgoutbox.New(pool, "eu-west")}})
		fr.set(c.APIAddr(), "")
		return c
	}
	startRest := func() *Cell {
		c := startCell(t, Config{Cell: eu, Cells: cells, Services: []string{ServiceAccounts, ServiceInventory, ServiceGateway}, APIListen: "127.0.0.1:0",
			Events: EventsConfig{AMQPURL: amqpURL, Prefix: prefix}},
			Deps{Keys: keys, AccountsStore: accountsStore, Directory: dir, Commerce: CommerceDeps{InventoryStore: inventorypg.New(pool)}})
		fr.set("", c.APIAddr())
		return c
	}
	stop := func(c *Cell) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}

	storeCell := startStore()
	rest := startRest()
	auth, err := (&accountsapi.Client{BaseURL: srv.URL}).Register(t.Context(), accountsapi.RegisterRequest{Username: "survivor", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	shop := &storeapi.Client{BaseURL: srv.URL}
	buy := func(n int) storeapi.CheckoutResponse {
		t.Helper()
		co, err := shop.Checkout(t.Context(), auth.AccessToken, storeapi.CheckoutRequest{OfferID: "gems.100", Currency: "usd", RequestID: fmt.Sprint(n)})
		if err != nil {
			t.Fatalf("checkout %d: %v", n, err)
		}
		return co
	}
	pay := func(co storeapi.CheckoutResponse) {
		t.Helper()
		if p, err := shop.TestModePay(t.Context(), co.CheckoutURL); err != nil || p.Status != storeapi.StatusPaid {
			t.Fatalf("pay %s: %+v, %v", co.PurchaseID, p, err)
		}
	}
	paid := 0

	// 1. Inventory down while payments arrive: webhooks are still taken.
	pending := []storeapi.CheckoutResponse{buy(1), buy(2), buy(3)}
	stop(rest)
	fr.set("", "127.0.0.1:1") // nothing listens there: the inventory is down
	for _, co := range pending {
		pay(co)
		paid++
	}
	outbox := pgoutbox.New(pool, "eu-west")
	waitFor(t, "the relay to hand the events to the broker, where they wait for the inventory", func() bool {
		n, err := outbox.Pending(t.Context())
		return err == nil && n == 0
	})

	// 2. RabbitMQ unreachable: the outbox holds what is paid meanwhile.
	proxy.Down()
	for i := 4; i <= 5; i++ {
		pay(buy(i))
		paid++
	}
	waitFor(t, "the outbox to hold the events paid while the broker was away", func() bool {
		n, err := outbox.Pending(t.Context())
		return err == nil && n == 2
	})

	// 3. The store process dies with those events committed, unpublished.
	stop(storeCell)
	proxy.Up()
	storeCell = startStore()
	waitFor(t, "the new store process to relay what the old one left", func() bool {
		n, err := outbox.Pending(t.Context())
		return err == nil && n == 0
	})

	// 4. One payment's webhook delivered eight times at once, and again.
	co := buy(6)
	payload := completedFor(t, pool, co.PurchaseID)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { deliverWebhook(t, srv.URL, payload) })
	}
	wg.Wait()
	if ans := deliverWebhook(t, srv.URL, payload); ans.Outcome != "duplicate" {
		t.Fatalf("ninth delivery: %+v, want duplicate", ans)
	}
	paid++

	// 5. An event published twice (a relay that died after the broker's
	// confirm and before deleting the row).
	republish(t, amqpURL, prefix, pool)

	// The inventory comes back: every purchase is granted, once.
	rest = startRest()
	waitFor(t, "every paid purchase granted", func() bool {
		inv, err := inventorypg.New(pool).Inventory(t.Context(), auth.PlayerID)
		return err == nil && inv.Owns("gems.100") >= paid
	})
	time.Sleep(300 * time.Millisecond) // let any duplicate arrive
	inv, err := inventorypg.New(pool).Inventory(t.Context(), auth.PlayerID)
	if err != nil || inv.Owns("gems.100") != paid {
		t.Fatalf("gems owned = %d (%v), want exactly %d: one per paid purchase", inv.Owns("gems.100"), err, paid)
	}
	var grants int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM inventory_grants WHERE player_id = $1 AND NOT revoked`, auth.PlayerID).Scan(&grants); err != nil || grants != paid {
		t.Fatalf("inventory_grants rows = %d (%v), want %d", grants, err, paid)
	}
	// And a purchase made now, with everything up, reaches the player's
	// session as a push.
	conn, err := gameclient.Dial(t.Context(), rest.GatewayAddr(), gameclient.Options{Token: auth.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pay(buy(7))
	if u := waitPush(t, conn, 10*time.Second); u.Owns("gems.100") != paid+1 {
		t.Fatalf("push after the last purchase shows %d gems, want %d", u.Owns("gems.100"), paid+1)
	}
}

// completedFor is the checkout.session.completed Stripe would send for a
// purchase recorded in the database.
func completedFor(t *testing.T, pool *pgxpool.Pool, purchaseID string) []byte {
	t.Helper()
	p, err := storepg.New(pool).Purchase(t.Context(), purchaseID)
	if err != nil {
		t.Fatal(err)
	}
	return stripetest.Event("", "checkout.session.completed", stripetest.Session{
		ID: p.SessionID, ClientReferenceID: p.ID, AmountTotal: p.Amount, Currency: p.Currency,
		PaymentStatus: "paid", Status: "complete", PaymentIntent: stripetest.ID("pi"),
	}, time.Now())
}

// republish publishes again the completion event of the oldest paid
// purchase, as a relay that died between the broker's confirm and deleting
// the outbox row would.
func republish(t *testing.T, amqpURL, prefix string, pool *pgxpool.Pool) {
	t.Helper()
	var id string
	if err := pool.QueryRow(t.Context(), `SELECT id FROM store_purchases WHERE status = 'paid' ORDER BY created_at LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	p, err := storepg.New(pool).Purchase(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.New(storeapi.TypePurchaseCompleted, p.PlayerID, p.HomeCell, time.Now(), storeapi.PurchaseEvent{
		PurchaseID: p.ID, PlayerID: p.PlayerID, HomeCell: p.HomeCell, OfferID: p.OfferID, Grants: p.Grants,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := amqpbus.New(amqpbus.Config{URL: amqpURL, Prefix: prefix, Groups: []amqpbus.Group{{Name: inventory.Group, Topics: inventory.Topics()}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Publish(t.Context(), []events.Event{e}); err != nil {
		t.Fatalf("republish: %v", err)
	}
}

func deleteTopology(t testing.TB, amqpURL, prefix string) {
	conn, err := amqp.Dial(amqpURL)
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
	for _, q := range []string{prefix + ".inventory", prefix + ".inventory.dlq"} {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	for _, x := range []string{prefix + ".events", prefix + ".events.dlx", prefix + ".push"} {
		_ = ch.ExchangeDelete(x, false, false)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
