package control

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/apierr"
	"github.com/livecell/livecell/internal/telemetry"
)

// Defaults for zero HomeCacheConfig fields.
const (
	DefaultCacheTTL        = 30 * time.Second
	DefaultCacheMaxEntries = 200_000 // ≈ 30 MB: a key, a cell id and list links each
	DefaultCacheRetryAfter = time.Second
)

// homeSource is where a HomeCache gets answers it does not have: the
// control plane's Client, or a directory store directly.
type homeSource interface {
	Home(ctx context.Context, playerID string) (string, error)
}

var _ homeSource = (*Client)(nil)

// HomeCacheConfig configures a HomeCache. Zero fields take the defaults.
type HomeCacheConfig struct {
	// TTL is how long an answer is served from memory before the source is
	// asked again. It bounds how long a router keeps sending a rehomed
	// player to the old cell (which redirects them).
	TTL time.Duration
	// MaxEntries bounds memory; the least recently used player goes first.
	MaxEntries int
	// RetryAfter is how long, after the source failed, answers are served
	// from memory without asking it: a control plane that hangs must not
	// add its timeout to every resolve.
	RetryAfter time.Duration
	// Metrics receives livecell_control_home_cache_lookups_total; nil keeps
	// them private.
	Metrics prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// HomeCache answers Home from memory and keeps answering known players when
// its source (the control plane) is down: an expired entry is refreshed
// when the source answers and served as it is when the source fails. It
// never caches "unknown player", since a player who just registered must
// resolve at once. It is safe for concurrent use.
//
// This is the router's half of "thin and stateless": it holds no state
// that is not a copy, so a router that restarts only starts cold.
type HomeCache struct {
	src homeSource
	cfg HomeCacheConfig

	lookups   *prometheus.CounterVec // result: hit, miss, refresh, stale, unknown, error
	forgotten prometheus.Counter     // homes dropped because the player moved

	mu        sync.Mutex
	entries   map[string]*list.Element // player → element holding *cacheEntry
	lru       list.List                // front: most recently used
	downUntil time.Time                // serve stale without asking until then
}

type cacheEntry struct {
	player, cell string
	fetched      time.Time
}

// NewHomeCache returns a cache in front of src.
func NewHomeCache(src homeSource, cfg HomeCacheConfig) (*HomeCache, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCacheTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheMaxEntries
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultCacheRetryAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	lookups, err := telemetry.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livecell_control_home_cache_lookups_total",
		Help: "Home lookups by result: hit (fresh in memory), miss and refresh (asked the control plane), stale (control plane down, answered from memory), unknown, error.",
	}, []string{"result"}))
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	forgotten, err := telemetry.Register(cfg.Metrics, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "livecell_control_home_cache_moves_total",
		Help: "Rehomes seen on the control plane's move feed; each drops the player's cached home.",
	}))
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return &HomeCache{src: src, cfg: cfg, lookups: lookups, forgotten: forgotten, entries: map[string]*list.Element{}}, nil
}

// Home returns playerID's home cell.
func (c *HomeCache) Home(ctx context.Context, playerID string) (string, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	e, cached := c.get(playerID)
	var cell string
	var fresh bool
	if cached {
		cell, fresh = e.cell, now.Sub(e.fetched) < c.cfg.TTL
	}
	down := now.Before(c.downUntil)
	c.mu.Unlock()
	switch {
	case fresh:
		c.lookups.WithLabelValues("hit").Inc()
		return cell, nil
	case cached && down:
		c.lookups.WithLabelValues("stale").Inc()
		return cell, nil
	}

	// Asked without the lock: a slow control plane must not serialise
	// every resolve behind one request.
	got, err := c.src.Home(ctx, playerID)
	now = c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.downUntil = time.Time{}
		c.put(playerID, got, now)
		if cached {
			c.lookups.WithLabelValues("refresh").Inc()
		} else {
			c.lookups.WithLabelValues("miss").Inc()
		}
		return got, nil
	case authoritative(err):
		// The control plane answered: the player has no home (any more),
		// or the question was malformed. Forget what we thought we knew.
		c.remove(playerID)
		c.lookups.WithLabelValues("unknown").Inc()
		return "", err
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about the control plane.
		c.lookups.WithLabelValues("error").Inc()
		return "", err
	}
	c.downUntil = now.Add(c.cfg.RetryAfter)
	if cached {
		c.lookups.WithLabelValues("stale").Inc()
		return cell, nil
	}
	c.lookups.WithLabelValues("error").Inc()
	return "", err
}

// Forget drops playerID's cached home, so that the next lookup asks the
// source.
func (c *HomeCache) Forget(playerID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(playerID)
}

// movesSource is the control plane's feed of rehomes; Client implements it.
type movesSource interface {
	Moves(ctx context.Context, after int64) (MovesResponse, error)
}

var _ movesSource = (*Client)(nil)

// FollowMoves forgets the cached home of every player the control plane
// rehomes, within interval of the move, until ctx ends. Without it a
// router would keep sending a rehomed player to the old cell, which
// answers player_moved, for up to the cache's TTL. It starts from the
// latest move (an empty cache has nothing older to forget) and rides out a
// control plane that is down, resuming from its cursor.
func (c *HomeCache) FollowMoves(ctx context.Context, src movesSource, interval time.Duration) {
	const from = -1
	next := int64(from)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			resp, err := src.Moves(ctx, next)
			if err != nil {
				break // next tick
			}
			for _, mv := range resp.Moves {
				c.Forget(mv.PlayerID)
				c.forgotten.Inc()
			}
			next = resp.Next
			if !resp.More || len(resp.Moves) == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Len returns how many players are cached.
func (c *HomeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// authoritative reports whether err is the source's answer rather than its
// failure.
func authoritative(err error) bool {
	switch apierr.CodeOf(err) {
	case apierr.UnknownPlayer, apierr.BadRequest:
		return true
	}
	return false
}

// get returns the entry and marks it used. c.mu must be held.
func (c *HomeCache) get(player string) (cacheEntry, bool) {
	el, ok := c.entries[player]
	if !ok {
		return cacheEntry{}, false
	}
	c.lru.MoveToFront(el)
	return *el.Value.(*cacheEntry), true
}

// put stores an answer, evicting the least recently used entries beyond
// MaxEntries. c.mu must be held.
func (c *HomeCache) put(player, cell string, at time.Time) {
	if el, ok := c.entries[player]; ok {
		e := el.Value.(*cacheEntry)
		e.cell, e.fetched = cell, at
		c.lru.MoveToFront(el)
		return
	}
	c.entries[player] = c.lru.PushFront(&cacheEntry{player: player, cell: cell, fetched: at})
	for len(c.entries) > c.cfg.MaxEntries {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).player)
	}
}

func (c *HomeCache) remove(player string) {
	if el, ok := c.entries[player]; ok {
		c.lru.Remove(el)
		delete(c.entries, player)
	}
}
