package edge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Transports, as metric labels.
const (
	TransportTCP  = "tcp"
	TransportQUIC = "quic"
	TransportWS   = "ws"
)

// Reasons a session ends (closes_total).
const (
	endClientLeft    = "client_left"
	endGatewayClosed = "gateway_closed"
	endAuthFailed    = "auth_failed"
	endProtocol      = "protocol_error"
	endNoCell        = "no_healthy_cell"
	endSlowConsumer  = "slow_consumer"
	endDrained       = "drained"
	endStopped       = "stopped"
)

type metrics struct {
	sessions       *prometheus.GaugeVec
	connections    *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	toCell         prometheus.Counter
	toPlayer       prometheus.Counter
	reattaches     *prometheus.CounterVec
	reattachTime   prometheus.Histogram
	interrupted    prometheus.Counter
	closes         *prometheus.CounterVec
	links          *prometheus.GaugeVec
	dials          *prometheus.CounterVec
	resumeRenewals *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "livecell", "edge"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	frames := counter("frames_relayed_total", "Frames relayed, by direction (to_cell, to_player).", "direction")
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions",
			Help: "Player connections held, by transport (tcp, quic, ws)."}, []string{"transport"}),
		connections:  counter("connections_total", "Player connections by transport and result (accepted, rejected_full).", "transport", "result"),
		authFailures: counter("auth_failures_total", "Player handshakes the edge refused before relaying anything, by code.", "code"),
		toCell:       frames.WithLabelValues("to_cell"),
		toPlayer:     frames.WithLabelValues("to_player"),
		reattaches: counter("reattaches_total", "Sessions moved to another attachment while the player stayed connected, by reason (failover, draining, rehome, shutting_down) and result (ok, failed).",
			"reason", "result"),
		reattachTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "reattach_seconds",
			Help:    "Time from losing a session's cell to its Welcome from the next one.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		interrupted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "interrupted_requests_total",
			Help: "Requests in flight when their session moved, answered with session_moved."}),
		closes: counter("closes_total", "Player connections ended, by reason.", "reason"),
		links: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "backbone_links",
			Help: "Backbone links up, by cell."}, []string{"cell"}),
		dials:          counter("backbone_dials_total", "Backbone link dials by cell and result (ok, or an error code).", "cell", "result"),
		resumeRenewals: counter("resume_renewals_total", "Resume tokens renewed on players' behalf, by result.", "result"),
	}
	for _, c := range []prometheus.Collector{m.sessions, m.connections, m.authFailures, frames, m.reattaches, m.reattachTime,
		m.interrupted, m.closes, m.links, m.dials, m.resumeRenewals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("edge: register metrics: %w", err)
		}
	}
	return m, nil
}
