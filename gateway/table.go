package gateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/internal/protocol"
)

// table holds the gateway's connections in numbered slots and indexes the
// authenticated ones by player. The player index maps to slot numbers, not
// pointers, so the garbage collector does not trace it and an event-loop
// engine can later key the same slots by file descriptor.
type table struct {
	mu       sync.RWMutex
	slots    []*conn // nil when free
	free     []int32
	live     int
	byPlayer map[string]int32
	closed   bool          // Stop ran: no new connections
	empty    chan struct{} // closed when live reaches 0; nil until someone waits
	gauge    prometheus.Gauge
}

func newTable(gauge prometheus.Gauge) *table {
	return &table{byPlayer: map[string]int32{}, gauge: gauge}
}

// add gives c a slot. It fails when the table holds max connections
// (max 0: unlimited) or the gateway has stopped.
func (t *table) add(c *conn, max int) (ok, full bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false, false
	}
	if max > 0 && t.live >= max {
		return false, true
	}
	if n := len(t.free); n > 0 {
		c.slot = t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[c.slot] = c
	} else {
		c.slot = int32(len(t.slots))
		t.slots = append(t.slots, c)
	}
	t.live++
	return true, false
}

// bind names c's session, indexes it under its player and queues welcome,
// returning the session it replaces. Indexing and queueing happen under
// one lock so that the Welcome is the session's first frame (no push can
// overtake it) and a client holding its Welcome is reachable by Push. It
// refuses a connection that is already closing, so a session closed while
// its Hello was being checked never enters the index. The names are set
// under the lock because remove reads them.
func (t *table) bind(c *conn, player, sessionID string, welcome protocol.Frame) (old *conn, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closing.Load() {
		return nil, false
	}
	c.player, c.sessionID = player, sessionID
	if ok, _ := c.enqueue(welcome, true); !ok {
		return nil, false
	}
	if s, found := t.byPlayer[c.player]; found {
		old = t.slots[s]
	}
	t.byPlayer[c.player] = c.slot
	t.gauge.Set(float64(len(t.byPlayer)))
	return old, true
}

// remove frees c's slot and its player entry (unless a newer session took
// it). closeWith calls it exactly once per connection.
func (t *table) remove(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.slot < 0 || int(c.slot) >= len(t.slots) || t.slots[c.slot] != c {
		return
	}
	if c.player != "" && t.byPlayer[c.player] == c.slot {
		delete(t.byPlayer, c.player)
		t.gauge.Set(float64(len(t.byPlayer)))
	}
	t.slots[c.slot] = nil
	t.free = append(t.free, c.slot)
	t.live--
	if t.live == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
}

func (t *table) lookup(player string) *conn {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s, ok := t.byPlayer[player]; ok {
		return t.slots[s]
	}
	return nil
}

func (t *table) sessions() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byPlayer)
}

// authenticated returns a snapshot of the sessions in the player index.
func (t *table) authenticated() []*conn {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*conn, 0, len(t.byPlayer))
	for _, s := range t.byPlayer {
		out = append(out, t.slots[s])
	}
	return out
}

// all returns a snapshot of every connection; with stop set, the table
// also refuses new ones from then on.
func (t *table) all(stop bool) []*conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if stop {
		t.closed = true
	}
	out := make([]*conn, 0, t.live)
	for _, c := range t.slots {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// waitEmpty returns a channel closed once no connection is left.
func (t *table) waitEmpty() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.empty == nil {
		t.empty = make(chan struct{})
		if t.live == 0 {
			close(t.empty)
			ch := t.empty
			t.empty = nil
			return ch
		}
	}
	return t.empty
}
