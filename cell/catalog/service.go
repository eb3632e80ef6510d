// Package catalog is the catalog service: the items a game sells and
// players own (cosmetics, currency packs, bundles) and the store offers that
// sell them. Clients read the whole catalog and cache it by version (ETag);
// operators edit it through an admin API that takes only a server
// credential with catalogapi.ScopeAdmin.
//
// The catalog is GLOBAL data (CockroachDB LOCALITY GLOBAL): every cell
// reads it locally, writes are rare and pay a cross-region round trip. The
// service keeps the last catalog it read and asks the store only for the
// version while that is unchanged, so reads cost one small query at most
// once per Config.CacheFor.
//
// The wiring chooses the Store (memstore or pgstore); other services use
// cell/catalogapi, never this package.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/apierr"
)

// Store keeps the catalog. Implementations: memstore (embedded) and pgstore
// (PostgreSQL / CockroachDB); storetest is the contract both pass.
type Store interface {
	// Catalog returns every item and offer, sorted by id, and the version.
	Catalog(ctx context.Context) (catalogapi.Catalog, error)
	// Version returns the catalog's version: 0 for an empty catalog,
	// incremented by every successful Put.
	Version(ctx context.Context) (int64, error)
	// PutItem creates or replaces it and returns the new version. check
	// runs on the catalog as it is inside the same transaction, before the
	// write; its error aborts the write and is returned as is. check must
	// have no side effects: it may run more than once.
	PutItem(ctx context.Context, it catalogapi.Item, check func(catalogapi.Catalog) error) (int64, error)
	// PutOffer is PutItem for offers.
	PutOffer(ctx context.Context, o catalogapi.Offer, check func(catalogapi.Catalog) error) (int64, error)
}

// Config configures the catalog service.
type Config struct {
	// CacheFor is how long a read trusts the cached catalog without asking
	// the store for its version (0: one second; negative: always ask).
	CacheFor time.Duration
}

// serverVerifier checks a server credential and that it grants scope.
// Errors carry apierr codes (invalid_token, permission_denied).
type serverVerifier interface {
	VerifyServer(token, scope string) (subject string, err error)
}

// Deps are the service's collaborators.
type Deps struct {
	Logger  *slog.Logger
	Store   Store
	Admin   serverVerifier
	Metrics prometheus.Registerer // nil records nothing; the wiring adds the cell label
	Now     func() time.Time
}

// Service is the catalog service. It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store Store
	admin serverVerifier
	now   func() time.Time
	m     *metrics

	mu      sync.Mutex
	cached  *catalogapi.Catalog
	checked time.Time
}

// New returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil || deps.Admin == nil {
		return nil, errors.New("catalog.New: Deps.Store and Deps.Admin are required")
	}
	if cfg.CacheFor == 0 {
		cfg.CacheFor = time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("catalog.New: %w", err)
	}
	return &Service{cfg: cfg, log: deps.Logger, store: deps.Store, admin: deps.Admin, now: deps.Now, m: m}, nil
}

// Catalog returns the current catalog. Other services in the same process
// read it through this method; the returned value is shared: do not modify.
func (s *Service) Catalog(ctx context.Context) (catalogapi.Catalog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cached != nil && now.Sub(s.checked) < s.cfg.CacheFor {
		return *s.cached, nil
	}
	if s.cached != nil {
		v, err := s.store.Version(ctx)
		if err != nil {
			return catalogapi.Catalog{}, apierr.Wrap("catalog.Catalog", apierr.Unavailable, "", err)
		}
		if v == s.cached.Version {
			s.checked = now
			return *s.cached, nil
		}
	}
	c, err := s.store.Catalog(ctx)
	if err != nil {
		return catalogapi.Catalog{}, apierr.Wrap("catalog.Catalog", apierr.Unavailable, "", err)
	}
	s.cached, s.checked = &c, now
	return c, nil
}

// PutItem validates it against the catalog and stores it.
func (s *Service) PutItem(ctx context.Context, it catalogapi.Item) (int64, error) {
	v, err := s.store.PutItem(ctx, it, func(c catalogapi.Catalog) error {
		if prev, ok := c.Item(it.ID); ok && prev.Kind != it.Kind {
			return apierr.New(apierr.Conflict, "item %q is a %s; an item's kind never changes (ids are stable)", it.ID, prev.Kind)
		}
		if err := it.ValidateIn(c); err != nil {
			return apierr.Wrap("catalog.PutItem", apierr.BadRequest, err.Error(), err)
		}
		if !it.Stackable() {
			for _, o := range c.Offers {
				if o.ItemID == it.ID && o.Quantity != 1 {
					return apierr.New(apierr.Conflict, "offer %q sells %d of %q, which is owned once", o.ID, o.Quantity, it.ID)
				}
			}
		}
		if _, ok := c.Item(it.ID); !ok && len(c.Items) >= catalogapi.MaxItems {
			return apierr.New(apierr.Conflict, "the catalog holds the maximum of %d items", catalogapi.MaxItems)
		}
		return nil
	})
	s.m.write("item", err)
	s.invalidate()
	return v, err
}

// PutOffer validates o against the catalog and stores it.
func (s *Service) PutOffer(ctx context.Context, o catalogapi.Offer) (int64, error) {
	v, err := s.store.PutOffer(ctx, o, func(c catalogapi.Catalog) error {
		if err := o.ValidateIn(c); err != nil {
			return apierr.Wrap("catalog.PutOffer", apierr.BadRequest, err.Error(), err)
		}
		if _, ok := c.Offer(o.ID); !ok && len(c.Offers) >= catalogapi.MaxOffers {
			return apierr.New(apierr.Conflict, "the catalog holds the maximum of %d offers", catalogapi.MaxOffers)
		}
		return nil
	})
	s.m.write("offer", err)
	s.invalidate()
	return v, err
}

// invalidate makes the next read ask the store, so an admin sees their
// own write at once on this process (others see it within CacheFor).
func (s *Service) invalidate() {
	s.mu.Lock()
	s.checked = time.Time{}
	s.mu.Unlock()
}
