package registry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/telemetry"
)

// metrics are the registry's own metrics.
type metrics struct {
	queries *prometheus.CounterVec // service, result
	healthy *prometheus.GaugeVec   // service, cell
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var (
		m   metrics
		err error
	)
	if m.queries, err = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_registry_consul_queries_total",
		Help: "Consul health queries (blocking ones included), by service role and result (ok, error).",
	}, []string{"service", "result"})); err != nil {
		return nil, err
	}
	if m.healthy, err = telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "livecell_registry_healthy_instances",
		Help: "Passing Consul instances, by service role and cell, from the last answer.",
	}, []string{"service", "cell"})); err != nil {
		return nil, err
	}
	return &m, nil
}
