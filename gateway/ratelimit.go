package gateway

import "time"

// bucket is a token bucket owned by one session's reader. It is hand-rolled
// rather than x/time/rate's Limiter because it is read and written by a
// single goroutine (no mutex) and, at 16 bytes, fits the per-session memory
// budget; rate and depth live once in the gateway's Config.
type bucket struct {
	tokens float64
	last   time.Duration // monotonic time since the gateway's epoch; 0 = never used
}

// take spends one token at now. When none is left it reports how long until
// one is.
func (b *bucket) take(now time.Duration, rate, burst float64) (ok bool, retryAfter time.Duration) {
	if b.last == 0 {
		b.tokens = burst
	} else if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed.Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}
