package accounts

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Bucket{Burst: 3, Every: 10 * time.Second}, 10)
	steps := []struct {
		advance  time.Duration
		cost     int
		wantOK   bool
		wantWait time.Duration
	}{
		{0, 1, true, 0},
		{0, 1, true, 0},
		{0, 1, true, 0},
		{0, 1, false, 10 * time.Second},
		{4 * time.Second, 1, false, 6 * time.Second},
		{6 * time.Second, 1, true, 0},
		{time.Hour, 3, true, 0}, // refilled, but never above the burst
		{0, 1, false, 10 * time.Second},
		{30 * time.Second, 4, false, 10 * time.Second}, // more than the burst: wait for one more than it holds
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		ok, wait := l.take("k", st.cost, now)
		if ok != st.wantOK || wait != st.wantWait {
			t.Errorf("step %d: take(%v) = %v, %v; want %v, %v", i, st.cost, ok, wait, st.wantOK, st.wantWait)
		}
	}
}

func TestLimiterCharge(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Bucket{Burst: 10, Every: time.Second}, 10)
	// Failed attempts: one token up front, three more after.
	failures := 0
	for {
		ok, _ := l.take("k", 1, now)
		if !ok {
			break
		}
		l.charge("k", 3, now)
		failures++
	}
	if failures != 3 { // 10 → 6 → 2 → 0 (charge stops at empty)
		t.Errorf("failed attempts admitted from a full bucket of 10 at cost 4 = %d, want 3", failures)
	}
	if ok, wait := l.take("k", 1, now); ok || wait != time.Second {
		t.Errorf("take after failures = %v, %v; want false, 1s (charges stop at empty, no debt)", ok, wait)
	}
}

// The limiter never holds more than its maximum of buckets, however many
// keys it sees, and a dropped bucket comes back full.
func TestLimiterBounded(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Bucket{Burst: 1, Every: time.Hour}, 100)
	for i := range 10_000 {
		l.take(fmt.Sprintf("10.0.%d.%d", i/256, i%256), 1, now)
		if n := l.size(); n > 100 {
			t.Fatalf("after %d keys the limiter holds %d buckets, want at most 100", i+1, n)
		}
	}
	if n := l.size(); n != 100 {
		t.Errorf("limiter holds %d buckets, want 100", n)
	}
	// The most recent keys are still limited; the first was dropped.
	if ok, _ := l.take("10.0.39.15", 1, now); ok { // key 9999
		t.Errorf("most recent key admitted again, want it still empty")
	}
	if ok, _ := l.take("10.0.0.0", 1, now); !ok {
		t.Errorf("evicted key refused, want a fresh (full) bucket")
	}
	// Using a key keeps it: touch one old key, add a new one, and the
	// touched key survives.
	l.take("10.0.39.14", 0, now)
	l.take("fresh", 1, now)
	if ok, _ := l.take("10.0.39.14", 1, now); ok {
		t.Errorf("recently used key was evicted, want the least recently used one dropped")
	}
}

func TestSourceKey(t *testing.T) {
	tests := []struct {
		name       string
		remoteAddr string
		xff        []string
		hops       int
		want       string
	}{
		{"ipv4", "203.0.113.7:5123", nil, 0, "203.0.113.7"},
		{"ipv6 grouped by /64", "[2001:db8:1:2:aaaa::1]:443", nil, 0, "2001:db8:1:2::/64"},
		{"ipv6 other host same /64", "[2001:db8:1:2:bbbb::9]:443", nil, 0, "2001:db8:1:2::/64"},
		{"ipv4-mapped ipv6", "[::ffff:203.0.113.7]:80", nil, 0, "203.0.113.7"},
		{"zone dropped", "[fe80::1%eth0]:80", nil, 0, "fe80::/64"},
		{"no port", "203.0.113.7", nil, 0, "203.0.113.7"},
		{"garbage", "@", nil, 0, "unknown"},
		{"xff ignored without trust", "10.0.0.1:1", []string{"198.51.100.1"}, 0, "10.0.0.1"},
		{"one trusted hop", "10.0.0.1:1", []string{"198.51.100.1"}, 1, "198.51.100.1"},
		{"spoofed left entries ignored", "10.0.0.1:1", []string{"1.2.3.4, 5.6.7.8, 198.51.100.1"}, 1, "198.51.100.1"},
		{"two hops", "10.0.0.1:1", []string{"1.2.3.4, 198.51.100.1", "10.0.0.2"}, 2, "198.51.100.1"},
		{"xff with port", "10.0.0.1:1", []string{"198.51.100.1:4444"}, 1, "198.51.100.1"},
		{"xff ipv6", "10.0.0.1:1", []string{"2001:db8::5"}, 1, "2001:db8::/64"},
		{"too few entries", "10.0.0.1:1", []string{"198.51.100.1"}, 2, "10.0.0.1"},
		{"missing header", "10.0.0.1:1", nil, 1, "10.0.0.1"},
		{"unreadable entry", "10.0.0.1:1", []string{"evil'); DROP"}, 1, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.RemoteAddr = tt.remoteAddr
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := sourceKey(r, tt.hops); got != tt.want {
				t.Errorf("sourceKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRateLimitConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  RateLimitConfig
		want string // "" means valid
	}{
		{"defaults", RateLimitConfig{}, ""},
		{"negative hops", RateLimitConfig{TrustedProxyHops: -1}, "TrustedProxyHops"},
		{"zero interval", RateLimitConfig{PerSource: Bucket{Burst: 5}}, "PerSource"},
		{"failure above burst", RateLimitConfig{PerAccount: Bucket{Burst: 2, Every: time.Second}}, "failure cost"},
		{"negative failure cost", RateLimitConfig{FailureCost: -1}, "failure cost"},
		{"negative keys", RateLimitConfig{MaxKeys: -1}, "MaxKeys"},
	}
	for _, tt := range tests {
		err := tt.cfg.setDefaults()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: setDefaults = %v, want error mentioning %q", tt.name, err, tt.want)
		}
	}
}
