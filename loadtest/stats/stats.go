// Package stats records what simulated players see and merges it across
// load-tester processes. Each process keeps a Recorder: per operation and
// phase, a count of successes, failures by error kind, and HDR histograms
// of latency and service time. Every tick the Recorder is flushed into an
// Interval, a self-contained delta that travels as one JSON line from a
// worker process to the parent; the parent's Aggregate merges Intervals
// from every shard into run totals and a per-tick time series.
//
// Histograms cross process boundaries in HdrHistogram's V2 compressed
// encoding and are merged bucket by bucket, so percentiles of the whole run
// are exact to the histogram's precision however many processes recorded
// them; averaging per-process percentiles would not be.
package stats

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: microseconds from 1 µs to one hour at 3 significant
// digits (0.1% error), about 180 KB per histogram in memory and a few
// hundred bytes encoded when sparse.
const (
	lowestUS  = 1
	highestUS = int64(time.Hour / time.Microsecond)
	sigFigs   = 3
)

// NewHistogram returns an empty latency histogram in microseconds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(lowestUS, highestUS, sigFigs)
}

// record adds d to h, clamped to the histogram's range: a latency beyond an
// hour is recorded as an hour rather than lost.
func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := min(max(d.Microseconds(), lowestUS), highestUS)
	_ = h.RecordValue(us) // in range by construction
}

// Recorder collects one process's samples. Operations and phases are fixed
// when it is made, so the hot path indexes a slice instead of a map; each
// series has its own lock, so players recording different operations do
// not contend.
type Recorder struct {
	ops    []string
	phases int
	series []series // ops × phases

	active  atomic.Int64
	mu      sync.Mutex // guards the fields below
	pushes  map[string]int64
	dropped int64
	events  map[string]int64
	// examples holds the first message of each kind of failure of each
	// operation: kinds say how often, a message says what actually went
	// wrong. seen keeps a process from sending the same kind twice.
	examples map[string]string
	seen     map[string]bool
}

type series struct {
	mu       sync.Mutex
	ok       int64
	errors   map[string]int64
	latency  *hdrhistogram.Histogram // from the intended send time
	service  *hdrhistogram.Histogram // from the actual send time
	recorded bool                    // anything since the last flush
}

// NewRecorder returns a Recorder for the named operations over phases
// phases.
func NewRecorder(ops []string, phases int) *Recorder {
	r := &Recorder{
		ops: append([]string(nil), ops...), phases: max(phases, 1),
		pushes: map[string]int64{}, events: map[string]int64{}, examples: map[string]string{}, seen: map[string]bool{},
	}
	r.series = make([]series, len(r.ops)*r.phases)
	return r
}

// Op returns the index of operation name, for Success and Failure; -1 when
// the Recorder does not know it.
func (r *Recorder) Op(name string) int {
	for i, o := range r.ops {
		if o == name {
			return i
		}
	}
	return -1
}

func (r *Recorder) at(op, phase int) *series {
	phase = min(max(phase, 0), r.phases-1)
	return &r.series[op*r.phases+phase]
}

// Success records a completed operation: latency from when it was meant to
// start (the scheduled time, for open-loop load), service from when it
// actually started.
func (r *Recorder) Success(op, phase int, latency, service time.Duration) {
	s := r.at(op, phase)
	s.mu.Lock()
	if s.latency == nil {
		s.latency, s.service = NewHistogram(), NewHistogram()
	}
	s.ok++
	record(s.latency, latency)
	record(s.service, service)
	s.recorded = true
	s.mu.Unlock()
}

// Failure records a failed operation by the kind of error (an apierr code
// or a connection error kind), keeping msg when it is the first of its
// kind for the operation.
func (r *Recorder) Failure(op, phase int, kind, msg string) {
	s := r.at(op, phase)
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[kind]++
	s.recorded = true
	s.mu.Unlock()
	k := ExampleKey(r.ops[op], kind)
	r.mu.Lock()
	if !r.seen[k] {
		r.seen[k] = true
		if len(msg) > maxExample {
			msg = msg[:maxExample] + "…"
		}
		r.examples[k] = msg
	}
	r.mu.Unlock()
}

// maxExample bounds an error message kept as an example.
const maxExample = 300

// ExampleKey names the example of a kind of failure of an operation.
func ExampleKey(op, kind string) string { return op + " " + kind }

// Push records a server push received, by topic.
func (r *Recorder) Push(topic string) {
	r.mu.Lock()
	r.pushes[topic]++
	r.mu.Unlock()
}

// PushesDropped records pushes the client dropped (a full buffer).
func (r *Recorder) PushesDropped(n int64) {
	if n == 0 {
		return
	}
	r.mu.Lock()
	r.dropped += n
	r.mu.Unlock()
}

// Event counts something that happened to a session, such as
// "disconnect:idle_timeout".
func (r *Recorder) Event(name string) {
	r.mu.Lock()
	r.events[name]++
	r.mu.Unlock()
}

// SessionUp and SessionDown track the sessions open right now.
func (r *Recorder) SessionUp()   { r.active.Add(1) }
func (r *Recorder) SessionDown() { r.active.Add(-1) }

// Active returns the sessions open right now.
func (r *Recorder) Active() int64 { return r.active.Load() }

// Flush returns everything recorded since the last Flush as interval index
// of shard, and starts afresh.
func (r *Recorder) Flush(shard, index int) (Interval, error) {
	iv := Interval{Shard: shard, Index: index, Active: r.active.Load()}
	for op := range r.ops {
		for ph := range r.phases {
			s := r.at(op, ph)
			s.mu.Lock()
			if !s.recorded {
				// Idle for a whole tick (a phase that ended): give its
				// histograms back rather than hold them for the run.
				s.latency, s.service = nil, nil
				s.mu.Unlock()
				continue
			}
			d := OpDelta{Op: r.ops[op], Phase: ph, OK: s.ok, Errors: s.errors}
			var err error
			if s.ok > 0 {
				if d.Latency, err = encode(s.latency); err == nil {
					d.Service, err = encode(s.service)
				}
				s.latency.Reset()
				s.service.Reset()
			}
			s.ok, s.errors, s.recorded = 0, nil, false
			s.mu.Unlock()
			if err != nil {
				return iv, fmt.Errorf("stats: encode %s: %w", r.ops[op], err)
			}
			iv.Ops = append(iv.Ops, d)
		}
	}
	r.mu.Lock()
	if len(r.pushes) > 0 {
		iv.Pushes, r.pushes = r.pushes, map[string]int64{}
	}
	if len(r.events) > 0 {
		iv.Events, r.events = r.events, map[string]int64{}
	}
	if len(r.examples) > 0 {
		iv.Examples, r.examples = r.examples, map[string]string{}
	}
	iv.PushesDropped, r.dropped = r.dropped, 0
	r.mu.Unlock()
	return iv, nil
}

func encode(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	return string(b), err
}

// Interval is what one shard recorded during one tick: deltas, except
// Active, the sessions open at its end. It is the line a worker process
// writes to its parent.
type Interval struct {
	Shard         int              `json:"shard"`
	Index         int              `json:"i"`
	Active        int64            `json:"active"`
	Ops           []OpDelta        `json:"ops,omitempty"`
	Pushes        map[string]int64 `json:"pushes,omitempty"`
	PushesDropped int64            `json:"pushes_dropped,omitempty"`
	Events        map[string]int64 `json:"events,omitempty"`
	// Examples are first error messages by ExampleKey.
	Examples map[string]string `json:"examples,omitempty"`
}

// OpDelta is one operation in one phase during one tick.
type OpDelta struct {
	Op     string           `json:"op"`
	Phase  int              `json:"phase"`
	OK     int64            `json:"ok"`
	Errors map[string]int64 `json:"errors,omitempty"`
	// Latency and Service are HdrHistogram V2 compressed, base64: the
	// form every HdrHistogram implementation reads.
	Latency string `json:"latency,omitempty"`
	Service string `json:"service,omitempty"`
}

// Percentiles summarise a histogram, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Summarise returns h's percentiles; all zero for an empty histogram.
func Summarise(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 95, 99, 99.9})
	return Percentiles{
		P50: ms(q[50]), P90: ms(q[90]), P95: ms(q[95]), P99: ms(q[99]), P999: ms(q[99.9]),
		Max: ms(h.Max()), Mean: round3(h.Mean() / 1000),
	}
}

func ms(us int64) float64 { return round3(float64(us) / 1000) }

// round3 keeps microsecond resolution in millisecond figures.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
