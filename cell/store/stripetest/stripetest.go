// Package stripetest builds Stripe webhook deliveries the way Stripe sends
// them: event JSON in the API version stripe-go v76 speaks, signed with
// stripe-go's webhook.GenerateTestSignedPayload. Tests use it to play
// Stripe; the store's TEST MODE uses it to simulate a payment locally.
package stripetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// Session is the part of a Checkout Session the store reads.
type Session struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	PaymentStatus     string            `json:"payment_status"` // paid, unpaid, no_payment_required
	Status            string            `json:"status"`
	Mode              string            `json:"mode"`
	PaymentIntent     string            `json:"payment_intent"`
}

// Charge is the part of a Charge the store reads.
type Charge struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Amount         int64             `json:"amount"`
	AmountRefunded int64             `json:"amount_refunded"`
	Currency       string            `json:"currency"`
	Refunded       bool              `json:"refunded"`
	PaymentIntent  string            `json:"payment_intent"`
	Metadata       map[string]string `json:"metadata"`
}

// ID returns a fresh Stripe-style id with prefix ("evt", "pi", "cs_test").
func ID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Event returns the JSON of an event of typ carrying object, with id (a
// fresh one when empty).
func Event(id, typ string, object any, at time.Time) []byte {
	if id == "" {
		id = ID("evt")
	}
	if s, ok := object.(Session); ok && s.Object == "" {
		s.Object, s.Mode = "checkout.session", "payment"
		object = s
	}
	if c, ok := object.(Charge); ok && c.Object == "" {
		c.Object = "charge"
		object = c
	}
	raw, err := json.Marshal(object)
	if err != nil {
		panic(err) // the object types above always marshal
	}
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": at.Unix(), "livemode": false,
		"pending_webhooks": 1, "type": typ, "data": map[string]json.RawMessage{"object": raw},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// Sign returns the Stripe-Signature header for payload, signed with secret
// at t (zero: now).
func Sign(payload []byte, secret string, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: t}).Header
}
