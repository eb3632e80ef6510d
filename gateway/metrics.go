package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/protocol"
)

// Results of connections_total and pushes_total.
const (
	connAccepted    = "accepted"
	connRejected    = "rejected_full"
	connAcceptError = "accept_error"

	pushDelivered = "delivered"
	pushNoSession = "no_session"
	pushDropped   = "dropped"
	pushTooLarge  = "too_large"
	pushError     = "error"

	codeOK = "ok"
)

type metrics struct {
	sessions       prometheus.Gauge
	connections    *prometheus.CounterVec
	framesIn       *prometheus.CounterVec
	framesOut      *prometheus.CounterVec
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	protocolErrors *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	pushes         *prometheus.CounterVec
	slowConsumers  prometheus.Counter
	rateLimited    prometheus.Counter
	drains         prometheus.Counter

	// Per-opcode children resolved once: the hot path would otherwise hash
	// label values on every frame. Read-only after newMetrics.
	ops     map[protocol.Opcode]*opMetrics
	unknown *opMetrics
}

// opMetrics are one opcode label's pre-resolved series.
type opMetrics struct {
	in, out, ok prometheus.Counter
	dur         prometheus.Observer
	name        string
}

func newMetrics(reg prometheus.Registerer, handlers protocol.Handlers) (*metrics, error) {
	const ns, sub = "livecell", "gateway"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions",
			Help: "Authenticated sessions held by this gateway."}),
		connections: counter("connections_total", "Accepted TCP connections by result (accepted, rejected_full, accept_error).", "result"),
		framesIn:    counter("frames_received_total", "Frames decoded from clients, by opcode.", "opcode"),
		framesOut:   counter("frames_sent_total", "Frames queued to clients, by opcode.", "opcode"),
		requests:    counter("requests_total", "Client requests answered, by opcode and result code (ok on success).", "opcode", "code"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time from a request frame's arrival to its answer being queued.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"opcode"}),
		protocolErrors: counter("protocol_errors_total", "Error frames sent for protocol violations, by code.", "code"),
		authFailures:   counter("auth_failures_total", "Failed handshakes, by code.", "code"),
		pushes:         counter("pushes_total", "Push calls by result (delivered, no_session, dropped, too_large, error).", "result"),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "slow_consumer_drops_total",
			Help: "Sessions dropped because their outbound queue was full."}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rate_limited_total",
			Help: "Frames refused by the per-session rate limit or in-flight limit."}),
		drains: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "drains_total",
			Help: "Drains started."}),
	}
	for _, c := range []prometheus.Collector{m.sessions, m.connections, m.framesIn, m.framesOut, m.requests, m.duration,
		m.protocolErrors, m.authFailures, m.pushes, m.slowConsumers, m.rateLimited, m.drains} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	byName := map[string]*opMetrics{}
	resolve := func(op protocol.Opcode) *opMetrics {
		name := op.String()
		if om, ok := byName[name]; ok {
			return om
		}
		om := &opMetrics{
			name: name,
			in:   m.framesIn.WithLabelValues(name),
			out:  m.framesOut.WithLabelValues(name),
			ok:   m.requests.WithLabelValues(name, codeOK),
			dur:  m.duration.WithLabelValues(name),
		}
		byName[name] = om
		return om
	}
	m.ops = map[protocol.Opcode]*opMetrics{}
	for _, oi := range protocol.Ops() {
		m.ops[oi.Op] = resolve(oi.Op)
	}
	for op := range handlers {
		m.ops[op] = resolve(op)
	}
	m.unknown = resolve(protocol.Opcode(0))
	return m, nil
}

func (m *metrics) op(op protocol.Opcode) *opMetrics {
	if om, ok := m.ops[op]; ok {
		return om
	}
	return m.unknown
}

// answered records one answered request.
func (m *metrics) answered(om *opMetrics, code apierr.Code, seconds float64) {
	if code == "" {
		om.ok.Inc()
	} else {
		m.requests.WithLabelValues(om.name, string(code)).Inc()
	}
	om.dur.Observe(seconds)
}
