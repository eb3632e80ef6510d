package accounts

import (
	"container/list"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/livecell/livecell/internal/apierr"
)

// RateLimitConfig bounds sign-in attempts with token buckets, one per source
// address and one per account name. A failed attempt costs FailureCost
// tokens, a success one, so guessing runs out of tokens much sooner than
// normal play does.
//
// Every sign-in endpoint (register, password, Steam, Epic, refresh, logout,
// link) is limited per source before its body is read. Password logins are
// also limited per username, Steam and Epic logins and links per platform
// account once the platform has named it. Refresh has no per-account
// bucket: a refresh token works once and a reused one revokes its family,
// so there is nothing left to guess per token.
type RateLimitConfig struct {
	// Disabled turns limiting off: load tests that sign in thousands of
	// bots from one address, and benchmarks. Never in production.
	Disabled bool
	// PerSource is the bucket of one client address (an IPv6 client's /64).
	// Zero value: 60 attempts, then one every second. Generous, because
	// players behind one carrier-grade NAT or LAN share an address.
	PerSource Bucket
	// PerAccount is the bucket of one username or platform account,
	// whether or not it exists (so it reveals nothing). Zero value: 12
	// attempts, then one every 10 seconds.
	PerAccount Bucket
	// FailureCost is what a failed attempt costs (0 means 4).
	FailureCost int
	// MaxKeys bounds the buckets each limiter keeps (0 means 100,000, a
	// few MB). When full, the least recently used bucket is dropped, so
	// an attacker cycling through addresses or names cannot grow memory;
	// the price is that a dropped bucket forgets its penalty.
	MaxKeys int
	// TrustedProxyHops is how many reverse proxies that append to
	// X-Forwarded-For stand in front of the service. 0 (the default)
	// ignores the header, which any client can forge, and limits by the
	// connection's address. With n, the n-th address from the right of
	// X-Forwarded-For is the client: the one the outermost trusted proxy
	// saw.
	TrustedProxyHops int
}

// Bucket is a token bucket: Burst attempts at once, then one more every
// Every.
type Bucket struct {
	Burst int
	Every time.Duration
}

func (c *RateLimitConfig) setDefaults() error {
	if c.PerSource == (Bucket{}) {
		c.PerSource = Bucket{Burst: 60, Every: time.Second}
	}
	if c.PerAccount == (Bucket{}) {
		c.PerAccount = Bucket{Burst: 12, Every: 10 * time.Second}
	}
	if c.FailureCost == 0 {
		c.FailureCost = 4
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 100_000
	}
	for name, b := range map[string]Bucket{"PerSource": c.PerSource, "PerAccount": c.PerAccount} {
		if b.Burst < 1 || b.Every <= 0 {
			return fmt.Errorf("rate limit %s: burst %d and interval %v must be positive", name, b.Burst, b.Every)
		}
		if c.FailureCost > b.Burst {
			return fmt.Errorf("rate limit %s: failure cost %d exceeds burst %d", name, c.FailureCost, b.Burst)
		}
	}
	switch {
	case c.FailureCost < 1:
		return fmt.Errorf("rate limit failure cost %d must be at least 1", c.FailureCost)
	case c.MaxKeys < 1:
		return fmt.Errorf("rate limit MaxKeys %d must be positive", c.MaxKeys)
	case c.TrustedProxyHops < 0:
		return fmt.Errorf("rate limit TrustedProxyHops %d is negative", c.TrustedProxyHops)
	}
	return nil
}

// limiter is a bounded set of token buckets keyed by string. It is safe for
// concurrent use. A bucket that is absent is full, so dropping the least
// recently used one when the set is full only ever forgives.
//
// A bucket is kept as the time at which it will be full again (the
// "generic cell rate algorithm" form of a token bucket): integer durations,
// no floating-point drift, one time.Time per key.
type limiter struct {
	every time.Duration // time to regain one token
	depth time.Duration // burst × every: how far fullAt may run ahead of now
	max   int

	mu    sync.Mutex
	index map[string]*list.Element // of *bucketState
	lru   list.List                // most recently used at the front
}

type bucketState struct {
	key    string
	fullAt time.Time // the bucket holds burst tokens from then on
}

func newLimiter(b Bucket, maxKeys int) *limiter {
	return &limiter{every: b.Every, depth: time.Duration(b.Burst) * b.Every, max: maxKeys, index: make(map[string]*list.Element)}
}

// state returns key's bucket, creating a full one (and evicting the least
// recently used) when key has none. l.mu must be held.
func (l *limiter) state(key string, now time.Time) *bucketState {
	if e, ok := l.index[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*bucketState)
	}
	if l.lru.Len() >= l.max {
		oldest := l.lru.Back()
		delete(l.index, oldest.Value.(*bucketState).key)
		l.lru.Remove(oldest)
	}
	b := &bucketState{key: key, fullAt: now}
	l.index[key] = l.lru.PushFront(b)
	return b
}

// take spends cost tokens of key's bucket if it has them. Otherwise it
// spends nothing and says how long until it would have them.
func (l *limiter) take(key string, cost int, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.state(key, now)
	next := later(b.fullAt, now).Add(time.Duration(cost) * l.every)
	if ahead := next.Sub(now); ahead > l.depth {
		return false, ahead - l.depth
	}
	b.fullAt = next
	return true, 0
}

// charge spends up to cost more tokens of key's bucket, stopping at empty:
// the surcharge of a failed attempt, after the fact.
func (l *limiter) charge(key string, cost int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.state(key, now)
	next := later(b.fullAt, now).Add(time.Duration(cost) * l.every)
	if empty := now.Add(l.depth); next.After(empty) {
		next = empty
	}
	b.fullAt = next
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// size is the number of buckets held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// limits are the service's two limiters; nil when limiting is disabled.
type limits struct {
	cfg       RateLimitConfig
	bySource  *limiter
	byAccount *limiter
}

func newLimits(cfg RateLimitConfig) *limits {
	if cfg.Disabled {
		return nil
	}
	return &limits{
		cfg:       cfg,
		bySource:  newLimiter(cfg.PerSource, cfg.MaxKeys),
		byAccount: newLimiter(cfg.PerAccount, cfg.MaxKeys),
	}
}

// errRateLimited is the answer to an attempt over a limit. Which limit it
// was is not said: the account limit applies alike to names that do not
// exist, but the answer need not even hint at it.
func errRateLimited(wait time.Duration) error {
	e := apierr.New(apierr.RateLimited, "too many sign-in attempts, retry later")
	e.RetryAfter = max(wait, time.Second)
	return e
}

// attempt is one sign-in attempt, charged to its source address from the
// start and to an account once the handler knows which one.
type attempt struct {
	s       *Service
	source  string
	account string
}

// begin admits an attempt from r's source address, or refuses it with
// rate_limited. Every attempt costs one token, malformed ones included.
func (s *Service) begin(r *http.Request) (*attempt, error) {
	a := &attempt{s: s, source: sourceKey(r, s.cfg.RateLimit.TrustedProxyHops)}
	if s.limits == nil {
		return a, nil
	}
	if ok, wait := s.limits.bySource.take(a.source, 1, s.now()); !ok {
		s.metrics.rateLimited("source")
		return nil, errRateLimited(wait)
	}
	return a, nil
}

// forAccount admits the attempt for an account key ("user:alice",
// "steam:7656…"), or refuses it with rate_limited.
func (a *attempt) forAccount(key string) error {
	if a.s.limits == nil {
		return nil
	}
	if ok, wait := a.s.limits.byAccount.take(key, 1, a.s.now()); !ok {
		a.s.metrics.rateLimited("account")
		return errRateLimited(wait)
	}
	a.account = key
	return nil
}

// done charges a failed attempt's surcharge to its source and account.
func (a *attempt) done(err error) {
	if a == nil || a.s.limits == nil || !failedAttempt(err) {
		return
	}
	extra, now := a.s.limits.cfg.FailureCost-1, a.s.now()
	a.s.limits.bySource.charge(a.source, extra, now)
	if a.account != "" {
		a.s.limits.byAccount.charge(a.account, extra, now)
	}
}

// failedAttempt reports the outcomes that guessing produces: wrong
// credentials, dead tokens, names already taken.
func failedAttempt(err error) bool {
	if err == nil {
		return false
	}
	switch apierr.CodeOf(err) {
	case apierr.InvalidCredentials, apierr.InvalidToken, apierr.TokenExpired, apierr.Conflict:
		return true
	}
	return false
}

// sourceKey is the rate-limit key of r's client: its address, or for IPv6
// its /64, the smallest block a subscriber is usually given. X-Forwarded-For
// is read only when hops > 0 (see RateLimitConfig.TrustedProxyHops); when
// it is missing or unreadable the connection's address stands in, which
// lumps such requests together rather than letting them pick their key.
func sourceKey(r *http.Request, hops int) string {
	if hops > 0 {
		if a, ok := forwardedFor(r.Header.Values("X-Forwarded-For"), hops); ok {
			return addrKey(a)
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return addrKey(ap.Addr())
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return addrKey(a)
	}
	return "unknown"
}

// forwardedFor returns the hops-th address from the right of the
// X-Forwarded-For values (several headers count as one comma-separated list).
func forwardedFor(values []string, hops int) (netip.Addr, bool) {
	var entries []string
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	if len(entries) < hops {
		return netip.Addr{}, false
	}
	e := entries[len(entries)-hops]
	if ap, err := netip.ParseAddrPort(e); err == nil {
		return ap.Addr(), true
	}
	a, err := netip.ParseAddr(e)
	return a, err == nil
}

func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
