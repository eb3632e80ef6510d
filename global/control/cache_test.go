package control_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/global/control"
	"github.com/livecell/livecell/internal/apierr"
)

// fakeSource is a control plane whose answers and health the test sets.
type fakeSource struct {
	mu    sync.Mutex
	homes map[string]string
	down  bool
	calls int
}

func (f *fakeSource) Home(_ context.Context, player string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return "", apierr.New(apierr.Unavailable, "control plane unreachable")
	}
	cell, ok := f.homes[player]
	if !ok {
		return "", apierr.New(apierr.UnknownPlayer, "unknown player")
	}
	return cell, nil
}

func (f *fakeSource) set(fn func(f *fakeSource)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *fakeSource) callCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newCache(t *testing.T, src *fakeSource, cfg control.HomeCacheConfig) (*control.HomeCache, *clock, *prometheus.Registry) {
	t.Helper()
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	cfg.Now, cfg.Metrics = clk.now, reg
	c, err := control.NewHomeCache(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk, reg
}

func wantHome(t *testing.T, c *control.HomeCache, player, want string) {
	t.Helper()
	got, err := c.Home(context.Background(), player)
	if err != nil || got != want {
		t.Fatalf("Home(%s): got %q, %v; want %q", player, got, err, want)
	}
}

func TestCacheServesFreshAnswersFromMemory(t *testing.T) {
	src := &fakeSource{homes: map[string]string{playerA: "eu-west"}}
	c, clk, _ := newCache(t, src, control.HomeCacheConfig{TTL: 10 * time.Second})
	wantHome(t, c, playerA, "eu-west")
	clk.advance(9 * time.Second)
	wantHome(t, c, playerA, "eu-west")
	if got := src.callCount(); got != 1 {
		t.Fatalf("control plane asked %d times within the TTL, want 1", got)
	}
	// A rehome is seen once the entry expires.
	src.set(func(f *fakeSource) { f.homes[playerA] = "us-east" })
	clk.advance(2 * time.Second)
	wantHome(t, c, playerA, "us-east")
	if got := src.callCount(); got != 2 {
		t.Fatalf("control plane asked %d times after the TTL, want 2", got)
	}
}

func TestCacheRidesOutControlPlaneOutage(t *testing.T) {
	src := &fakeSource{homes: map[string]string{playerA: "eu-west"}}
	c, clk, reg := newCache(t, src, control.HomeCacheConfig{TTL: time.Second, RetryAfter: 5 * time.Second})
	wantHome(t, c, playerA, "eu-west")

	src.set(func(f *fakeSource) { f.down = true })
	clk.advance(2 * time.Second) // expired: the cache asks, fails, serves stale
	wantHome(t, c, playerA, "eu-west")
	calls := src.callCount()
	// Within RetryAfter the dead control plane is not asked at all.
	for range 10 {
		wantHome(t, c, playerA, "eu-west")
	}
	if got := src.callCount(); got != calls {
		t.Fatalf("control plane asked %d more times while known down, want 0", got-calls)
	}
	// A player never seen cannot be answered: the error says so.
	if _, err := c.Home(context.Background(), playerB); apierr.CodeOf(err) != apierr.Unavailable {
		t.Fatalf("unknown player while down: got %v, want code unavailable", err)
	}

	src.set(func(f *fakeSource) { f.down = false; f.homes[playerA] = "us-east" })
	clk.advance(6 * time.Second)
	wantHome(t, c, playerA, "us-east")

	if got := counterValue(t, reg, "stale"); got != 11 {
		t.Errorf("stale lookups: got %v, want 11", got)
	}
}

func TestCacheNeverCachesUnknown(t *testing.T) {
	src := &fakeSource{homes: map[string]string{}}
	c, _, _ := newCache(t, src, control.HomeCacheConfig{})
	if _, err := c.Home(context.Background(), playerA); apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Fatalf("Home of an unknown player: got %v, want unknown_player", err)
	}
	// The player registers: the very next resolve must find the home.
	src.set(func(f *fakeSource) { f.homes[playerA] = "eu-west" })
	wantHome(t, c, playerA, "eu-west")
}

func TestCacheForgetsPlayersTheControlPlaneForgot(t *testing.T) {
	src := &fakeSource{homes: map[string]string{playerA: "eu-west"}}
	c, clk, _ := newCache(t, src, control.HomeCacheConfig{TTL: time.Second})
	wantHome(t, c, playerA, "eu-west")
	src.set(func(f *fakeSource) { delete(f.homes, playerA) })
	clk.advance(2 * time.Second)
	if _, err := c.Home(context.Background(), playerA); apierr.CodeOf(err) != apierr.UnknownPlayer {
		t.Fatalf("Home after the entry was deleted: got %v, want unknown_player", err)
	}
	if got := c.Len(); got != 0 {
		t.Fatalf("cache holds %d entries, want 0", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	players := []string{playerA, playerB, "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"}
	src := &fakeSource{homes: map[string]string{players[0]: "eu-west", players[1]: "eu-west", players[2]: "us-east"}}
	c, _, _ := newCache(t, src, control.HomeCacheConfig{MaxEntries: 2})
	wantHome(t, c, players[0], "eu-west")
	wantHome(t, c, players[1], "eu-west")
	wantHome(t, c, players[0], "eu-west") // players[1] is now the least recently used
	wantHome(t, c, players[2], "us-east")
	if got := c.Len(); got != 2 {
		t.Fatalf("cache holds %d entries, want MaxEntries=2", got)
	}
	calls := src.callCount()
	wantHome(t, c, players[0], "eu-west") // kept
	if got := src.callCount(); got != calls {
		t.Fatalf("recently used player was evicted")
	}
	wantHome(t, c, players[1], "eu-west") // evicted: asked again
	if got := src.callCount(); got != calls+1 {
		t.Fatalf("control plane calls: got %d, want %d (least recently used evicted)", got, calls+1)
	}
}

// counterValue reads the lookups counter for one result.
func counterValue(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "livecell_control_home_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// fakeMoves is a control plane's move feed the test appends to.
type fakeMoves struct {
	mu     sync.Mutex
	moves  []control.MoveEntry
	down   bool
	afters []int64
}

func (f *fakeMoves) Moves(_ context.Context, after int64) (control.MovesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, after)
	if f.down {
		return control.MovesResponse{}, apierr.New(apierr.Unavailable, "down")
	}
	head := int64(0)
	if n := len(f.moves); n > 0 {
		head = f.moves[n-1].Seq
	}
	if after < 0 {
		return control.MovesResponse{Moves: []control.MoveEntry{}, Next: head}, nil
	}
	out := control.MovesResponse{Moves: []control.MoveEntry{}, Next: after}
	for _, mv := range f.moves {
		if mv.Seq > after && len(out.Moves) < 2 {
			out.Moves = append(out.Moves, mv)
			out.Next = mv.Seq
		}
	}
	out.More = len(out.Moves) == 2
	return out, nil
}

func (f *fakeMoves) add(player string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves = append(f.moves, control.MoveEntry{Seq: int64(len(f.moves) + 1), PlayerID: player, From: "eu-west", To: "us-east"})
}

// TestFollowMovesForgetsRehomedPlayers: a rehome reaches the cache through
// the move feed well before the TTL, even while the feed was down for a
// while, and only moved players are forgotten.
func TestFollowMovesForgetsRehomedPlayers(t *testing.T) {
	src := &fakeSource{homes: map[string]string{"a": "eu-west", "b": "eu-west", "c": "eu-west", "d": "eu-west"}}
	c, err := control.NewHomeCache(src, control.HomeCacheConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	feed := &fakeMoves{}
	feed.add("old") // before the cache started following: not its business
	for _, p := range []string{"a", "b", "c", "d"} {
		if _, err := c.Home(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.FollowMoves(ctx, feed, 5*time.Millisecond); close(done) }()
	waitFor(t, "the feed's cursor", func() bool {
		feed.mu.Lock()
		defer feed.mu.Unlock()
		return len(feed.afters) > 1
	})
	src.set(func(f *fakeSource) { f.homes["a"], f.homes["b"], f.homes["c"] = "us-east", "us-east", "us-east" })
	feed.mu.Lock()
	feed.down = true
	feed.mu.Unlock()
	feed.add("a")
	feed.add("b")
	feed.add("c") // three moves: two pages
	time.Sleep(20 * time.Millisecond)
	feed.mu.Lock()
	feed.down = false
	feed.mu.Unlock()
	waitFor(t, "the moved players to resolve to their new home", func() bool {
		for _, p := range []string{"a", "b", "c"} {
			if h, _ := c.Home(context.Background(), p); h != "us-east" {
				return false
			}
		}
		return true
	})
	calls := src.callCount()
	if h, _ := c.Home(context.Background(), "d"); h != "eu-west" || src.callCount() != calls {
		t.Errorf("unmoved player: home %q with %d new source calls, want a cache hit", h, src.callCount()-calls)
	}
	cancel()
	<-done
	feed.mu.Lock()
	defer feed.mu.Unlock()
	if feed.afters[0] != -1 {
		t.Errorf("first request asked after %d, want -1 (from now)", feed.afters[0])
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
