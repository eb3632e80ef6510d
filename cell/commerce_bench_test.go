package cell

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	catalogpg "github.com/livecell/livecell/cell/catalog/pgstore"
	"github.com/livecell/livecell/cell/catalogapi"
	inventorypg "github.com/livecell/livecell/cell/inventory/pgstore"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/store"
	storepg "github.com/livecell/livecell/cell/store/pgstore"
	"github.com/livecell/livecell/cell/store/stripetest"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/config"
	"github.com/livecell/livecell/internal/db/dbtest"
	"github.com/livecell/livecell/internal/events/eventstest"
	"github.com/livecell/livecell/internal/events/pgoutbox"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/token"
)

// BenchmarkWebhookToPush measures fulfillment on the production path: a
// signed Stripe webhook POSTed to the store, the purchase and its outbox
// event committed in PostgreSQL, the relay publishing to RabbitMQ with a
// confirm, the inventory consuming it and granting in PostgreSQL, and the
// inventory.updated push travelling through RabbitMQ's push exchange to the
// gateway and over the player's TCP session. Latency is from the start of
// the webhook POST to the push's arrival at the client; purchases/s is
// b.N over the time from the first webhook to the last push. Checkout is
// outside the measurement (a person pays in between).
//
// one-at-a-time sends the next webhook only after the previous push
// arrived: the latency of the pipeline alone. webhooks-in-flight=N keeps N
// webhooks outstanding: throughput, with latency that includes queueing.
//
//	LIVECELL_TEST_DATABASE_URL=… LIVECELL_TEST_AMQP_URL=… \
//	  go test -run '^$' -bench WebhookToPush -benchtime 400x ./cell/
func BenchmarkWebhookToPush(b *testing.B) {
	b.Run("one-at-a-time", func(b *testing.B) { benchWebhookToPush(b, 1, true) })
	for _, workers := range []int{1, 16} {
		b.Run(fmt.Sprintf("webhooks-in-flight=%d", workers), func(b *testing.B) { benchWebhookToPush(b, workers, false) })
	}
}

func benchWebhookToPush(b *testing.B, workers int, closedLoop bool) {
	const players = 256
	pool := dbtest.Pool(b)
	amqpURL := eventstest.AMQPURL(b)
	ctx := context.Background()
	for _, m := range []func(context.Context) error{catalogpg.New(pool).Migrate, inventorypg.New(pool).Migrate, storepg.New(pool).Migrate} {
		if err := m(ctx); err != nil {
			b.Fatal(err)
		}
	}
	prefix := eventstest.Prefix()
	b.Cleanup(func() { deleteTopology(b, amqpURL, prefix) })
	cells, err := config.Default()
	if err != nil {
		b.Fatal(err)
	}
	eu, _ := cells.Cell("eu-west")
	keys, err := token.GenerateKeySet()
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Cell: eu, Cells: cells, Services: []string{ServiceCatalog, ServiceInventory, ServiceStore, ServiceGateway},
		APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", SeedDevCatalog: true,
		Store:  StoreConfig{WebhookSecret: webhookSecret},
		Events: EventsConfig{AMQPURL: amqpURL, Prefix: prefix}},
		Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Keys: keys,
			Commerce: CommerceDeps{CatalogStore: catalogpg.New(pool), InventoryStore: inventorypg.New(pool), StoreStore: storepg.New(pool), Outbox: pgoutbox.New(pool, "eu-west")}})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(sctx)
	})
	signer, err := token.NewSigner(keys, nil)
	if err != nil {
		b.Fatal(err)
	}

	// One session per player; pushes are timed as they arrive.
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{}
		pushed  = map[string]chan struct{}{}
		allIn   = make(chan struct{})
		want    = b.N
	)
	for p := range players {
		tok, _, err := signer.IssuePlayer(fmt.Sprintf("bench-player-%02d", p), "eu-west", 15*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := gameclient.Dial(ctx, c.GatewayAddr(), gameclient.Options{Token: tok, PushBuffer: 4096})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		go func() {
			for push := range conn.Pushes() {
				at := time.Now()
				var u inventoryapi.Updated
				if push.Topic != inventoryapi.TopicUpdated || json.Unmarshal(push.Data, &u) != nil {
					continue
				}
				mu.Lock()
				if _, seen := arrived[u.PurchaseID]; !seen {
					arrived[u.PurchaseID] = at
					if ch, ok := pushed[u.PurchaseID]; ok {
						close(ch)
					}
					if len(arrived) == want {
						close(allIn)
					}
				}
				mu.Unlock()
			}
		}()
	}

	// The purchases Stripe's webhooks will complete, recorded as checkout
	// records them.
	st := storepg.New(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	payloads := make([][]byte, b.N)
	ids := make([]string, b.N)
	for i := range b.N {
		p := store.Purchase{HomeCell: "eu-west", IdempotencyKey: fmt.Sprintf("bench-%d", i), ExpiresAt: now.Add(time.Hour)}
		p.ID, p.PlayerID, p.OfferID, p.Quantity = fmt.Sprintf("pur_bench_%06d", i), fmt.Sprintf("bench-player-%02d", i%players), "gems.100", 1
		p.Currency, p.Amount, p.Status, p.SessionID = "usd", 99, storeapi.StatusPending, fmt.Sprintf("cs_bench_%06d", i)
		p.Grants, p.CreatedAt, p.UpdatedAt = []catalogapi.Grant{{ItemID: "gems.100", Quantity: 1}}, now, now
		if _, _, err := st.CreatePurchase(ctx, p, now); err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
		pushed[p.ID] = make(chan struct{})
		payloads[i] = stripetest.Event("", "checkout.session.completed", stripetest.Session{
			ID: p.SessionID, ClientReferenceID: p.ID, AmountTotal: 99, Currency: "usd", PaymentStatus: "paid", Status: "complete",
			Metadata: map[string]string{store.MetaPlayer: p.PlayerID}, PaymentIntent: stripetest.ID("pi"),
		}, now)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	url := "http://" + c.APIAddr() + storeapi.PathWebhook
	sent := make([]time.Time, b.N)
	next := make(chan int)

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				sig := stripetest.Sign(payloads[i], webhookSecret, time.Now())
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payloads[i]))
				req.Header.Set("Stripe-Signature", sig)
				sent[i] = time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("webhook %d answered %d", i, resp.StatusCode)
				}
				if closedLoop {
					mu.Lock()
					ch := pushed[ids[i]]
					mu.Unlock()
					<-ch
				}
			}
		})
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case <-allIn:
	case <-time.After(60 * time.Second):
		mu.Lock()
		got := len(arrived)
		mu.Unlock()
		b.Fatalf("%d of %d pushes arrived within 60s", got, b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	lat := make([]float64, 0, b.N)
	mu.Lock()
	for i, id := range ids {
		lat = append(lat, float64(arrived[id].Sub(sent[i]).Microseconds())/1000)
	}
	mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) float64 { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "purchases/s")
	var grants int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM inventory_grants`).Scan(&grants); err != nil || grants != b.N {
		b.Fatalf("inventory_grants = %d (%v), want %d", grants, err, b.N)
	}
}
