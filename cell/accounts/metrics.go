package accounts

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
)

// metrics are the accounts service's own counters; request rates and
// latencies per route come from the shared HTTP middleware. A nil *metrics
// (no Registerer in Deps) records nothing.
type metrics struct {
	registrations *prometheus.CounterVec
	logins        *prometheus.CounterVec
	hashSeconds   prometheus.Histogram
}

// resultOK is the result label of a success; failures are labelled with
// their apierr code, a small fixed set.
const resultOK = "ok"

// newMetrics registers the service's metrics with reg. They carry no cell
// label: the wiring wraps reg with one (prometheus.WrapRegistererWith), which
// is also what keeps several cells in one process apart.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_accounts_registrations_total",
			Help: "Username/password registrations by result (ok or the apierr code).",
		}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_accounts_logins_total",
			Help: "Username/password logins by result (ok or the apierr code).",
		}, []string{"result"}),
		hashSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livecell_accounts_password_hash_seconds",
			Help:    "Time to hash or verify one password with argon2id, including the wait for a hashing slot.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	for _, c := range []prometheus.Collector{m.registrations, m.logins, m.hashSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register accounts metrics: %w", err)
		}
	}
	return m, nil
}

func result(err error) string {
	if err == nil {
		return resultOK
	}
	return string(apierr.CodeOf(err))
}

func (m *metrics) registration(err error) {
	if m != nil {
		m.registrations.WithLabelValues(result(err)).Inc()
	}
}

func (m *metrics) login(err error) {
	if m != nil {
		m.logins.WithLabelValues(result(err)).Inc()
	}
}

func (m *metrics) hashed(d time.Duration) {
	if m != nil {
		m.hashSeconds.Observe(d.Seconds())
	}
}
