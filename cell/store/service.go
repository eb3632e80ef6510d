// Package store is the store service: players buy catalog offers with
// Stripe Checkout, and every paid purchase is fulfilled exactly once.
//
// The flow:
//
//  1. POST /v1/store/checkout (player token) checks the offer (on sale, sold
//     in that currency, a sane quantity) and that the player does not
//     already own a non-stackable item of it, records a pending purchase
//     and creates a Stripe Checkout Session (line item, client_reference_id
//     and metadata naming the purchase and the player, an idempotency key
//     per purchase) whose hosted page the client opens.
//  2. Stripe calls POST /v1/store/webhook. The Stripe-Signature header is
//     verified with the endpoint secret and a replay window (stripe-go's
//     webhook package, plus a bound on timestamps from the future). The
//     event id is recorded in the same transaction that changes the
//     purchase and writes the outbox event (store.purchase.completed, or
//     store.purchase.refunded on a full refund), so a redelivered or
//     concurrent duplicate changes nothing, and the answer is 2xx only
//     after that commit: Stripe retries anything else.
//  3. The outbox relay publishes the event; inventory grants it (keyed by
//     purchase id) and pushes inventory.updated to the player.
//
// Without Stripe keys the store runs in TEST MODE: checkout answers a URL
// of the store itself, and POSTing to it signs a checkout.session.completed
// event with a local secret and delivers it through the same webhook code,
// so `livecell dev` shows a whole purchase with no account and no money.
// Every test-mode answer says so (test_mode: true) and the log warns.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/events"
)

// Purchase is a purchase as the store keeps it: the public view and what
// only the store needs.
type Purchase struct {
	storeapi.Purchase
	HomeCell string
	// IdempotencyKey is derived from the checkout request: a retried
	// request finds its pending purchase instead of starting another.
	IdempotencyKey string
	CheckoutURL    string
	PaymentIntent  string
	ExpiresAt      time.Time
}

// Key names the purchase a Stripe event is about: by purchase id
// (checkout sessions carry it) or by payment intent (charges do).
type Key struct {
	PurchaseID    string
	PaymentIntent string
}

// Change updates a purchase for one Stripe event and returns the events to
// publish. It runs inside the store's transaction and may run more than
// once: no side effects.
type Change func(p *Purchase) ([]events.Event, error)

// Result is what Store.Apply did.
type Result int

const (
	Applied   Result = iota + 1 // the change committed with the event id
	Duplicate                   // the event id was processed before: nothing ran
	NotFound                    // no purchase for the key: nothing recorded
)

// Store keeps purchases, processed Stripe event ids and the outbox.
// Implementations: memstore and pgstore; storetest is their contract.
type Store interface {
	// CreatePurchase inserts p unless a pending, unexpired purchase with
	// the same IdempotencyKey exists: then it returns that one and false.
	CreatePurchase(ctx context.Context, p Purchase, now time.Time) (Purchase, bool, error)
	// AttachSession records the checkout session of a purchase.
	AttachSession(ctx context.Context, purchaseID, sessionID, url string, expiresAt time.Time) error
	// Purchase returns one purchase (apierr.NotFound when there is none).
	Purchase(ctx context.Context, id string) (Purchase, error)
	// Purchases returns a player's purchases, newest first, at most limit.
	Purchases(ctx context.Context, playerID string, limit int) ([]Purchase, error)
	// Apply records Stripe event eventID as processed, runs change on the
	// purchase key names, stores it and adds change's events to the
	// outbox, all in one transaction. An error from change rolls
	// everything back and is returned as is.
	Apply(ctx context.Context, eventID string, key Key, change Change) (Result, error)
}

// catalogReader gives the catalog.
type catalogReader interface {
	Catalog(ctx context.Context) (catalogapi.Catalog, error)
}

// inventoryReader gives a player's inventory: the inventory service in
// process, or its inventory.get opcode over the cell's internal API.
type inventoryReader interface {
	Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error)
}

// checkoutSessions creates hosted payment pages (Stripe, or the test-mode
// simulation).
type checkoutSessions interface {
	Create(ctx context.Context, p SessionParams) (Session, error)
}

// SessionParams is what a checkout session is created from.
type SessionParams struct {
	Purchase   Purchase
	Title      string // line item name
	UnitAmount int64
	SuccessURL string
	CancelURL  string
}

// Session is a created checkout session.
type Session struct {
	ID        string
	URL       string
	ExpiresAt time.Time
}

// playerVerifier checks a player access token.
type playerVerifier interface {
	VerifyPlayer(token string) (playerID, homeCell string, err error)
}

// Config configures the store of one cell.
type Config struct {
	CellID string
	// PublicURL is this cell's API as players reach it ("http://host:port"):
	// the base of test-mode checkout URLs and the default return URLs. It
	// may be set later with SetPublicURL, once the address is bound.
	PublicURL string
	// SuccessURL and CancelURL are where Stripe sends the player after
	// paying or giving up; "{PURCHASE_ID}" is replaced. Default: this
	// store's /v1/store/return/{result}.
	SuccessURL, CancelURL string
	// WebhookSecret is the Stripe endpoint's signing secret (whsec_...).
	// Required with Deps.Sessions; generated in test mode.
	WebhookSecret string
	// WebhookTolerance is the replay window for signatures (0: 5 minutes,
	// Stripe's default).
	WebhookTolerance time.Duration
	// CheckoutTTL is how long a checkout page stays valid (0: 30 minutes,
	// Stripe's minimum; at most 24 hours).
	CheckoutTTL time.Duration
}

// Deps are the service's collaborators.
type Deps struct {
	Logger    *slog.Logger
	Store     Store
	Catalog   catalogReader
	Inventory inventoryReader
	// Sessions creates Stripe Checkout Sessions (NewStripe). nil runs the
	// store in TEST MODE.
	Sessions checkoutSessions
	Verify   playerVerifier
	// Kick wakes the outbox relay after a commit (events.Relay.Kick).
	Kick    func()
	Metrics prometheus.Registerer
	Now     func() time.Time
}

// Service is the store service. It is safe for concurrent use.
type Service struct {
	cfg       Config
	log       *slog.Logger
	store     Store
	catalog   catalogReader
	inventory inventoryReader
	sessions  checkoutSessions
	verify    playerVerifier
	kick      func()
	now       func() time.Time
	m         *metrics
	testMode  bool
	publicURL atomic.Pointer[string]
}

// New validates the configuration and returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.CellID == "" {
		return nil, errors.New("store.New: Config.CellID is required")
	}
	if deps.Store == nil || deps.Catalog == nil || deps.Inventory == nil || deps.Verify == nil {
		return nil, errors.New("store.New: Deps.Store, Catalog, Inventory and Verify are required")
	}
	switch {
	case cfg.WebhookTolerance == 0:
		cfg.WebhookTolerance = 5 * time.Minute
	case cfg.WebhookTolerance < 10*time.Second || cfg.WebhookTolerance > time.Hour:
		return nil, fmt.Errorf("store.New: webhook tolerance %v out of range 10s..1h", cfg.WebhookTolerance)
	}
	switch {
	case cfg.CheckoutTTL == 0:
		cfg.CheckoutTTL = 30 * time.Minute
	case cfg.CheckoutTTL < 30*time.Minute || cfg.CheckoutTTL > 24*time.Hour:
		return nil, fmt.Errorf("store.New: checkout TTL %v out of Stripe's range 30m..24h", cfg.CheckoutTTL)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Kick == nil {
		deps.Kick = func() {}
	}
	s := &Service{
		cfg: cfg, log: deps.Logger, store: deps.Store, catalog: deps.Catalog, inventory: deps.Inventory,
		sessions: deps.Sessions, verify: deps.Verify, kick: deps.Kick, now: deps.Now,
	}
	if deps.Sessions == nil {
		if cfg.WebhookSecret == "" {
			cfg.WebhookSecret = "whsec_testmode_" + randomHex(24)
		}
		s.cfg = cfg
		s.testMode = true
		s.sessions = testSessions{s: s}
		s.log.Warn("store in TEST MODE: no Stripe keys configured; checkouts are simulated locally and no money moves")
	} else if cfg.WebhookSecret == "" {
		return nil, errors.New("store.New: a Stripe webhook signing secret (STRIPE_WEBHOOK_SECRET) is required with a Stripe key")
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("store.New: %w", err)
	}
	s.m = m
	s.SetPublicURL(cfg.PublicURL)
	return s, nil
}

// SetPublicURL sets the base of test-mode checkout URLs and default return
// URLs: the wiring knows the API's address only once it is bound.
func (s *Service) SetPublicURL(u string) {
	u = strings.TrimRight(u, "/")
	s.publicURL.Store(&u)
}

func (s *Service) base() string { return *s.publicURL.Load() }

// returnURLs are where Stripe sends the player back, for purchase id.
func (s *Service) returnURLs(id string) (success, cancel string) {
	success, cancel = s.cfg.SuccessURL, s.cfg.CancelURL
	if success == "" {
		success = s.base() + storeapi.PathReturn + "/success?purchase={PURCHASE_ID}"
	}
	if cancel == "" {
		cancel = s.base() + storeapi.PathReturn + "/cancel?purchase={PURCHASE_ID}"
	}
	return strings.ReplaceAll(success, "{PURCHASE_ID}", id), strings.ReplaceAll(cancel, "{PURCHASE_ID}", id)
}

// TestMode reports whether checkouts are simulated (no Stripe keys).
func (s *Service) TestMode() bool { return s.testMode }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
