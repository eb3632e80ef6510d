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
	registrations  *prometheus.CounterVec
	logins         *prometheus.CounterVec
	platformLogins *prometheus.CounterVec
	refreshes      *prometheus.CounterVec
	refreshReuse   prometheus.Counter
	limited        *prometheus.CounterVec
	hashSeconds    prometheus.Histogram
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
		platformLogins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_accounts_platform_logins_total",
			Help: "Platform sign-ins by provider (steam, epic) and result (ok, created, or the apierr code).",
		}, []string{"provider", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_accounts_refreshes_total",
			Help: "Refresh token presentations by outcome (rotated, reused, expired, revoked, unknown, malformed).",
		}, []string{"outcome"}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livecell_accounts_refresh_reuse_total",
			Help: "Refresh tokens presented after they were used: each revoked its whole family. A rise means stolen tokens (or a client that does not keep the newest one).",
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livecell_accounts_rate_limited_total",
			Help: "Sign-in attempts refused by a rate limit, by limit (source address or account).",
		}, []string{"limit"}),
		hashSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "livecell_accounts_password_hash_seconds",
			Help:    "Time to hash or verify one password with argon2id, including the wait for a hashing slot.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	for _, c := range []prometheus.Collector{m.registrations, m.logins, m.platformLogins, m.refreshes, m.refreshReuse, m.limited, m.hashSeconds} {
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

// platformLogin records a platform sign-in; created marks a first login.
func (m *metrics) platformLogin(provider string, created bool, err error) {
	if m == nil {
		return
	}
	r := result(err)
	if created {
		r = "created"
	}
	m.platformLogins.WithLabelValues(provider, r).Inc()
}

func (m *metrics) refreshed(outcome string) {
	if m != nil {
		m.refreshes.WithLabelValues(outcome).Inc()
	}
}

func (m *metrics) reused() {
	if m != nil {
		m.refreshReuse.Inc()
	}
}

func (m *metrics) rateLimited(limit string) {
	if m != nil {
		m.limited.WithLabelValues(limit).Inc()
	}
}
