package router

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/telemetry"
)

// metrics are the router's own metrics; HTTP RED metrics come from
// telemetry.InstrumentHTTP around Handler.
type metrics struct {
	resolves      *prometheus.CounterVec // placement, code
	duration      prometheus.Histogram
	cellUp        *prometheus.GaugeVec   // cell
	cellSessions  *prometheus.GaugeVec   // cell
	probeFailures *prometheus.CounterVec // cell
	// cells.yaml hot reloads (reload.go).
	reloads, reloadErrors prometheus.Counter
	// The control plane's routing table (routing.go).
	routingLoads *prometheus.CounterVec // result
	overrides    prometheus.Gauge

	// The success series, resolved once: the hot path skips the label hash.
	okExisting, okFailover, okNew, okPinned, okQuarantine prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var (
		m   metrics
		err error
	)
	if m.resolves, err = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_router_resolves_total",
		Help: "Resolve answers, by placement (existing, failover, new, pinned, quarantine, none) and code (ok or an error code).",
	}, []string{"placement", "code"})); err != nil {
		return nil, err
	}
	if m.duration, err = telemetry.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "livecell_router_resolve_duration_seconds",
		Help: "Time to resolve a player, including the directory lookup.",
		// In-process answers take microseconds; a directory read in another
		// region takes tens of milliseconds.
		Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	})); err != nil {
		return nil, err
	}
	if m.cellUp, err = telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "livecell_router_cell_up",
		Help: "1 when the router considers the cell healthy, else 0.",
	}, []string{"cell"})); err != nil {
		return nil, err
	}
	if m.cellSessions, err = telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "livecell_router_cell_sessions",
		Help: "Sessions the cell reported in its last successful status.",
	}, []string{"cell"})); err != nil {
		return nil, err
	}
	if m.probeFailures, err = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_router_probe_failures_total",
		Help: "Failed status probes (error, non-200 or unhealthy), by cell.",
	}, []string{"cell"})); err != nil {
		return nil, err
	}
	if m.reloads, err = telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livecell_router_config_reloads_total",
		Help: "cells.yaml changes applied by the file watcher.",
	})); err != nil {
		return nil, err
	}
	if m.reloadErrors, err = telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livecell_router_config_reload_errors_total",
		Help: "cells.yaml changes rejected (unreadable or invalid); the router keeps its last good config.",
	})); err != nil {
		return nil, err
	}
	if m.routingLoads, err = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_router_routing_loads_total",
		Help: "Loads of the control plane's routing table (cell states, overrides), by result (ok, error). On error the last table stays in force.",
	}, []string{"result"})); err != nil {
		return nil, err
	}
	if m.overrides, err = telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livecell_router_overrides",
		Help: "Entries of the override table (pins, quarantines) the router applies.",
	})); err != nil {
		return nil, err
	}
	m.okExisting = m.resolves.WithLabelValues(string(PlacementExisting), "ok")
	m.okPinned = m.resolves.WithLabelValues(string(PlacementPinned), "ok")
	m.okQuarantine = m.resolves.WithLabelValues(string(PlacementQuarantine), "ok")
	m.okFailover = m.resolves.WithLabelValues(string(PlacementFailover), "ok")
	m.okNew = m.resolves.WithLabelValues(string(PlacementNew), "ok")
	return &m, nil
}

func (m *metrics) observe(p Placement, err error, d time.Duration) {
	m.duration.Observe(d.Seconds())
	if err != nil {
		m.resolves.WithLabelValues("none", string(apierr.CodeOf(err))).Inc()
		return
	}
	switch p {
	case PlacementExisting:
		m.okExisting.Inc()
	case PlacementFailover:
		m.okFailover.Inc()
	case PlacementNew:
		m.okNew.Inc()
	case PlacementPinned:
		m.okPinned.Inc()
	case PlacementQuarantine:
		m.okQuarantine.Inc()
	}
}

// forgetCell drops the series of a cell removed from cells.yaml.
func (m *metrics) forgetCell(id string) {
	m.cellUp.DeleteLabelValues(id)
	m.cellSessions.DeleteLabelValues(id)
	m.probeFailures.DeleteLabelValues(id)
}
