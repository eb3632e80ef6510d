package stats

import (
	"fmt"
	"maps"
	"slices"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// AllPhases selects every phase in Aggregate.Total.
const AllPhases = -1

// Aggregate merges the Intervals of every shard of a run into totals per
// operation and phase and into a time series with one Point per tick. It
// is not safe for concurrent use: one goroutine of the parent feeds it.
type Aggregate struct {
	groups   map[string][]string // group name → member operations
	totals   map[key]*Total
	shards   map[int]*shard
	pending  map[int]*window
	next     int // the next tick to finalise
	pushes   map[string]int64
	dropped  int64
	events   map[string]int64
	examples map[string]string
}

type key struct {
	op    string
	phase int
}

type shard struct {
	last int // highest tick index received
	done bool
}

// window is one tick being assembled from the shards' Intervals.
type window struct {
	active int64
	ops    map[string]*windowOp
	pushes int64
}

type windowOp struct {
	ok, errs int64
	latency  *hdrhistogram.Histogram
}

// Total is everything recorded for an operation (in a phase, or in all).
type Total struct {
	OK      int64
	Errors  map[string]int64 // by error kind
	Latency *hdrhistogram.Histogram
	Service *hdrhistogram.Histogram
}

// Failed is the number of failures of every kind.
func (t Total) Failed() int64 {
	var n int64
	for _, c := range t.Errors {
		n += c
	}
	return n
}

// Point is one tick of the time series, merged over every shard.
type Point struct {
	Index  int                `json:"i"`
	Active int64              `json:"active"` // sessions open at the end of the tick
	Ops    map[string]PointOp `json:"ops,omitempty"`
	Pushes int64              `json:"pushes,omitempty"`
}

// PointOp is one operation during one tick.
type PointOp struct {
	OK     int64   `json:"ok"`
	Errors int64   `json:"errors,omitempty"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// NewAggregate returns an Aggregate expecting Intervals from shards 0 to
// shards-1.
func NewAggregate(shards int) *Aggregate {
	a := &Aggregate{
		totals: map[key]*Total{}, shards: map[int]*shard{}, pending: map[int]*window{},
		pushes: map[string]int64{}, events: map[string]int64{}, examples: map[string]string{},
	}
	for i := range shards {
		a.shards[i] = &shard{last: -1}
	}
	return a
}

// Group makes the time series carry, under name, the members taken
// together: a tick's percentiles over several operations cannot be
// computed from each one's.
func (a *Aggregate) Group(name string, members ...string) {
	if a.groups == nil {
		a.groups = map[string][]string{}
	}
	a.groups[name] = append([]string(nil), members...)
}

// Add merges one Interval. A malformed one is rejected whole: nothing of it
// is counted.
func (a *Aggregate) Add(iv Interval) error {
	sh, ok := a.shards[iv.Shard]
	if !ok {
		return fmt.Errorf("stats: interval from unknown shard %d", iv.Shard)
	}
	if iv.Index < a.next {
		return fmt.Errorf("stats: shard %d sent tick %d after tick %d was closed", iv.Shard, iv.Index, a.next-1)
	}
	type decoded struct {
		d                OpDelta
		latency, service *hdrhistogram.Histogram
	}
	ds := make([]decoded, 0, len(iv.Ops))
	for _, d := range iv.Ops {
		x := decoded{d: d}
		if d.OK > 0 {
			var err error
			if x.latency, err = decode(d.Latency); err != nil {
				return fmt.Errorf("stats: shard %d tick %d op %s latency: %w", iv.Shard, iv.Index, d.Op, err)
			}
			if x.service, err = decode(d.Service); err != nil {
				return fmt.Errorf("stats: shard %d tick %d op %s service: %w", iv.Shard, iv.Index, d.Op, err)
			}
		}
		ds = append(ds, x)
	}

	w := a.pending[iv.Index]
	if w == nil {
		w = &window{ops: map[string]*windowOp{}}
		a.pending[iv.Index] = w
	}
	w.active += iv.Active
	for _, x := range ds {
		t := a.total(key{x.d.Op, x.d.Phase})
		t.OK += x.d.OK
		for k, n := range x.d.Errors {
			t.Errors[k] += n
		}
		if x.latency != nil {
			t.Latency.Merge(x.latency)
			t.Service.Merge(x.service)
		}
		w.add(x.d.Op, x.d, x.latency)
		for g, members := range a.groups {
			if slices.Contains(members, x.d.Op) {
				w.add(g, x.d, x.latency)
			}
		}
	}
	for topic, n := range iv.Pushes {
		a.pushes[topic] += n
		w.pushes += n
	}
	a.dropped += iv.PushesDropped
	for e, n := range iv.Events {
		a.events[e] += n
	}
	for k, msg := range iv.Examples {
		if _, ok := a.examples[k]; !ok {
			a.examples[k] = msg
		}
	}
	sh.last = max(sh.last, iv.Index)
	return nil
}

// add counts a delta of an operation (or group) into the window.
func (w *window) add(name string, d OpDelta, latency *hdrhistogram.Histogram) {
	wo := w.ops[name]
	if wo == nil {
		wo = &windowOp{}
		w.ops[name] = wo
	}
	wo.ok += d.OK
	for _, n := range d.Errors {
		wo.errs += n
	}
	if latency != nil {
		if wo.latency == nil {
			wo.latency = NewHistogram()
		}
		wo.latency.Merge(latency)
	}
}

func decode(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return nil, fmt.Errorf("missing histogram")
	}
	return hdrhistogram.Decode([]byte(s))
}

func (a *Aggregate) total(k key) *Total {
	t := a.totals[k]
	if t == nil {
		t = &Total{Errors: map[string]int64{}, Latency: NewHistogram(), Service: NewHistogram()}
		a.totals[k] = t
	}
	return t
}

// Done marks a shard finished (or dead): ticks no longer wait for it.
func (a *Aggregate) Done(shard int) {
	if sh, ok := a.shards[shard]; ok {
		sh.done = true
	}
}

// Ready returns the ticks every running shard has reported, in order, and
// forgets their windows.
func (a *Aggregate) Ready() []Point {
	upTo := -1
	first := true
	for _, sh := range a.shards {
		if sh.done {
			continue
		}
		if first || sh.last < upTo {
			upTo, first = sh.last, false
		}
	}
	if first { // every shard is done
		return a.Finish()
	}
	return a.finalise(upTo)
}

// Finish returns every tick still pending, in order.
func (a *Aggregate) Finish() []Point {
	last := a.next - 1
	for i := range a.pending {
		last = max(last, i)
	}
	return a.finalise(last)
}

func (a *Aggregate) finalise(upTo int) []Point {
	var out []Point
	for ; a.next <= upTo; a.next++ {
		w := a.pending[a.next]
		delete(a.pending, a.next)
		p := Point{Index: a.next}
		if w != nil {
			p.Active, p.Pushes = w.active, w.pushes
			if len(w.ops) > 0 {
				p.Ops = make(map[string]PointOp, len(w.ops))
			}
			for name, wo := range w.ops {
				po := PointOp{OK: wo.ok, Errors: wo.errs}
				if wo.latency != nil {
					s := Summarise(wo.latency)
					po.P50, po.P90, po.P99, po.Max = s.P50, s.P90, s.P99, s.Max
				}
				p.Ops[name] = po
			}
		}
		out = append(out, p)
	}
	return out
}

// Total returns what was recorded for the named operations (merged) in a
// phase, or in every phase with AllPhases.
func (a *Aggregate) Total(phase int, ops ...string) Total {
	out := Total{Errors: map[string]int64{}, Latency: NewHistogram(), Service: NewHistogram()}
	for k, t := range a.totals {
		if phase != AllPhases && k.phase != phase {
			continue
		}
		match := false
		for _, o := range ops {
			match = match || o == k.op
		}
		if !match {
			continue
		}
		out.OK += t.OK
		for e, n := range t.Errors {
			out.Errors[e] += n
		}
		out.Latency.Merge(t.Latency)
		out.Service.Merge(t.Service)
	}
	return out
}

// Ops returns the names of every operation recorded, sorted.
func (a *Aggregate) Ops() []string {
	seen := map[string]bool{}
	for k := range a.totals {
		seen[k.op] = true
	}
	return sortedKeys(seen)
}

// Pushes returns the pushes received by topic, and how many the clients
// dropped.
func (a *Aggregate) Pushes() (map[string]int64, int64) { return maps.Clone(a.pushes), a.dropped }

// Example returns the first message recorded for a kind of failure of an
// operation, "" when there is none.
func (a *Aggregate) Example(op, kind string) string { return a.examples[ExampleKey(op, kind)] }

// Events returns the session events counted, such as disconnects by cause.
func (a *Aggregate) Events() map[string]int64 { return maps.Clone(a.events) }
