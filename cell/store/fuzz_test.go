package store_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/livecell/livecell/cell/store/stripetest"
)

// FuzzWebhook feeds the webhook arbitrary bodies and Stripe-Signature
// headers. Whatever arrives, the store must not panic, must answer a
// coded 4xx to anything not signed with its secret, and must never write an
// outbox event for a delivery it refused. Seeds: testdata/fuzz/FuzzWebhook.
func FuzzWebhook(f *testing.F) {
	now := time.Now()
	good := stripetest.Event("evt_seed", "checkout.session.completed", stripetest.Session{ID: "cs_1", ClientReferenceID: "pur_x", AmountTotal: 499, Currency: "usd", PaymentStatus: "paid"}, now)
	f.Add(good, stripetest.Sign(good, secret, now))
	f.Add(good, "t=1,v1=00")
	f.Add([]byte(`{"id":"evt_1","type":"charge.refunded","data":{"object":{"refunded":true,"payment_intent":"pi_1"}}}`), "")
	f.Add([]byte("{"), "t=,v1=")
	e := stripeEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		rec, _, eb := deliver(t, e.h, body, sig)
		if rec.Code >= 500 {
			t.Fatalf("webhook answered %d to fuzz input: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK && eb.Code == "" {
			t.Fatalf("refusal %d without a coded body: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if evs := outboxEvents(t, e); len(evs) != 0 {
				t.Fatalf("a refused delivery left %d outbox events", len(evs))
			}
		}
	})
}
