// Package inventoryapi is the public contract of the inventory service: what
// a player owns and wears, the HTTP paths and gateway payloads that read and
// change it, the inventory.updated push, and a client. Everything a game
// client shows of a player's items comes from here: the client is a view.
package inventoryapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/livecell/livecell/internal/httpapi"
)

// HTTP paths of the inventory API. Both take "Authorization: Bearer <player
// access token>" and answer the caller's own inventory.
const (
	PathInventory = "/v1/inventory"         // GET → 200 Inventory
	PathLoadout   = "/v1/inventory/loadout" // PUT EquipRequest → 200 Inventory
)

// TopicUpdated is the push topic sent to a player whose inventory changed;
// its data is Updated.
const TopicUpdated = "inventory.updated"

// Reasons an inventory changed, in Updated.Reason.
const (
	ReasonPurchase = "purchase"
	ReasonRefund   = "refund"
)

// OwnedItem is an item a player owns. Quantity counts the grants that gave
// it (a currency pack bought three times: 3); an item owned once has 1.
type OwnedItem struct {
	ItemID     string    `json:"item_id"`
	Quantity   int       `json:"quantity"`
	AcquiredAt time.Time `json:"acquired_at"`
}

// Inventory is a player's items and loadout. Version grows with every
// change, so a client applies a push or a response only if it is newer than
// what it shows.
type Inventory struct {
	PlayerID string      `json:"player_id"`
	Version  int64       `json:"version"`
	Items    []OwnedItem `json:"items"`
	// Loadout maps an equipment slot to the item worn there.
	Loadout map[string]string `json:"loadout"`
}

// Owns reports how many of itemID the inventory holds.
func (inv Inventory) Owns(itemID string) int {
	for _, it := range inv.Items {
		if it.ItemID == itemID {
			return it.Quantity
		}
	}
	return 0
}

// EquipRequest puts an owned item in a slot, or clears the slot when ItemID
// is empty. The server checks that the item is owned, goes in that slot and
// that the player's level is high enough.
type EquipRequest struct {
	Slot   string `json:"slot"`
	ItemID string `json:"item_id"`
}

// Updated is the data of an inventory.updated push: the whole inventory
// after the change, and why it changed.
type Updated struct {
	Inventory
	Reason     string `json:"reason"`
	PurchaseID string `json:"purchase_id,omitempty"`
}

// Client calls one cell's inventory API with a player's access token.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// Inventory returns the token holder's inventory.
func (c *Client) Inventory(ctx context.Context, playerToken string) (Inventory, error) {
	var out Inventory
	err := httpapi.Do(ctx, c.HTTP, httpapi.Call{Op: "inventoryapi.Inventory", Peer: "inventory service", Method: http.MethodGet,
		URL: strings.TrimRight(c.BaseURL, "/") + PathInventory, Token: playerToken, Out: &out})
	return out, err
}

// Equip changes one slot of the token holder's loadout.
func (c *Client) Equip(ctx context.Context, playerToken string, req EquipRequest) (Inventory, error) {
	var out Inventory
	err := httpapi.Do(ctx, c.HTTP, httpapi.Call{Op: "inventoryapi.Equip", Peer: "inventory service", Method: http.MethodPut,
		URL: strings.TrimRight(c.BaseURL, "/") + PathLoadout, Token: playerToken, In: req, Out: &out})
	return out, err
}
