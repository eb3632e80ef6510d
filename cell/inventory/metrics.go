package inventory

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
)

// metrics are the inventory's own counters. A nil *metrics records nothing.
type metrics struct {
	events *prometheus.CounterVec
	equips *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_inventory_fulfillment_events_total",
			Help: "Fulfillment events handled by type and result: applied, duplicate (already applied: at-least-once delivery absorbed), retry (store failure), poison (malformed, dead-lettered).",
		}, []string{"type", "result"}),
		equips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_inventory_equips_total",
			Help: "Equip requests by result: ok, or the apierr code of the refusal (permission_denied: not owned or level too low; bad_request: wrong slot).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.equips} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register inventory metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) consumed(typ, result string) {
	if m != nil {
		m.events.WithLabelValues(typ, result).Inc()
	}
}

func (m *metrics) equipped(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = string(apierr.CodeOf(err))
	}
	m.equips.WithLabelValues(result).Inc()
}
