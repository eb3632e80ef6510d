// Package storeapi is the public contract of the store service: checkout
// requests and answers, purchases, the HTTP paths (including the Stripe
// webhook) and the purchase events the store publishes for fulfillment.
// Inventory consumes those events through this package, never cell/store.
package storeapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/livecell/livecell/cell/catalogapi"
	"github.com/livecell/livecell/internal/httpapi"
)

// HTTP paths of the store API.
const (
	// PathCheckout: Bearer player token; POST CheckoutRequest → 201
	// CheckoutResponse.
	PathCheckout = "/v1/store/checkout"
	// PathPurchases: Bearer player token; GET → 200 Purchases.
	PathPurchases = "/v1/store/purchases"
	// PathWebhook: Stripe's webhook endpoint; POST a signed event → 200.
	PathWebhook = "/v1/store/webhook"
	// PathTestModePay + "/{purchase}": only on a store in TEST MODE (no
	// Stripe keys): POST → 200 Purchase. Simulates the player paying on
	// the hosted page: the store signs a checkout.session.completed event
	// with its local webhook secret and delivers it to its own webhook.
	PathTestModePay = "/v1/store/test-mode/pay"
	// PathReturn + "/{result}" (success or cancel): GET → 200 Return. The
	// default page Stripe sends the player back to; games usually
	// configure their own (a deep link) instead.
	PathReturn = "/v1/store/return"
)

// Return is the answer of the default return page.
type Return struct {
	Result     string `json:"result"`
	PurchaseID string `json:"purchase_id,omitempty"`
	Message    string `json:"message"`
}

// WebhookAnswer is the store's 200 answer to Stripe: what it did with the
// event (applied, duplicate, ignored). Stripe only reads the status.
type WebhookAnswer struct {
	Received bool   `json:"received"`
	Outcome  string `json:"outcome"`
}

// Purchase statuses.
const (
	StatusPending         = "pending"          // checkout created, not paid
	StatusAwaitingPayment = "awaiting_payment" // checkout completed, asynchronous payment not settled
	StatusPaid            = "paid"             // paid: fulfillment event published
	StatusFailed          = "failed"           // asynchronous payment failed
	StatusRefunded        = "refunded"         // fully refunded: revocation event published
)

// Event types the store publishes (their payload is PurchaseEvent).
const (
	TypePurchaseCompleted = "store.purchase.completed"
	TypePurchaseRefunded  = "store.purchase.refunded"
	// TopicPurchases matches both, for consumers.
	TopicPurchases = "store.purchase.*"
)

// CheckoutRequest starts buying Quantity of an offer in a currency.
type CheckoutRequest struct {
	OfferID  string `json:"offer_id"`
	Currency string `json:"currency"`
	// Quantity defaults to 1; only stackable items (currency packs) may
	// buy more, up to catalogapi.MaxCheckoutQuantity.
	Quantity int `json:"quantity,omitempty"`
	// PlayerID, when set, must be the caller: gifting is not supported, and
	// a client that names someone else is refused rather than ignored.
	PlayerID string `json:"player_id,omitempty"`
	// RequestID makes retries safe: the same caller, offer, currency,
	// quantity and RequestID get the same checkout (up to 64 characters).
	RequestID string `json:"request_id,omitempty"`
}

// CheckoutResponse is where the player pays.
type CheckoutResponse struct {
	PurchaseID  string    `json:"purchase_id"`
	CheckoutURL string    `json:"checkout_url"`
	SessionID   string    `json:"session_id"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	ExpiresAt   time.Time `json:"expires_at"`
	// TestMode is true when no Stripe keys are configured: CheckoutURL is
	// the store's local pay simulation, no money moves.
	TestMode bool `json:"test_mode"`
}

// Purchase is one checkout and what became of it.
type Purchase struct {
	ID        string             `json:"id"`
	PlayerID  string             `json:"player_id"`
	OfferID   string             `json:"offer_id"`
	Quantity  int                `json:"quantity"`
	Currency  string             `json:"currency"`
	Amount    int64              `json:"amount"`
	Status    string             `json:"status"`
	Grants    []catalogapi.Grant `json:"grants"`
	SessionID string             `json:"session_id"`
	TestMode  bool               `json:"test_mode"`
	CreatedAt time.Time          `json:"created_at"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// Purchases lists a player's purchases, newest first.
type Purchases struct {
	Purchases []Purchase `json:"purchases"`
}

// PurchaseEvent is the payload of the store's events. PurchaseID is the
// fulfillment key: consumers grant (and revoke) at most once per purchase.
type PurchaseEvent struct {
	PurchaseID string             `json:"purchase_id"`
	PlayerID   string             `json:"player_id"`
	HomeCell   string             `json:"home_cell"`
	OfferID    string             `json:"offer_id"`
	Grants     []catalogapi.Grant `json:"grants"`
	// PaidAt is when Stripe's event said the payment completed.
	PaidAt time.Time `json:"paid_at"`
}

// Client calls one cell's store API with a player's access token.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// Checkout starts a purchase.
func (c *Client) Checkout(ctx context.Context, playerToken string, req CheckoutRequest) (CheckoutResponse, error) {
	var out CheckoutResponse
	err := httpapi.Do(ctx, c.HTTP, httpapi.Call{Op: "storeapi.Checkout", Peer: "store service", Method: http.MethodPost,
		URL: strings.TrimRight(c.BaseURL, "/") + PathCheckout, Token: playerToken, In: req, Out: &out})
	return out, err
}

// Purchases lists the token holder's purchases.
func (c *Client) Purchases(ctx context.Context, playerToken string) (Purchases, error) {
	var out Purchases
	err := httpapi.Do(ctx, c.HTTP, httpapi.Call{Op: "storeapi.Purchases", Peer: "store service", Method: http.MethodGet,
		URL: strings.TrimRight(c.BaseURL, "/") + PathPurchases, Token: playerToken, Out: &out})
	return out, err
}

// TestModePay completes a test-mode checkout as if the player had paid
// (checkoutURL is CheckoutResponse.CheckoutURL of a test-mode store).
func (c *Client) TestModePay(ctx context.Context, checkoutURL string) (Purchase, error) {
	var out Purchase
	err := httpapi.Do(ctx, c.HTTP, httpapi.Call{Op: "storeapi.TestModePay", Peer: "store service", Method: http.MethodPost,
		URL: checkoutURL, Out: &out})
	return out, err
}
