package cell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/catalog"
	catalogmem "github.com/livecell/livecell/cell/catalog/memstore"
	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventory"
	inventorymem "github.com/livecell/livecell/cell/inventory/memstore"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/store"
	storemem "github.com/livecell/livecell/cell/store/memstore"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/events"
	"github.com/livecell/livecell/internal/events/amqpbus"
	"github.com/livecell/livecell/internal/opsrpc"
	"github.com/livecell/livecell/internal/protocol"
	"github.com/livecell/livecell/internal/token"
)

// StoreConfig configures the store service of a cell.
type StoreConfig struct {
	// StripeSecretKey enables real payments; empty runs the store in TEST
	// MODE (simulated local payments, clearly labelled).
	StripeSecretKey string
	// StripeAPIURL overrides Stripe's API (stripe-mock in tests).
	StripeAPIURL string
	// WebhookSecret is the Stripe endpoint's signing secret (required with
	// a secret key).
	WebhookSecret    string
	WebhookTolerance time.Duration
	// SuccessURL and CancelURL are where Stripe returns the player
	// ("{PURCHASE_ID}" is replaced); default: the store's return page.
	SuccessURL, CancelURL string
	// PublicURL is the cell API as players reach it (default "http://" +
	// the bound API address).
	PublicURL string
}

// EventsConfig configures the cell's event bus.
type EventsConfig struct {
	// AMQPURL is the cell's RabbitMQ. Empty uses an in-process bus, which
	// needs the store, inventory and gateway in this process.
	AMQPURL string
	// Prefix names the broker topology (default "livecell").
	Prefix string
	// Relay tunes the outbox relay.
	Relay events.RelayConfig
}

// CommerceDeps are the storage of the catalog, inventory and store services.
// A nil store is an embedded, in-memory one.
type CommerceDeps struct {
	CatalogStore   catalog.Store
	InventoryStore inventory.Store
	StoreStore     store.Store
	// Outbox is where StoreStore writes its events: pgoutbox.New(pool,
	// cell) for a SQL store; nil with an embedded one (it has its own).
	Outbox events.Outbox
	// Levels says players' levels (nil: every player is level 1 until a
	// progression service exists).
	Levels interface {
		Level(ctx context.Context, playerID string) (int, error)
	}
}

// eventBus is what the services need of the bus: amqpbus.Bus or events.Bus.
type eventBus interface {
	events.Publisher
	events.Subscriber
}

// commerce is the cell's catalog, inventory and store, and the event
// pipeline that fulfils purchases: outbox relay → bus → inventory → push.
type commerce struct {
	catalog   *catalog.Service
	inventory *inventory.Service
	store     *store.Service
	bus       eventBus
	local     *events.Bus  // the in-process bus, when there is no broker
	amqp      *amqpbus.Bus // the broker, when configured
	relay     *events.Relay
	outbox    events.Outbox
	seed      bool

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// newCommerce builds the commerce services this process runs, or nil when
// it runs none and needs no broker.
func (c *Cell) newCommerce(cfg Config, deps Deps, metrics prometheus.Registerer, handlers protocol.Handlers) error {
	runCatalog, runInventory, runStore, runGateway := c.runs(ServiceCatalog), c.runs(ServiceInventory), c.runs(ServiceStore), c.runs(ServiceGateway)
	broker := cfg.Events.AMQPURL != ""
	if !runCatalog && !runInventory && !runStore && !(runGateway && broker) {
		return nil
	}
	d := deps.Commerce
	if d.CatalogStore == nil {
		d.CatalogStore = catalogmem.New()
	}
	if d.InventoryStore == nil {
		d.InventoryStore = inventorymem.New()
	}
	if d.StoreStore == nil {
		ms := storemem.New()
		d.StoreStore, d.Outbox = ms, ms.Outbox()
	}
	m, err := events.NewMetrics(metrics)
	if err != nil {
		return fmt.Errorf("cell: %w", err)
	}
	cm := &commerce{seed: cfg.SeedDevCatalog}
	if broker {
		b, err := amqpbus.New(amqpbus.Config{
			URL: cfg.Events.AMQPURL, Prefix: cfg.Events.Prefix,
			Groups:         []amqpbus.Group{{Name: inventory.Group, Topics: inventory.Topics()}},
			ConnectionName: "livecell/" + cfg.Cell.ID + "/" + strings.Join(c.cfg.Services, "+"),
		}, c.log.With("component", "events"), m)
		if err != nil {
			return fmt.Errorf("cell: %w", err)
		}
		cm.amqp, cm.bus = b, b
	} else {
		// Without a broker the outbox is the only queue, and everything
		// it feeds must be in this process.
		switch {
		case runStore && !runInventory:
			return errors.New("cell: the store without inventory in this process needs RabbitMQ (--amqp-url) to fulfil purchases")
		case runInventory && !runStore:
			return errors.New("cell: inventory without the store in this process needs RabbitMQ (--amqp-url) to receive purchases")
		case runInventory && !runGateway:
			return errors.New("cell: inventory without the gateway in this process needs RabbitMQ (--amqp-url) to push to players")
		}
		cm.local = events.NewBus(c.log.With("component", "events"), m)
		cm.local.Declare(inventory.Group, inventory.Topics())
		cm.bus = cm.local
	}
	c.commerce = cm

	var remote *opsrpc.Client
	remoteOps := func() (*opsrpc.Client, error) {
		if remote != nil {
			return remote, nil
		}
		tok, err := c.serverCredential(deps.ServerToken)
		if err != nil {
			return nil, err
		}
		remote = &opsrpc.Client{BaseURL: "http://" + cfg.Cell.API, HTTP: &http.Client{Timeout: 10 * time.Second}, Token: tok}
		return remote, nil
	}

	var cat catalogReader = &catalogapi.Client{BaseURL: "http://" + cfg.Cell.API, HTTP: &http.Client{Timeout: 10 * time.Second}, MaxAge: 5 * time.Second}
	if runCatalog {
		svc, err := catalog.New(catalog.Config{}, catalog.Deps{
			Logger: c.log.With("service", ServiceCatalog), Store: d.CatalogStore, Admin: serverScopes{c.verifier}, Metrics: metrics,
		})
		if err != nil {
			return fmt.Errorf("cell: %w", err)
		}
		cm.catalog, cat = svc, svc
		addOps(handlers, svc.Ops())
	}

	if runInventory {
		var push interface {
			Push(ctx context.Context, playerID string, p protocol.Push) error
		} = gatewayPusher{c}
		if cm.amqp != nil {
			// Through the broker: the player may hold a session on any
			// gateway process of the cell.
			push = cm.amqp
		}
		svc, err := inventory.New(inventory.Config{CellID: cfg.Cell.ID}, inventory.Deps{
			Logger: c.log.With("service", ServiceInventory), Store: d.InventoryStore, Catalog: cat, Levels: d.Levels,
			Push: push, Verify: playerVerifier{c.verifier}, Metrics: metrics,
		})
		if err != nil {
			return fmt.Errorf("cell: %w", err)
		}
		cm.inventory = svc
		addOps(handlers, svc.Ops())
	}

	if runStore {
		if d.Outbox == nil {
			return errors.New("cell: a store without its outbox (Deps.Commerce.Outbox) could not fulfil purchases")
		}
		var inv inventoryReader
		if cm.inventory != nil {
			inv = cm.inventory
		} else {
			rc, err := remoteOps()
			if err != nil {
				return err
			}
			inv = remoteInventory{get: rc.Handlers(protocol.OpInventoryGet)[protocol.OpInventoryGet]}
		}
		cm.outbox = d.Outbox
		cm.relay = events.NewRelay(cfg.Events.Relay, d.Outbox, cm.bus, c.log.With("component", "outbox-relay"), m)
		sc := cfg.Store
		scfg := store.Config{
			CellID: cfg.Cell.ID, PublicURL: sc.PublicURL,
			SuccessURL: sc.SuccessURL, CancelURL: sc.CancelURL, WebhookSecret: sc.WebhookSecret, WebhookTolerance: sc.WebhookTolerance,
		}
		sdeps := store.Deps{
			Logger: c.log.With("service", ServiceStore), Store: d.StoreStore, Catalog: cat, Inventory: inv,
			Verify: playerVerifier{c.verifier}, Kick: cm.relay.Kick, Metrics: metrics,
		}
		if sc.StripeSecretKey != "" {
			st, err := store.NewStripe(store.StripeConfig{SecretKey: sc.StripeSecretKey, APIURL: sc.StripeAPIURL})
			if err != nil {
				return fmt.Errorf("cell: %w", err)
			}
			sdeps.Sessions = st
		}
		svc, err := store.New(scfg, sdeps)
		if err != nil {
			return fmt.Errorf("cell: %w", err)
		}
		cm.store = svc
		addOps(handlers, svc.Ops())
	}
	return nil
}

// catalogReader and inventoryReader are what the store and inventory need
// of the services they read, in process or remote.
type catalogReader interface {
	Catalog(ctx context.Context) (catalogapi.Catalog, error)
}

type inventoryReader interface {
	Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error)
}

func addOps(dst, src protocol.Handlers) {
	for op, h := range src {
		dst[op] = h
	}
}

// mount serves the commerce services' HTTP APIs on mux and adds their
// opcodes to the ones this process answers for others.
func (cm *commerce) mount(mux *http.ServeMux, local protocol.Handlers) {
	if cm == nil {
		return
	}
	if cm.catalog != nil {
		h := cm.catalog.Handler()
		mux.Handle(catalogapi.PathCatalog, h)
		mux.Handle("/v1/admin/catalog/", h)
		addOps(local, cm.catalog.Ops())
	}
	if cm.inventory != nil {
		h := cm.inventory.Handler()
		mux.Handle(inventoryapi.PathInventory, h)
		mux.Handle(inventoryapi.PathInventory+"/", h)
		addOps(local, cm.inventory.Ops())
	}
	if cm.store != nil {
		mux.Handle("/v1/store/", cm.store.Handler())
		addOps(local, cm.store.Ops())
	}
}

// servesHTTP reports whether a commerce service answers HTTP here.
func (cm *commerce) servesHTTP() bool {
	return cm != nil && (cm.catalog != nil || cm.inventory != nil || cm.store != nil)
}

// start runs the relay, the inventory's consumer and the gateway's push
// consumer, and seeds the development catalog when asked to. The API is
// bound by now, so the store learns its address unless configured.
func (cm *commerce) start(ctx context.Context, c *Cell) error {
	if cm == nil {
		return nil
	}
	if cm.store != nil && c.cfg.Store.PublicURL == "" {
		cm.store.SetPublicURL("http://" + c.APIAddr())
	}
	if cm.seed && cm.catalog != nil {
		dev, err := catalog.DevCatalog()
		if err == nil {
			err = cm.catalog.Seed(ctx, dev)
		}
		if err != nil {
			return fmt.Errorf("cell: seed the development catalog: %w", err)
		}
	}
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	cm.stop = stop
	if cm.inventory != nil {
		if err := cm.bus.Subscribe(run, inventory.Group, inventory.Topics(), cm.inventory.HandleEvent); err != nil {
			stop()
			return fmt.Errorf("cell: inventory consumer: %w", err)
		}
	}
	if cm.amqp != nil && c.gw != nil {
		gw := c.gw
		cm.amqp.ConsumePushes(run, func(ctx context.Context, playerID string, p protocol.Push) {
			_, _ = gw.Push(ctx, playerID, p) // at-most-once; the gateway counts what it drops
		})
	}
	if cm.relay != nil {
		cm.wg.Go(func() { cm.relay.Run(run) })
		cm.relay.Kick() // events left by a previous process
	}
	return nil
}

// close stops the pipeline; events not yet relayed stay in the outbox.
func (cm *commerce) close() error {
	if cm == nil {
		return nil
	}
	if cm.stop != nil {
		cm.stop()
	}
	cm.wg.Wait()
	if cm.amqp != nil {
		return cm.amqp.Close()
	}
	return nil
}

// gatewayPusher pushes through the gateway of this process.
type gatewayPusher struct{ c *Cell }

func (p gatewayPusher) Push(ctx context.Context, playerID string, push protocol.Push) error {
	if p.c.gw == nil {
		return errors.New("cell: no gateway in this process")
	}
	_, err := p.c.gw.Push(ctx, playerID, push)
	return err
}

// remoteInventory reads an inventory through the inventory.get opcode on
// the cell's internal API, as the player, with the cell's server credential.
type remoteInventory struct{ get protocol.Handler }

func (r remoteInventory) Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error) {
	b, err := r.get(ctx, protocol.Caller{PlayerID: playerID}, nil)
	if err != nil {
		return inventoryapi.Inventory{}, err
	}
	var inv inventoryapi.Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return inventoryapi.Inventory{}, apierr.Wrap("cell.remoteInventory", apierr.Internal, "malformed inventory", err)
	}
	return inv, nil
}

// serverScopes admits server credentials that grant a scope (the catalog's
// admin API).
type serverScopes struct{ v *token.Verifier }

func (s serverScopes) VerifyServer(tok, scope string) (string, error) {
	claims, err := s.v.Verify(tok, token.AudienceServer)
	if err != nil {
		return "", err
	}
	if !claims.HasScope(scope) {
		return "", apierr.New(apierr.PermissionDenied, "the credential of %s does not grant scope %q", claims.Subject, scope)
	}
	return claims.Subject, nil
}

// Outbox is the store's outbox in this process (nil when the store runs
// elsewhere), for tests and the probe's diagnostics.
func (c *Cell) Outbox() events.Outbox {
	if c.commerce == nil {
		return nil
	}
	return c.commerce.outbox
}

// DeadLetters are the in-process bus's dead letters (nil with a broker:
// see livecell events dlq).
func (c *Cell) DeadLetters() []events.DeadLetter {
	if c.commerce == nil || c.commerce.local == nil {
		return nil
	}
	return c.commerce.local.DeadLetters()
}
