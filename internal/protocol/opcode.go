package protocol

import "fmt"

// Opcode names what a frame asks for or carries. The table below is the
// single list of opcodes; docs/protocol.md mirrors it and a test keeps the
// two in step. Ranges: 0x00xx system (answered by the gateway itself),
// 0x01xx accounts, 0x02xx inventory, 0x03xx catalog and cosmetics, 0x04xx
// store, 0x05xx progression, 0x06xx matchmaking.
type Opcode uint16

const (
	OpHello     Opcode = 0x0001 // client → server: authenticate (first frame); response: Welcome
	OpPing      Opcode = 0x0002 // either way: heartbeat; answered with the same opcode and FlagResponse
	OpError     Opcode = 0x0003 // server → client: ErrorBody; request id of the failed request or 0
	OpReconnect Opcode = 0x0004 // server → client: Reconnect, move to another gateway/cell
	OpPush      Opcode = 0x0005 // server → client: Push, an event for this player
	OpBye       Opcode = 0x0006 // either way: Bye, orderly close
	OpResume    Opcode = 0x0007 // client → server: a fresh resume token for this session (ResumeGrant)
	OpEcho      Opcode = 0x0010 // client → server: payload answered verbatim by the gateway

	OpAccountsMe Opcode = 0x0101 // client → server: the caller's account (accountsapi.Me)

	OpInventoryGet   Opcode = 0x0201 // client → server: the caller's items and loadout (inventoryapi.Inventory)
	OpInventoryEquip Opcode = 0x0202 // client → server: equip or clear one slot (inventoryapi.EquipRequest)
	OpCatalogGet     Opcode = 0x0301 // client → server: the catalog, or not_modified (catalogapi.GetRequest)
	OpStoreCheckout  Opcode = 0x0401 // client → server: start a purchase (storeapi.CheckoutRequest)
	OpStorePurchases Opcode = 0x0402 // client → server: the caller's purchases (storeapi.Purchases)
)

// Service is the owner of an opcode range.
type Service string

// OpInfo describes one opcode.
type OpInfo struct {
	Op      Opcode
	Name    string
	Service Service // "gateway" for opcodes the gateway answers itself
}

var opTable = []OpInfo{
	{OpHello, "hello", "gateway"},
	{OpPing, "ping", "gateway"},
	{OpError, "error", "gateway"},
	{OpReconnect, "reconnect", "gateway"},
	{OpPush, "push", "gateway"},
	{OpBye, "bye", "gateway"},
	{OpResume, "resume", "gateway"},
	{OpEcho, "echo", "gateway"},
	{OpAccountsMe, "accounts.me", "accounts"},
	{OpInventoryGet, "inventory.get", "inventory"},
	{OpInventoryEquip, "inventory.equip", "inventory"},
	{OpCatalogGet, "catalog.get", "catalog"},
	{OpStoreCheckout, "store.checkout", "store"},
	{OpStorePurchases, "store.purchases", "store"},
}

// Ops returns the opcode table in numeric order.
func Ops() []OpInfo { return append([]OpInfo(nil), opTable...) }

// Lookup returns the table entry for op.
func Lookup(op Opcode) (OpInfo, bool) {
	for _, oi := range opTable {
		if oi.Op == op {
			return oi, true
		}
	}
	return OpInfo{}, false
}

// String returns the opcode's name, or "unknown" when the table has no
// entry (Hex gives the value). Metrics label by String, so unknown opcodes
// collapse into one label value instead of one series per value a peer sends.
func (op Opcode) String() string {
	if oi, ok := Lookup(op); ok {
		return oi.Name
	}
	return "unknown"
}

// Hex returns the opcode as 0x%04x.
func (op Opcode) Hex() string { return fmt.Sprintf("0x%04x", uint16(op)) }
