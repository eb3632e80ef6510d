// Package inventory is the inventory service: what each player owns and
// which cosmetics they wear. Items arrive by fulfillment events (a paid
// purchase grants, a refund revokes and unequips), each applied at most once
// per purchase id however often it is delivered; the player is told by an
// inventory.updated push. Players read their inventory and change their
// loadout over HTTP or gateway opcodes; the server checks every equip
// (owned, right slot, level high enough): a game client only shows what the
// backend holds.
//
// Player levels come from a levelSource. There is no progression service
// yet, so the wiring passes FixedLevel(DefaultLevel): every player is level
// 1 and items with a higher level_required cannot be equipped.
//
// The service defines what it needs as small interfaces (Store, the catalog
// reader, the level source, the pusher, the token verifier); the wiring
// chooses memstore or pgstore and in-process or remote collaborators.
package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Store keeps inventories. Implementations: memstore and pgstore; storetest
// is the contract both pass. Every method that changes an inventory bumps
// its version and returns the inventory after the change.
type Store interface {
	// Inventory returns playerID's inventory (version 0, nothing owned, for
	// a player the store has never seen).
	Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error)
	// Grant gives g.Items to g.PlayerID once per g.ID: applied is false,
	// and nothing changes, when g.ID was granted or revoked before.
	Grant(ctx context.Context, g Grant) (applied bool, inv inventoryapi.Inventory, err error)
	// Revoke takes back what grant id gave and unequips what is no longer
	// owned. A revoke that arrives before its grant leaves a tombstone, so
	// the late grant is not applied: applied is false in both orders when
	// there is nothing to take back.
	Revoke(ctx context.Context, r Revoke) (applied bool, inv inventoryapi.Inventory, err error)
	// Equip puts itemID in slot (itemID "" clears it). The ownership check
	// is the store's, in the same transaction: an item revoked a moment ago
	// cannot be equipped. Not owned is apierr.PermissionDenied.
	Equip(ctx context.Context, playerID, homeCell, slot, itemID string) (inventoryapi.Inventory, error)
}

// Grant is what one fulfillment gives a player.
type Grant struct {
	ID       string // the purchase id: the idempotency key
	PlayerID string
	HomeCell string
	Items    []catalogapi.Grant
}

// Revoke takes back the grant with ID.
type Revoke struct {
	ID       string
	PlayerID string
	HomeCell string
}

// DefaultLevel is every player's level until a progression service exists.
const DefaultLevel = 1

// FixedLevel is a level source that says every player is at one level.
type FixedLevel int

// Level returns l.
func (l FixedLevel) Level(context.Context, string) (int, error) { return int(l), nil }

// catalogReader gives the catalog (catalog.Service in process,
// catalogapi.Client remotely).
type catalogReader interface {
	Catalog(ctx context.Context) (catalogapi.Catalog, error)
}

// levelSource says a player's level.
type levelSource interface {
	Level(ctx context.Context, playerID string) (int, error)
}

// pusher sends a push to a player's session wherever it is. Pushes are
// at-most-once (docs/protocol.md): an error is logged, never retried.
type pusher interface {
	Push(ctx context.Context, playerID string, p protocol.Push) error
}

// playerVerifier checks a player access token.
type playerVerifier interface {
	VerifyPlayer(token string) (playerID, homeCell string, err error)
}

// Deps are the service's collaborators.
type Deps struct {
	Logger  *slog.Logger
	Store   Store
	Catalog catalogReader
	Levels  levelSource // nil: FixedLevel(DefaultLevel)
	Push    pusher      // nil: no pushes
	Verify  playerVerifier
	Metrics prometheus.Registerer
}

// Config configures the service.
type Config struct {
	// CellID is this cell; players of other cells are refused.
	CellID string
}

// Service is the inventory service. It is safe for concurrent use.
type Service struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	catalog catalogReader
	levels  levelSource
	push    pusher
	verify  playerVerifier
	m       *metrics
}

// New returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.CellID == "" {
		return nil, errors.New("inventory.New: Config.CellID is required")
	}
	if deps.Store == nil || deps.Catalog == nil || deps.Verify == nil {
		return nil, errors.New("inventory.New: Deps.Store, Deps.Catalog and Deps.Verify are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Levels == nil {
		deps.Levels = FixedLevel(DefaultLevel)
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("inventory.New: %w", err)
	}
	return &Service{cfg: cfg, log: deps.Logger, store: deps.Store, catalog: deps.Catalog, levels: deps.Levels, push: deps.Push, verify: deps.Verify, m: m}, nil
}

// Inventory returns playerID's inventory.
func (s *Service) Inventory(ctx context.Context, playerID string) (inventoryapi.Inventory, error) {
	inv, err := s.store.Inventory(ctx, playerID)
	if err != nil {
		return inventoryapi.Inventory{}, apierr.Wrap("inventory.Inventory", apierr.Unavailable, "", err)
	}
	return inv, nil
}

// Equip validates req against the catalog and the player's level, then
// changes the loadout. Every refusal is counted and logged with its reason.
func (s *Service) Equip(ctx context.Context, playerID, homeCell string, req inventoryapi.EquipRequest) (inventoryapi.Inventory, error) {
	inv, err := s.equip(ctx, playerID, homeCell, req)
	s.m.equipped(err)
	if err != nil && apierr.CodeOf(err).HTTPStatus() < 500 {
		s.log.Info("equip refused", "player", playerID, "slot", req.Slot, "item", req.ItemID, "code", apierr.CodeOf(err), "reason", apierr.MessageOf(err))
	}
	return inv, err
}

func (s *Service) equip(ctx context.Context, playerID, homeCell string, req inventoryapi.EquipRequest) (inventoryapi.Inventory, error) {
	if !catalogapi.ValidSlot(req.Slot) {
		return inventoryapi.Inventory{}, apierr.New(apierr.BadRequest, "slot %q is not a slot name", req.Slot)
	}
	if req.ItemID != "" {
		c, err := s.catalog.Catalog(ctx)
		if err != nil {
			return inventoryapi.Inventory{}, apierr.Wrap("inventory.Equip", apierr.Unavailable, "catalog unavailable", err)
		}
		it, ok := c.Item(req.ItemID)
		switch {
		case !ok:
			return inventoryapi.Inventory{}, apierr.New(apierr.NotFound, "item %q is not in the catalog", req.ItemID)
		case it.Slot == "":
			return inventoryapi.Inventory{}, apierr.New(apierr.BadRequest, "item %q cannot be equipped", req.ItemID)
		case it.Slot != req.Slot:
			return inventoryapi.Inventory{}, apierr.New(apierr.BadRequest, "item %q goes in slot %q, not %q", req.ItemID, it.Slot, req.Slot)
		}
		level, err := s.levels.Level(ctx, playerID)
		if err != nil {
			return inventoryapi.Inventory{}, apierr.Wrap("inventory.Equip", apierr.Unavailable, "player level unavailable", err)
		}
		if level < it.LevelRequired {
			return inventoryapi.Inventory{}, apierr.New(apierr.PermissionDenied, "item %q needs level %d; you are level %d", req.ItemID, it.LevelRequired, level)
		}
	}
	inv, err := s.store.Equip(ctx, playerID, homeCell, req.Slot, req.ItemID)
	if err != nil {
		if _, coded := apierr.From(err); coded {
			return inventoryapi.Inventory{}, err
		}
		return inventoryapi.Inventory{}, apierr.Wrap("inventory.Equip", apierr.Unavailable, "", err)
	}
	return inv, nil
}

// pushUpdate tells the player their inventory changed. The push carries
// the event id, so a client that sees one twice (a redelivered event) can
// skip it; the inventory version orders pushes and responses.
func (s *Service) pushUpdate(ctx context.Context, eventID string, inv inventoryapi.Inventory, reason, purchaseID string) {
	if s.push == nil {
		return
	}
	data, err := json.Marshal(inventoryapi.Updated{Inventory: inv, Reason: reason, PurchaseID: purchaseID})
	if err == nil {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err = s.push.Push(pctx, inv.PlayerID, protocol.Push{Topic: inventoryapi.TopicUpdated, ID: eventID, Data: data})
	}
	if err != nil {
		s.log.Warn("inventory push failed; the client sees the change on its next read", "player", inv.PlayerID, "error", err)
	}
}
