package inventory

import (
	"context"
	"errors"
	"fmt"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/events"
)

// Group is the inventory's consumer group on the cell's bus.
const Group = "inventory"

// Topics are the event types the inventory consumes.
func Topics() []string { return []string{storeapi.TopicPurchases} }

// HandleEvent applies a fulfillment event: a completed purchase grants, a
// refunded one revokes, each at most once per purchase id. Only then is
// the player pushed the new inventory (also on a duplicate delivery, in case
// the first push was lost with a crash; the push id lets the client skip
// it). Malformed events are Permanent: they go to the dead-letter queue,
// since no retry fixes them; a store failure is transient and retried.
func (s *Service) HandleEvent(ctx context.Context, e events.Event) error {
	var p storeapi.PurchaseEvent
	if err := e.Decode(&p); err != nil {
		s.m.consumed(e.Type, "poison")
		return err
	}
	if err := validEvent(e, p); err != nil {
		s.m.consumed(e.Type, "poison")
		return events.Permanent(err)
	}
	var (
		applied bool
		inv     inventoryapi.Inventory
		err     error
		reason  string
	)
	switch e.Type {
	case storeapi.TypePurchaseCompleted:
		reason = inventoryapi.ReasonPurchase
		applied, inv, err = s.store.Grant(ctx, Grant{ID: p.PurchaseID, PlayerID: p.PlayerID, HomeCell: p.HomeCell, Items: p.Grants})
	case storeapi.TypePurchaseRefunded:
		reason = inventoryapi.ReasonRefund
		applied, inv, err = s.store.Revoke(ctx, Revoke{ID: p.PurchaseID, PlayerID: p.PlayerID, HomeCell: p.HomeCell})
	default:
		s.m.consumed(e.Type, "poison")
		return events.Permanent(fmt.Errorf("inventory: event type %q is not a fulfillment event", e.Type))
	}
	if err != nil {
		s.m.consumed(e.Type, "retry")
		return fmt.Errorf("inventory: %s %s: %w", e.Type, p.PurchaseID, err)
	}
	result := "applied"
	if !applied {
		result = "duplicate"
	}
	s.m.consumed(e.Type, result)
	s.log.Info("fulfillment event", "type", e.Type, "purchase", p.PurchaseID, "player", p.PlayerID, "result", result, "version", inv.Version)
	s.pushUpdate(ctx, e.ID, inv, reason, p.PurchaseID)
	return nil
}

func validEvent(e events.Event, p storeapi.PurchaseEvent) error {
	switch {
	case p.PurchaseID == "" || len(p.PurchaseID) > 128:
		return errors.New("inventory: event without a valid purchase id")
	case p.PlayerID == "" || p.PlayerID != e.PlayerID:
		return fmt.Errorf("inventory: event for player %q carries purchase of %q", e.PlayerID, p.PlayerID)
	case p.HomeCell == "":
		return errors.New("inventory: event without a home cell")
	case e.Type == storeapi.TypePurchaseCompleted && len(p.Grants) == 0:
		return errors.New("inventory: completed purchase grants nothing")
	}
	for _, g := range p.Grants {
		if !catalogapi.ValidID(g.ItemID) || g.Quantity < 1 || g.Quantity > catalogapi.MaxGrantQuantity*catalogapi.MaxCheckoutQuantity {
			return fmt.Errorf("inventory: grant of %d %q is not a valid grant", g.Quantity, g.ItemID)
		}
	}
	return nil
}
