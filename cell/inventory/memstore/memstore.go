// Package memstore is the embedded inventory.Store, in memory.
package memstore

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventory"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/internal/apierr"
)

// Store is an inventory.Store in memory. It is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	players map[string]*player
	grants  map[string]grant // by grant id
	now     func() time.Time
}

type player struct {
	version int64
	items   map[string]inventoryapi.OwnedItem
	loadout map[string]string
}

type grant struct {
	playerID string
	items    []catalogapi.Grant
	revoked  bool
}

var _ inventory.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{players: map[string]*player{}, grants: map[string]grant{}, now: time.Now}
}

func (s *Store) player(id string) *player {
	p, ok := s.players[id]
	if !ok {
		p = &player{items: map[string]inventoryapi.OwnedItem{}, loadout: map[string]string{}}
		s.players[id] = p
	}
	return p
}

func (s *Store) view(id string) inventoryapi.Inventory {
	inv := inventoryapi.Inventory{PlayerID: id, Items: []inventoryapi.OwnedItem{}, Loadout: map[string]string{}}
	p, ok := s.players[id]
	if !ok {
		return inv
	}
	inv.Version = p.version
	for _, it := range p.items {
		inv.Items = append(inv.Items, it)
	}
	slices.SortFunc(inv.Items, func(a, b inventoryapi.OwnedItem) int { return cmp.Compare(a.ItemID, b.ItemID) })
	maps.Copy(inv.Loadout, p.loadout)
	return inv
}

func (s *Store) Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view(playerID), nil
}

func (s *Store) Grant(ctx context.Context, g inventory.Grant) (bool, inventoryapi.Inventory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.grants[g.ID]; seen {
		return false, s.view(g.PlayerID), nil
	}
	s.grants[g.ID] = grant{playerID: g.PlayerID, items: slices.Clone(g.Items)}
	p := s.player(g.PlayerID)
	now := s.now().UTC().Truncate(time.Microsecond)
	for _, it := range g.Items {
		owned, ok := p.items[it.ItemID]
		if !ok {
			owned = inventoryapi.OwnedItem{ItemID: it.ItemID, AcquiredAt: now}
		}
		owned.Quantity += it.Quantity
		p.items[it.ItemID] = owned
	}
	p.version++
	return true, s.view(g.PlayerID), nil
}

func (s *Store) Revoke(ctx context.Context, r inventory.Revoke) (bool, inventoryapi.Inventory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, seen := s.grants[r.ID]
	if !seen {
		s.grants[r.ID] = grant{playerID: r.PlayerID, revoked: true}
		return false, s.view(r.PlayerID), nil
	}
	if g.revoked {
		return false, s.view(r.PlayerID), nil
	}
	g.revoked = true
	s.grants[r.ID] = g
	p := s.player(g.playerID)
	for _, it := range g.items {
		owned := p.items[it.ItemID]
		owned.Quantity -= it.Quantity
		if owned.Quantity > 0 {
			p.items[it.ItemID] = owned
			continue
		}
		delete(p.items, it.ItemID)
		maps.DeleteFunc(p.loadout, func(_, item string) bool { return item == it.ItemID })
	}
	p.version++
	return true, s.view(g.playerID), nil
}

func (s *Store) Equip(ctx context.Context, playerID, homeCell, slot, itemID string) (inventoryapi.Inventory, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.player(playerID)
	if itemID == "" {
		if _, ok := p.loadout[slot]; !ok {
			return s.view(playerID), nil
		}
		delete(p.loadout, slot)
	} else {
		if p.items[itemID].Quantity < 1 {
			return inventoryapi.Inventory{}, apierr.New(apierr.PermissionDenied, "you do not own item %q", itemID)
		}
		if p.loadout[slot] == itemID {
			return s.view(playerID), nil
		}
		p.loadout[slot] = itemID
	}
	p.version++
	return s.view(playerID), nil
}
