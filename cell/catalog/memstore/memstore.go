// Package memstore is the embedded catalog.Store: in memory, for `livecell
// dev`, tests and single-process deployments that need no database.
package memstore

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/livecell/livecell/cell/catalog"
	"github.com/livecell/livecell/cell/catalogapi"
)

// Store is a catalog.Store in memory. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	version int64
	items   map[string]catalogapi.Item
	offers  map[string]catalogapi.Offer
}

var _ catalog.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{items: map[string]catalogapi.Item{}, offers: map[string]catalogapi.Offer{}}
}

func (s *Store) Catalog(ctx context.Context) (catalogapi.Catalog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot(), nil
}

// snapshot copies the catalog so callers never share the store's maps.
func (s *Store) snapshot() catalogapi.Catalog {
	c := catalogapi.Catalog{Version: s.version, Items: []catalogapi.Item{}, Offers: []catalogapi.Offer{}}
	for _, it := range s.items {
		it.Contents = slices.Clone(it.Contents)
		it.Display.Tags = slices.Clone(it.Display.Tags)
		c.Items = append(c.Items, it)
	}
	for _, o := range s.offers {
		prices := make(map[string]int64, len(o.Prices))
		for k, v := range o.Prices {
			prices[k] = v
		}
		o.Prices = prices
		c.Offers = append(c.Offers, o)
	}
	slices.SortFunc(c.Items, func(a, b catalogapi.Item) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Offers, func(a, b catalogapi.Offer) int { return cmp.Compare(a.ID, b.ID) })
	return c
}

func (s *Store) Version(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version, nil
}

func (s *Store) PutItem(ctx context.Context, it catalogapi.Item, check func(catalogapi.Catalog) error) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := check(s.snapshot()); err != nil {
		return 0, err
	}
	it.Contents = slices.Clone(it.Contents)
	it.Display.Tags = slices.Clone(it.Display.Tags)
	s.items[it.ID] = it
	s.version++
	return s.version, nil
}

func (s *Store) PutOffer(ctx context.Context, o catalogapi.Offer, check func(catalogapi.Catalog) error) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := check(s.snapshot()); err != nil {
		return 0, err
	}
	prices := make(map[string]int64, len(o.Prices))
	for k, v := range o.Prices {
		prices[k] = v
	}
	o.Prices = prices
	s.offers[o.ID] = o
	s.version++
	return s.version, nil
}
