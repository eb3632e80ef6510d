package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
)

// metrics are the store's own counters. A nil *metrics records nothing.
type metrics struct {
	checkouts *prometheus.CounterVec
	webhooks  *prometheus.CounterVec
	purchases *prometheus.CounterVec
	mismatch  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_store_checkouts_total",
			Help: "Checkout requests by result: ok, or the apierr code of the refusal (not_found: unknown offer, conflict: already owned or not on sale, bad_request: currency or quantity, permission_denied: buying for someone else).",
		}, []string{"result"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_store_webhooks_total",
			Help: "Stripe webhook deliveries by result: applied, duplicate (replayed or redelivered event id), ignored, rejected (contradicts its purchase), unsigned, bad_signature, stale (outside the replay window), malformed, error (store failure; Stripe retries).",
		}, []string{"result"}),
		purchases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_store_purchases_total",
			Help: "Purchase status changes committed by webhooks: paid, awaiting_payment, failed, refunded.",
		}, []string{"status"}),
		mismatch: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livecell_store_webhook_mismatches_total",
			Help: "Signed Stripe events that contradicted their purchase (player, session, amount or currency) and were refused: investigate every one.",
		}),
	}
	for _, c := range []prometheus.Collector{m.checkouts, m.webhooks, m.purchases, m.mismatch} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) checkout(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = string(apierr.CodeOf(err))
	}
	m.checkouts.WithLabelValues(result).Inc()
}

func (m *metrics) webhook(result string) {
	if m != nil {
		m.webhooks.WithLabelValues(result).Inc()
	}
}

func (m *metrics) purchase(status string) {
	if m != nil {
		m.purchases.WithLabelValues(status).Inc()
	}
}

func (m *metrics) rejected() {
	if m != nil {
		m.mismatch.Inc()
	}
}
