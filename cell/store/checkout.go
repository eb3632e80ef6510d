package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
)

// maxRequestID bounds CheckoutRequest.RequestID.
const maxRequestID = 64

// purchaseHistory is how many of a player's purchases the ownership check
// reads: far more than any player makes of non-stackable items.
const purchaseHistory = 500

// Checkout starts a purchase for playerID, whom the caller authenticated.
// Every refusal is counted and logged with its reason.
func (s *Service) Checkout(ctx context.Context, playerID, homeCell string, req storeapi.CheckoutRequest) (storeapi.CheckoutResponse, error) {
	resp, err := s.checkout(ctx, playerID, homeCell, req)
	s.m.checkout(err)
	if err != nil && apierr.CodeOf(err).HTTPStatus() < 500 {
		s.log.Info("checkout refused", "player", playerID, "offer", req.OfferID, "currency", req.Currency, "quantity", req.Quantity,
			"code", apierr.CodeOf(err), "reason", apierr.MessageOf(err))
	}
	return resp, err
}

func (s *Service) checkout(ctx context.Context, playerID, homeCell string, req storeapi.CheckoutRequest) (storeapi.CheckoutResponse, error) {
	const op = "store.Checkout"
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	req.Currency = strings.ToLower(req.Currency)
	switch {
	case req.PlayerID != "" && req.PlayerID != playerID:
		return storeapi.CheckoutResponse{}, apierr.New(apierr.PermissionDenied, "a player can only buy for themselves")
	case !catalogapi.ValidID(req.OfferID):
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "offer_id %q is not an offer id", req.OfferID)
	case !catalogapi.ValidCurrency(req.Currency):
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "currency %q is not an ISO 4217 code", req.Currency)
	case req.Quantity < 1 || req.Quantity > catalogapi.MaxCheckoutQuantity:
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "quantity %d must be 1-%d", req.Quantity, catalogapi.MaxCheckoutQuantity)
	case len(req.RequestID) > maxRequestID || !utf8.ValidString(req.RequestID):
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "request_id must be at most %d characters", maxRequestID)
	}

	cat, err := s.catalog.Catalog(ctx)
	if err != nil {
		return storeapi.CheckoutResponse{}, apierr.Wrap(op, apierr.Unavailable, "catalog unavailable", err)
	}
	offer, ok := cat.Offer(req.OfferID)
	if !ok {
		return storeapi.CheckoutResponse{}, apierr.New(apierr.NotFound, "unknown offer %q", req.OfferID)
	}
	// Microseconds: what SQL timestamps keep, so every store agrees.
	now := s.now().UTC().Truncate(time.Microsecond)
	if !offer.AvailableAt(now) {
		return storeapi.CheckoutResponse{}, apierr.New(apierr.Conflict, "offer %q is not on sale now", req.OfferID)
	}
	price, ok := offer.Prices[req.Currency]
	if !ok {
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "offer %q is not sold in %s", req.OfferID, req.Currency)
	}
	item, ok := cat.Item(offer.ItemID)
	if !ok {
		return storeapi.CheckoutResponse{}, apierr.Wrap(op, apierr.Unavailable, "offer sells an item missing from the catalog", fmt.Errorf("item %q", offer.ItemID))
	}
	if !item.Stackable() && req.Quantity != 1 {
		return storeapi.CheckoutResponse{}, apierr.New(apierr.BadRequest, "%q is owned once: quantity must be 1", item.ID)
	}
	grants, err := cat.Grants(offer, req.Quantity)
	if err != nil {
		return storeapi.CheckoutResponse{}, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	if err := s.checkNotOwned(ctx, cat, playerID, grants); err != nil {
		return storeapi.CheckoutResponse{}, err
	}

	p := Purchase{
		Purchase: storeapi.Purchase{
			ID: "pur_" + strings.ReplaceAll(uuid.NewString(), "-", ""), PlayerID: playerID, OfferID: offer.ID, Quantity: req.Quantity,
			Currency: req.Currency, Amount: price * int64(req.Quantity), Status: storeapi.StatusPending, Grants: grants,
			TestMode: s.testMode, CreatedAt: now, UpdatedAt: now,
		},
		HomeCell:       homeCell,
		IdempotencyKey: idempotencyKey(playerID, req),
		ExpiresAt:      now.Add(s.cfg.CheckoutTTL),
	}
	p, _, err = s.store.CreatePurchase(ctx, p, now)
	if err != nil {
		return storeapi.CheckoutResponse{}, apierr.Wrap(op, apierr.Unavailable, "", err)
	}
	if p.SessionID == "" {
		title := offer.Title
		if title == "" {
			title = item.Display.Name
		}
		success, cancel := s.returnURLs(p.ID)
		sess, err := s.sessions.Create(ctx, SessionParams{Purchase: p, Title: title, UnitAmount: price, SuccessURL: success, CancelURL: cancel})
		if err != nil {
			return storeapi.CheckoutResponse{}, err
		}
		if err := s.store.AttachSession(ctx, p.ID, sess.ID, sess.URL, sess.ExpiresAt); err != nil {
			return storeapi.CheckoutResponse{}, apierr.Wrap(op, apierr.Unavailable, "", err)
		}
		p.SessionID, p.CheckoutURL, p.ExpiresAt = sess.ID, sess.URL, sess.ExpiresAt
	}
	return storeapi.CheckoutResponse{
		PurchaseID: p.ID, CheckoutURL: p.CheckoutURL, SessionID: p.SessionID,
		Amount: p.Amount, Currency: p.Currency, ExpiresAt: p.ExpiresAt, TestMode: p.TestMode,
	}, nil
}

// checkNotOwned refuses a purchase that would give the player a second copy
// of an item owned once: one in the inventory, or one paid for and still on
// its way to the inventory (fulfillment is asynchronous). With the
// inventory unreachable the check cannot be made, and checkout fails closed
// (unavailable, retryable) rather than sell something twice.
func (s *Service) checkNotOwned(ctx context.Context, cat catalogapi.Catalog, playerID string, grants []catalogapi.Grant) error {
	var once []string
	for _, g := range grants {
		if it, ok := cat.Item(g.ItemID); ok && !it.Stackable() {
			once = append(once, g.ItemID)
		}
	}
	if len(once) == 0 {
		return nil
	}
	inv, err := s.inventory.Inventory(ctx, playerID)
	if err != nil {
		return apierr.Wrap("store.Checkout", apierr.Unavailable, "inventory unavailable; try again", err)
	}
	for _, id := range once {
		if inv.Owns(id) > 0 {
			return apierr.New(apierr.Conflict, "you already own %q", id)
		}
	}
	past, err := s.store.Purchases(ctx, playerID, purchaseHistory)
	if err != nil {
		return apierr.Wrap("store.Checkout", apierr.Unavailable, "", err)
	}
	for _, p := range past {
		if p.Status != storeapi.StatusPaid {
			continue
		}
		for _, g := range p.Grants {
			for _, id := range once {
				if g.ItemID == id {
					return apierr.New(apierr.Conflict, "you already bought %q (purchase %s is being delivered)", id, p.ID)
				}
			}
		}
	}
	return nil
}

// idempotencyKey names a checkout request: the same player retrying the
// same request gets the same pending purchase (and so the same Stripe
// session), while a new RequestID starts a new one.
func idempotencyKey(playerID string, req storeapi.CheckoutRequest) string {
	h := sha256.New()
	for _, part := range []string{playerID, req.OfferID, req.Currency, strconv.Itoa(req.Quantity), req.RequestID} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
