package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/livecell/livecell/cell/accountsapi"
	"github.com/livecell/livecell/cell/inventoryapi"
	"github.com/livecell/livecell/cell/storeapi"
	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/gameclient"
	"github.com/livecell/livecell/internal/protocol"
)

// DefaultOffer is what the purchase probe buys: in the development catalog,
// a cosmetic a fresh player can buy and wear.
const DefaultOffer = "hat.crimson"

// PurchaseResult is what `livecell probe --purchase --json` prints.
type PurchaseResult struct {
	OK         bool   `json:"ok"`
	Player     string `json:"player,omitempty"`
	HomeCell   string `json:"home_cell,omitempty"`
	Offer      string `json:"offer,omitempty"`
	PurchaseID string `json:"purchase_id,omitempty"`
	TestMode   bool   `json:"test_mode"`
	// CheckoutMS is the store.checkout request over the gateway.
	CheckoutMS float64 `json:"checkout_ms"`
	// WebhookMS is the simulated payment: the signed webhook delivered and
	// its purchase and outbox event committed.
	WebhookMS float64 `json:"webhook_ms"`
	// WebhookToPushMS runs from sending the webhook to receiving the
	// inventory.updated push on the gateway session: outbox relay, bus,
	// inventory grant, push.
	WebhookToPushMS float64 `json:"webhook_to_push_ms"`
	// Owned is how many of the offer's item the inventory holds after.
	Owned int    `json:"owned"`
	Stage string `json:"stage,omitempty"`
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// Purchase buys one offer as a fresh player, end to end: resolve, register,
// open a gateway session, checkout over the gateway, pay through the
// store's TEST MODE simulation (which delivers a signed Stripe webhook),
// and wait for the inventory.updated push. It needs a store in test mode
// (`livecell dev` without Stripe keys): a real checkout page needs a
// person and a card.
func Purchase(ctx context.Context, o Options, offer string) (PurchaseResult, error) {
	r := PurchaseResult{Offer: offer}
	fail := func(stage string, err error) (PurchaseResult, error) {
		r.OK, r.Stage, r.Error = false, stage, err.Error()
		if e, ok := apierr.From(err); ok {
			r.Code = string(e.Code)
		}
		return r, fmt.Errorf("probe: %s: %w", stage, err)
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	res, err := resolve(ctx, hc, o.RouterURL, url.Values{"region_hint": nonEmpty(o.RegionHint)})
	if err != nil {
		return fail("resolve", err)
	}
	acc := accountsapi.Client{BaseURL: "http://" + res.API, HTTP: hc}
	auth, err := acc.Register(ctx, accountsapi.RegisterRequest{Username: "buyer-" + randHex(6), Password: randHex(16)})
	if err != nil {
		return fail("login", err)
	}
	r.Player, r.HomeCell = auth.PlayerID, auth.HomeCell
	conn, err := gameclient.Dial(ctx, res.Gateway, gameclient.Options{Token: auth.AccessToken, Client: "livecell-probe"})
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close()

	start := time.Now()
	b, err := conn.Request(ctx, protocol.OpStoreCheckout, mustJSON(storeapi.CheckoutRequest{OfferID: offer, Currency: "usd"}))
	r.CheckoutMS = ms(time.Since(start))
	if err != nil {
		return fail("checkout", err)
	}
	var co storeapi.CheckoutResponse
	if err := json.Unmarshal(b, &co); err != nil {
		return fail("checkout", fmt.Errorf("decode store.checkout: %w", err))
	}
	r.PurchaseID, r.TestMode = co.PurchaseID, co.TestMode
	if !co.TestMode {
		return fail("pay", errors.New("the store takes real payments (Stripe keys are set): pay at "+co.CheckoutURL+" in a browser"))
	}

	pushed := make(chan inventoryapi.Updated, 1)
	go awaitPush(ctx, conn, co.PurchaseID, pushed)
	start = time.Now()
	if _, err := (&storeapi.Client{HTTP: hc}).TestModePay(ctx, co.CheckoutURL); err != nil {
		return fail("pay", err)
	}
	r.WebhookMS = ms(time.Since(start))
	select {
	case u := <-pushed:
		r.WebhookToPushMS = ms(time.Since(start))
		r.Owned = u.Owns(offerItem(u, offer))
	case <-ctx.Done():
		return fail("push", fmt.Errorf("no inventory.updated push for purchase %s: %w", co.PurchaseID, ctx.Err()))
	}

	b, err = conn.Request(ctx, protocol.OpInventoryGet, nil)
	if err != nil {
		return fail("inventory", err)
	}
	var inv inventoryapi.Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return fail("inventory", err)
	}
	if r.Owned < 1 || inv.Version < 1 {
		return fail("inventory", fmt.Errorf("inventory %+v does not hold what purchase %s bought", inv, co.PurchaseID))
	}
	r.OK = true
	return r, nil
}

// awaitPush sends the inventory.updated push of purchaseID, once.
func awaitPush(ctx context.Context, conn *gameclient.Conn, purchaseID string, out chan<- inventoryapi.Updated) {
	for {
		select {
		case <-ctx.Done():
			return
		case p, ok := <-conn.Pushes():
			if !ok {
				return
			}
			if p.Topic != inventoryapi.TopicUpdated {
				continue
			}
			var u inventoryapi.Updated
			if json.Unmarshal(p.Data, &u) == nil && u.PurchaseID == purchaseID {
				out <- u
				return
			}
		}
	}
}

// offerItem names the item the push should show: the offer's id is the
// item's id in the development catalog, otherwise the first item owned.
func offerItem(u inventoryapi.Updated, offer string) string {
	if u.Owns(offer) > 0 || len(u.Items) == 0 {
		return offer
	}
	return u.Items[0].ItemID
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the request types always marshal
	}
	return b
}
