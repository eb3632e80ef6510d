package catalog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
)

// metrics are the catalog's own counters; request rates and latencies per
// route come from the shared HTTP middleware. A nil *metrics records nothing.
type metrics struct {
	writes       *prometheus.CounterVec
	notModified  prometheus.Counter
	adminRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_catalog_writes_total",
			Help: "Admin writes to the catalog by entity (item, offer) and result (ok or the apierr code).",
		}, []string{"entity", "result"}),
		notModified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livecell_catalog_not_modified_total",
			Help: "Catalog reads answered 304 Not Modified (or not_modified over the gateway): clients whose cached catalog was current.",
		}),
		adminRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_catalog_admin_refused_total",
			Help: "Admin requests refused before reaching the catalog, by apierr code (unauthenticated, invalid_token, permission_denied).",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.writes, m.notModified, m.adminRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register catalog metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) write(entity string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = string(apierr.CodeOf(err))
	}
	m.writes.WithLabelValues(entity, result).Inc()
}

func (m *metrics) unchanged() {
	if m != nil {
		m.notModified.Inc()
	}
}

func (m *metrics) refused(err error) {
	if m != nil {
		m.adminRefused.WithLabelValues(string(apierr.CodeOf(err))).Inc()
	}
}
