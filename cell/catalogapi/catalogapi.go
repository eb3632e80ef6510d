// Package catalogapi is the public contract of the catalog service: the
// items a game knows (cosmetics, currency packs, bundles), the store offers
// that sell them, the HTTP paths that serve and edit them, and a client that
// caches the catalog by version. The store and inventory services, the probe
// and game tools import this package, never cell/catalog.
//
// The catalog is GLOBAL data: one copy for every cell, read everywhere,
// written rarely by operators with a server credential.
package catalogapi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// HTTP paths of the catalog API.
const (
	// PathCatalog: GET → 200 Catalog with an ETag; If-None-Match with the
	// current ETag → 304. Any caller: the catalog is public.
	PathCatalog = "/v1/catalog"
	// PathAdminItems + "/{id}": PUT Item → 200 Item. Server credential
	// with ScopeAdmin.
	PathAdminItems = "/v1/admin/catalog/items"
	// PathAdminOffers + "/{id}": PUT Offer → 200 Offer. Server credential
	// with ScopeAdmin.
	PathAdminOffers = "/v1/admin/catalog/offers"
)

// ScopeAdmin is the server-token scope that may edit the catalog
// (livecell keys server-token --scope catalog.admin).
const ScopeAdmin = "catalog.admin"

// Kind is what an item is.
type Kind string

const (
	KindCosmetic     Kind = "cosmetic"      // equippable look; owned once
	KindCurrencyPack Kind = "currency_pack" // stackable; owned in quantity
	KindBundle       Kind = "bundle"        // grants its Contents; owned once
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{KindCosmetic, KindCurrencyPack, KindBundle} }

// Rarity grades an item for display and drop tables.
type Rarity string

const (
	RarityCommon    Rarity = "common"
	RarityUncommon  Rarity = "uncommon"
	RarityRare      Rarity = "rare"
	RarityEpic      Rarity = "epic"
	RarityLegendary Rarity = "legendary"
)

// Rarities lists every rarity, lowest first.
func Rarities() []Rarity {
	return []Rarity{RarityCommon, RarityUncommon, RarityRare, RarityEpic, RarityLegendary}
}

// Limits of catalog entries. They keep the whole catalog small enough to
// serve in one response and every price far from integer overflow.
const (
	MaxIDLen         = 64
	MaxNameLen       = 128
	MaxDescription   = 1024
	MaxLevel         = 1000
	MaxBundleItems   = 32
	MaxGrantQuantity = 100_000
	// MaxUnitAmount is the largest price of one offer in minor units
	// (10,000.00 in a two-decimal currency).
	MaxUnitAmount = 1_000_000
	// MaxCheckoutQuantity bounds how many of a stackable offer one
	// checkout buys.
	MaxCheckoutQuantity = 10
	MaxTags             = 16
	MaxItems            = 10_000
	MaxOffers           = 10_000
)

var (
	idPattern       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	slotPattern     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// ValidID reports whether id can name an item or an offer: 1 to 64 of
// a-z 0-9 . _ -, starting with a letter or digit. Ids are stable forever:
// the game client maps them to its assets.
func ValidID(id string) bool { return len(id) <= MaxIDLen && idPattern.MatchString(id) }

// ValidSlot reports whether slot can name an equipment slot.
func ValidSlot(slot string) bool { return slotPattern.MatchString(slot) }

// ValidCurrency reports whether c is an ISO 4217 code in lower case, as
// Stripe spells them ("usd", "eur").
func ValidCurrency(c string) bool { return currencyPattern.MatchString(c) }

// Display is what a client shows. The game maps Asset (or the item id) to
// its own assets, e.g. an Unreal Primary Asset Id.
type Display struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Icon        string   `json:"icon,omitempty"`  // icon URL or asset path
	Asset       string   `json:"asset,omitempty"` // e.g. "CosmeticItem:Skin_Crimson"
	Tags        []string `json:"tags,omitempty"`
}

// Grant is an item and a quantity: a bundle's content, or what a purchase
// grants.
type Grant struct {
	ItemID   string `json:"item_id"`
	Quantity int    `json:"quantity"`
}

// Item is one thing a player can own.
type Item struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Rarity Rarity `json:"rarity"`
	// Slot is the equipment slot a cosmetic goes in ("head", "body",
	// "weapon_skin", ...); empty for items that are not equipped.
	Slot string `json:"slot,omitempty"`
	// LevelRequired is the player level needed to equip the item (0: none).
	LevelRequired int     `json:"level_required"`
	Display       Display `json:"display"`
	// Contents are what a bundle grants (bundles only; no nested bundles).
	Contents []Grant `json:"contents,omitempty"`
}

// Stackable reports whether a player can own more than one of the item.
// Currency packs stack; cosmetics and bundles are owned once.
func (it Item) Stackable() bool { return it.Kind == KindCurrencyPack }

// Offer sells Quantity of an item for a price in one or more currencies,
// inside an optional availability window.
type Offer struct {
	ID       string `json:"id"`
	ItemID   string `json:"item_id"`
	Quantity int    `json:"quantity"`
	// Prices maps a currency ("usd") to the price of one offer in the
	// currency's minor unit (cents).
	Prices map[string]int64 `json:"prices"`
	// AvailableFrom and AvailableUntil bound when the offer can be bought;
	// nil is open-ended. Until is exclusive.
	AvailableFrom  *time.Time `json:"available_from,omitempty"`
	AvailableUntil *time.Time `json:"available_until,omitempty"`
	Title          string     `json:"title,omitempty"` // shown on Stripe's page; default the item's name
}

// AvailableAt reports whether the offer can be bought at t.
func (o Offer) AvailableAt(t time.Time) bool {
	if o.AvailableFrom != nil && t.Before(*o.AvailableFrom) {
		return false
	}
	if o.AvailableUntil != nil && !t.Before(*o.AvailableUntil) {
		return false
	}
	return true
}

// Catalog is the whole catalog at one version. Version grows with every
// change; its ETag is ETag(Version).
type Catalog struct {
	Version int64   `json:"version"`
	Items   []Item  `json:"items"`
	Offers  []Offer `json:"offers"`
}

// GetRequest is the payload of the catalog.get opcode. IfVersion, when it
// is the current version, gets NotModified instead of the catalog.
type GetRequest struct {
	IfVersion int64 `json:"if_version,omitempty"`
}

// NotModified answers catalog.get when the client's catalog is current.
type NotModified struct {
	Version     int64 `json:"version"`
	NotModified bool  `json:"not_modified"`
}

// ETag is the HTTP entity tag of a catalog version.
func ETag(version int64) string { return fmt.Sprintf(`"catalog-v%d"`, version) }

// Item returns the item with id.
func (c Catalog) Item(id string) (Item, bool) {
	i := slices.IndexFunc(c.Items, func(it Item) bool { return it.ID == id })
	if i < 0 {
		return Item{}, false
	}
	return c.Items[i], true
}

// Offer returns the offer with id.
func (c Catalog) Offer(id string) (Offer, bool) {
	i := slices.IndexFunc(c.Offers, func(o Offer) bool { return o.ID == id })
	if i < 0 {
		return Offer{}, false
	}
	return c.Offers[i], true
}

// Validate checks an item on its own; ValidateIn checks what it refers to.
func (it Item) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if !ValidID(it.ID) {
		add("id %q must be 1-%d of a-z 0-9 . _ - starting with a letter or digit", it.ID, MaxIDLen)
	}
	if !slices.Contains(Kinds(), it.Kind) {
		add("kind %q must be one of %v", it.Kind, Kinds())
	}
	if !slices.Contains(Rarities(), it.Rarity) {
		add("rarity %q must be one of %v", it.Rarity, Rarities())
	}
	switch {
	case it.Slot != "" && it.Kind != KindCosmetic:
		add("only cosmetics have a slot")
	case it.Slot != "" && !ValidSlot(it.Slot):
		add("slot %q must be 1-32 of a-z 0-9 _ starting with a letter", it.Slot)
	}
	if it.LevelRequired < 0 || it.LevelRequired > MaxLevel {
		add("level_required %d must be 0-%d", it.LevelRequired, MaxLevel)
	}
	if strings.TrimSpace(it.Display.Name) == "" || !text(it.Display.Name, MaxNameLen) {
		add("display.name must be 1-%d characters of UTF-8 text", MaxNameLen)
	}
	if !text(it.Display.Description, MaxDescription) || !text(it.Display.Icon, MaxDescription) || !text(it.Display.Asset, MaxNameLen) {
		add("display.description, icon and asset must be UTF-8 text within their limits")
	}
	if len(it.Display.Tags) > MaxTags {
		add("display.tags holds %d tags, at most %d", len(it.Display.Tags), MaxTags)
	}
	for _, tag := range it.Display.Tags {
		if tag == "" || !text(tag, MaxIDLen) {
			add("display.tags: %q must be 1-%d characters", tag, MaxIDLen)
		}
	}
	switch {
	case it.Kind == KindBundle && len(it.Contents) == 0:
		add("a bundle needs contents")
	case it.Kind != KindBundle && len(it.Contents) > 0:
		add("only bundles have contents")
	case len(it.Contents) > MaxBundleItems:
		add("a bundle holds at most %d entries", MaxBundleItems)
	}
	seen := map[string]bool{}
	for _, g := range it.Contents {
		if !ValidID(g.ItemID) || g.ItemID == it.ID {
			add("contents: item %q is not a valid id of another item", g.ItemID)
		}
		if seen[g.ItemID] {
			add("contents: item %q is listed twice", g.ItemID)
		}
		seen[g.ItemID] = true
		if g.Quantity < 1 || g.Quantity > MaxGrantQuantity {
			add("contents: quantity %d of %q must be 1-%d", g.Quantity, g.ItemID, MaxGrantQuantity)
		}
	}
	return problems("item", probs)
}

// ValidateIn checks an item against the catalog it joins: bundle contents
// exist, are not bundles, and non-stackable contents come once.
func (it Item) ValidateIn(c Catalog) error {
	if err := it.Validate(); err != nil {
		return err
	}
	var probs []string
	for _, g := range it.Contents {
		inner, ok := c.Item(g.ItemID)
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("contents: item %q is not in the catalog", g.ItemID))
		case inner.Kind == KindBundle:
			probs = append(probs, fmt.Sprintf("contents: %q is a bundle; bundles do not nest", g.ItemID))
		case !inner.Stackable() && g.Quantity != 1:
			probs = append(probs, fmt.Sprintf("contents: %q is owned once, quantity must be 1", g.ItemID))
		}
	}
	// An item that is already in a bundle cannot become a bundle itself.
	if it.Kind == KindBundle {
		for _, other := range c.Items {
			if other.Kind == KindBundle && slices.ContainsFunc(other.Contents, func(g Grant) bool { return g.ItemID == it.ID }) {
				probs = append(probs, fmt.Sprintf("bundle %q contains %q, so it cannot be a bundle", other.ID, it.ID))
			}
		}
	}
	return problems("item", probs)
}

// Validate checks an offer on its own; ValidateIn checks its item.
func (o Offer) Validate() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if !ValidID(o.ID) {
		add("id %q must be 1-%d of a-z 0-9 . _ - starting with a letter or digit", o.ID, MaxIDLen)
	}
	if !ValidID(o.ItemID) {
		add("item_id %q is not a valid item id", o.ItemID)
	}
	if o.Quantity < 1 || o.Quantity > MaxGrantQuantity {
		add("quantity %d must be 1-%d", o.Quantity, MaxGrantQuantity)
	}
	if len(o.Prices) == 0 {
		add("prices needs at least one currency")
	}
	for cur, amount := range o.Prices {
		if !ValidCurrency(cur) {
			add("prices: currency %q must be a lower-case ISO 4217 code", cur)
		}
		if amount < 1 || amount > MaxUnitAmount {
			add("prices: %s amount %d must be 1-%d minor units", cur, amount, MaxUnitAmount)
		}
	}
	if o.AvailableFrom != nil && o.AvailableUntil != nil && !o.AvailableUntil.After(*o.AvailableFrom) {
		add("available_until must be after available_from")
	}
	if !text(o.Title, MaxNameLen) {
		add("title must be at most %d characters of UTF-8 text", MaxNameLen)
	}
	return problems("offer", probs)
}

// ValidateIn checks an offer against the catalog: its item exists, and an
// item owned once is sold one at a time.
func (o Offer) ValidateIn(c Catalog) error {
	if err := o.Validate(); err != nil {
		return err
	}
	it, ok := c.Item(o.ItemID)
	switch {
	case !ok:
		return fmt.Errorf("offer: item %q is not in the catalog", o.ItemID)
	case !it.Stackable() && o.Quantity != 1:
		return fmt.Errorf("offer: %q is owned once, quantity must be 1", o.ItemID)
	}
	return nil
}

// Grants returns what buying quantity of offer o grants: its item, or a
// bundle's item and contents, each multiplied out.
func (c Catalog) Grants(o Offer, quantity int) ([]Grant, error) {
	it, ok := c.Item(o.ItemID)
	if !ok {
		return nil, fmt.Errorf("catalogapi: offer %q sells unknown item %q", o.ID, o.ItemID)
	}
	out := []Grant{{ItemID: it.ID, Quantity: o.Quantity * quantity}}
	for _, g := range it.Contents {
		out = append(out, Grant{ItemID: g.ItemID, Quantity: g.Quantity * quantity})
	}
	return out, nil
}

func text(s string, max int) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= max && !strings.ContainsRune(s, 0)
}

func problems(what string, probs []string) error {
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, strings.Join(probs, "; "))
}
