package benchrig

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Commands from the parent and events from a child, one JSON object per
// line.
type command struct {
	Cmd     string  `json:"cmd"`               // rtt, push, counts, stop
	Rate    float64 `json:"rate,omitempty"`    // per second, this child's share
	Seconds float64 `json:"seconds,omitempty"` // phase length
}

type event struct {
	Event string `json:"event"` // ready, connected, rtt, pushed, counts, error

	PID       int                    `json:"pid,omitempty"`
	Addr      string                 `json:"addr,omitempty"`
	Sessions  int                    `json:"sessions,omitempty"`
	Failed    int                    `json:"failed,omitempty"`
	Errors    map[string]int         `json:"errors,omitempty"`
	Sent      int64                  `json:"sent,omitempty"`
	Received  int64                  `json:"received,omitempty"`
	Pushes    int64                  `json:"pushes,omitempty"`
	Seconds   float64                `json:"seconds,omitempty"`
	LastNS    int64                  `json:"last_ns,omitempty"` // Unix ns of the last frame counted
	HeapBytes int64                  `json:"heap_bytes,omitempty"`
	Hist      *hdrhistogram.Snapshot `json:"hist,omitempty"`
	Message   string                 `json:"message,omitempty"`
}

// replyGrace is how long a round-trip phase waits for late answers.
const replyGrace = 2 * time.Second

// newHist records latencies in microseconds, 1 µs to 60 s, 3 significant
// digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// emitter writes events; safe for concurrent use.
type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *emitter) emit(ev event) {
	b, _ := json.Marshal(ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, "%s\n", b)
}

// readCommands decodes commands from r until it ends.
func readCommands(r io.Reader, handle func(command)) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("benchrig: bad command %q: %w", sc.Text(), err)
		}
		handle(c)
	}
	return sc.Err()
}
