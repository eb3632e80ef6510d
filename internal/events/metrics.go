package events

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the event pipeline's metrics, shared by the relay, the
// in-process bus and amqpbus. A nil *Metrics records nothing.
type Metrics struct {
	published     prometheus.Counter
	publishFailed prometheus.Counter
	relayLag      prometheus.Histogram
	consumed      *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	handleSeconds *prometheus.HistogramVec
	connects      *prometheus.CounterVec
	connected     prometheus.Gauge
}

// Consumer results, the "result" label of livecell_events_consumed_total.
const (
	ResultOK           = "ok"
	ResultRetried      = "retried"
	ResultDeadLettered = "dead_lettered"
)

// NewMetrics registers the pipeline's metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &Metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livecell_events_published_total",
			Help: "Outbox events the relay published and the bus confirmed.",
		}),
		publishFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livecell_events_publish_failures_total",
			Help: "Relay batches that failed to publish (broker down, nack, handler error on the in-process bus); the events stay in the outbox and are retried.",
		}),
		relayLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livecell_events_relay_lag_seconds",
			Help:    "Time from an event's commit to its confirmed publish.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120},
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_events_consumed_total",
			Help: "Event deliveries handled, by consumer group and result (ok, retried: a transient error, dead_lettered: poison).",
		}, []string{"group", "result"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_events_dead_lettered_total",
			Help: "Events moved to a consumer group's dead-letter queue. Anything above zero needs an operator: livecell events dlq list.",
		}, []string{"group"}),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "livecell_events_handle_seconds",
			Help:    "Time a consumer group's handler took per delivery.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"group"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_events_broker_connects_total",
			Help: "Connections to the broker by result (ok, failed); more than one ok means reconnections.",
		}, []string{"result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livecell_events_broker_connected",
			Help: "1 while the process holds a broker connection.",
		}),
	}
	for _, c := range []prometheus.Collector{m.published, m.publishFailed, m.relayLag, m.consumed, m.deadLettered, m.handleSeconds, m.connects, m.connected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register events metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) publishedBatch(evs []Event, now time.Time) {
	if m == nil {
		return
	}
	m.published.Add(float64(len(evs)))
	for _, e := range evs {
		m.relayLag.Observe(now.Sub(e.OccurredAt).Seconds())
	}
}

func (m *Metrics) publishFailure() {
	if m != nil {
		m.publishFailed.Inc()
	}
}

// Handled records one delivery's outcome for group.
func (m *Metrics) Handled(group, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.consumed.WithLabelValues(group, result).Inc()
	m.handleSeconds.WithLabelValues(group).Observe(took.Seconds())
	if result == ResultDeadLettered {
		m.deadLettered.WithLabelValues(group).Inc()
	}
}

// Connected records a connection attempt's result and the connection state.
func (m *Metrics) Connected(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.connects.WithLabelValues("ok").Inc()
		m.connected.Set(1)
		return
	}
	m.connects.WithLabelValues("failed").Inc()
}

// Disconnected records the loss of the broker connection.
func (m *Metrics) Disconnected() {
	if m != nil {
		m.connected.Set(0)
	}
}
