package stats

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"
)

// roundTrip sends an Interval through JSON, as a worker's line does.
func roundTrip(t *testing.T, iv Interval) Interval {
	t.Helper()
	b, err := json.Marshal(iv)
	if err != nil {
		t.Fatal(err)
	}
	var out Interval
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func flush(t *testing.T, r *Recorder, shard, index int) Interval {
	t.Helper()
	iv, err := r.Flush(shard, index)
	if err != nil {
		t.Fatal(err)
	}
	return roundTrip(t, iv)
}

func TestRecorderFlushCounts(t *testing.T) {
	r := NewRecorder([]string{"ping", "echo"}, 2)
	ping, echo := r.Op("ping"), r.Op("echo")
	if r.Op("nope") != -1 {
		t.Errorf("Op(nope) = %d, want -1", r.Op("nope"))
	}
	r.Success(ping, 0, 2*time.Millisecond, time.Millisecond)
	r.Success(ping, 0, 4*time.Millisecond, time.Millisecond)
	r.Success(ping, 1, 8*time.Millisecond, time.Millisecond)
	r.Failure(echo, 1, "timeout", "no answer in 10s")
	r.Failure(echo, 1, "timeout", "a later timeout")
	r.Failure(echo, 1, "connection_reset", "read: connection reset by peer")
	r.Push("inventory.updated")
	r.PushesDropped(3)
	r.Event("disconnect:idle_timeout")
	r.SessionUp()
	r.SessionUp()
	r.SessionDown()

	iv := flush(t, r, 4, 7)
	if iv.Shard != 4 || iv.Index != 7 || iv.Active != 1 {
		t.Errorf("interval header: got shard %d index %d active %d, want 4 7 1", iv.Shard, iv.Index, iv.Active)
	}
	got := map[key]OpDelta{}
	for _, d := range iv.Ops {
		got[key{d.Op, d.Phase}] = d
	}
	if len(got) != 3 {
		t.Fatalf("deltas: got %d (%+v), want 3 (ping/0, ping/1, echo/1)", len(got), iv.Ops)
	}
	if d := got[key{"ping", 0}]; d.OK != 2 || d.Latency == "" || d.Service == "" {
		t.Errorf("ping/0: got %+v", d)
	}
	if d := got[key{"echo", 1}]; d.OK != 0 || d.Latency != "" || !reflect.DeepEqual(d.Errors, map[string]int64{"timeout": 2, "connection_reset": 1}) {
		t.Errorf("echo/1: got %+v", d)
	}
	if iv.Pushes["inventory.updated"] != 1 || iv.PushesDropped != 3 || iv.Events["disconnect:idle_timeout"] != 1 {
		t.Errorf("pushes/events: got %+v", iv)
	}
	// The first message of each kind, once per process.
	if want := map[string]string{"echo timeout": "no answer in 10s", "echo connection_reset": "read: connection reset by peer"}; !reflect.DeepEqual(iv.Examples, want) {
		t.Errorf("examples: got %v, want %v", iv.Examples, want)
	}
	r.Failure(echo, 0, "timeout", "yet another")
	if iv := flush(t, r, 4, 9); len(iv.Examples) != 0 {
		t.Errorf("a kind already reported was sent again: %v", iv.Examples)
	}
	a := NewAggregate(5)
	if err := a.Add(iv); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(Interval{Shard: 3, Index: 9, Examples: map[string]string{"echo timeout": "from shard 3"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(Interval{Shard: 2, Index: 9, Examples: map[string]string{"echo timeout": "from shard 2"}}); err != nil {
		t.Fatal(err)
	}
	if got := a.Example("echo", "timeout"); got != "no answer in 10s" {
		t.Errorf("Example = %q, want the first to arrive, from shard 4", got)
	}
	if got := a.Example("echo", "nope"); got != "" {
		t.Errorf("Example of a kind never seen = %q", got)
	}

	// A flush starts afresh; the session gauge is not a delta.
	iv = flush(t, r, 4, 8)
	if len(iv.Ops) != 0 || len(iv.Pushes) != 0 || iv.PushesDropped != 0 || len(iv.Events) != 0 || iv.Active != 1 {
		t.Errorf("second flush: got %+v, want only active=1", iv)
	}
}

// TestAggregateMergesShardsExactly records one distribution split over
// three shards and checks the merged percentiles equal those of a single
// histogram of every value, which averaging per-shard percentiles would
// not give.
func TestAggregateMergesShardsExactly(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	all := NewHistogram()
	recs := []*Recorder{NewRecorder([]string{"echo"}, 1), NewRecorder([]string{"echo"}, 1), NewRecorder([]string{"echo"}, 1)}
	var perShardP99 float64
	for i, r := range recs {
		// Very different shards: the slow one dominates the tail.
		scale := []float64{0.5, 1, 40}[i]
		one := NewHistogram()
		for range 5000 {
			d := time.Duration(rnd.ExpFloat64() * scale * float64(time.Millisecond))
			r.Success(0, 0, d, d/2)
			record(all, d)
			record(one, d)
		}
		perShardP99 += Summarise(one).P99 / 3
	}
	a := NewAggregate(len(recs))
	for tick := range 2 {
		for i, r := range recs {
			if err := a.Add(flush(t, r, i, tick)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tot := a.Total(AllPhases, "echo")
	if tot.OK != 15000 || tot.Latency.TotalCount() != 15000 || tot.Service.TotalCount() != 15000 {
		t.Fatalf("merged counts: ok %d latency %d service %d, want 15000", tot.OK, tot.Latency.TotalCount(), tot.Service.TotalCount())
	}
	if got, want := Summarise(tot.Latency), Summarise(all); got != want {
		t.Errorf("merged percentiles:\n got %+v\nwant %+v", got, want)
	}
	if got := Summarise(tot.Latency).P99; got == perShardP99 {
		t.Errorf("merged p99 %g equals the average of per-shard p99s: the test cannot tell merging from averaging", got)
	}
	points := a.Ready()
	if len(points) != 2 || points[0].Ops["echo"].OK != 15000 || points[1].Ops["echo"].OK != 0 {
		t.Errorf("points: got %+v", points)
	}
}

func TestAggregateGroups(t *testing.T) {
	r := NewRecorder([]string{"ping", "echo", "connect"}, 1)
	for i := range 10 {
		r.Success(0, 0, time.Duration(i+1)*time.Millisecond, time.Millisecond)
		r.Success(1, 0, time.Duration(i+11)*time.Millisecond, time.Millisecond)
		r.Success(2, 0, time.Second, time.Second)
	}
	r.Failure(1, 0, "timeout", "t")
	a := NewAggregate(1)
	a.Group("all", "ping", "echo")
	if err := a.Add(flush(t, r, 0, 0)); err != nil {
		t.Fatal(err)
	}
	p := a.Finish()
	if len(p) != 1 {
		t.Fatalf("points: %+v", p)
	}
	all := p[0].Ops["all"]
	// 20 values 1..20 ms: the group's percentiles are over both members,
	// and the connects outside the group do not count.
	near := func(got, want float64) bool { return got >= want && got <= want*1.001 } // HDR's 3 digits
	if all.OK != 20 || all.Errors != 1 || !near(all.P50, 10) || !near(all.Max, 20) {
		t.Errorf("group: got %+v, want 20 ok, 1 error, p50 10 ms, max 20 ms", all)
	}
}

func TestAggregateWaitsForEveryShard(t *testing.T) {
	a := NewAggregate(2)
	r0, r1 := NewRecorder([]string{"ping"}, 1), NewRecorder([]string{"ping"}, 1)
	r0.SessionUp()
	r1.SessionUp()
	r1.SessionUp()
	add := func(r *Recorder, shard, tick int) {
		t.Helper()
		r.Success(0, 0, time.Millisecond, time.Millisecond)
		if err := a.Add(flush(t, r, shard, tick)); err != nil {
			t.Fatal(err)
		}
	}
	add(r0, 0, 0)
	add(r0, 0, 1)
	add(r0, 0, 2)
	if p := a.Ready(); len(p) != 0 {
		t.Fatalf("ready before shard 1 reported: %+v", p)
	}
	add(r1, 1, 0)
	p := a.Ready()
	if len(p) != 1 || p[0].Index != 0 || p[0].Active != 3 || p[0].Ops["ping"].OK != 2 {
		t.Fatalf("tick 0: got %+v, want active 3 and 2 pings", p)
	}
	// Shard 1 dies: the ticks it will never send stop holding the others.
	a.Done(1)
	p = a.Ready()
	if len(p) != 2 || p[0].Index != 1 || p[1].Index != 2 || p[1].Active != 1 {
		t.Fatalf("after shard 1 is done: got %+v, want ticks 1 and 2 from shard 0 alone", p)
	}
	if err := a.Add(Interval{Shard: 1, Index: 1}); err == nil {
		t.Errorf("a late interval for a closed tick was accepted")
	}
	if err := a.Add(Interval{Shard: 9, Index: 5}); err == nil {
		t.Errorf("an interval from an unknown shard was accepted")
	}
}

func TestAggregateRejectsMalformedIntervalWhole(t *testing.T) {
	a := NewAggregate(1)
	r := NewRecorder([]string{"a", "b"}, 1)
	r.Success(0, 0, time.Millisecond, time.Millisecond)
	r.Success(1, 0, time.Millisecond, time.Millisecond)
	iv := flush(t, r, 0, 0)
	iv.Ops[1].Latency = "not a histogram"
	if err := a.Add(iv); err == nil {
		t.Fatal("a corrupt histogram was accepted")
	}
	if tot := a.Total(AllPhases, "a", "b"); tot.OK != 0 {
		t.Errorf("part of a rejected interval was counted: %d", tot.OK)
	}
	if p := a.Finish(); len(p) != 0 {
		t.Errorf("a rejected interval left a tick: %+v", p)
	}
}

func TestTotalByPhase(t *testing.T) {
	r := NewRecorder([]string{"a", "b"}, 3)
	for ph := range 3 {
		for range ph + 1 {
			r.Success(0, ph, time.Millisecond, time.Millisecond)
		}
		r.Failure(1, ph, "internal", "i")
	}
	a := NewAggregate(1)
	if err := a.Add(flush(t, r, 0, 0)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		phase  int
		ops    []string
		ok     int64
		failed int64
	}{
		{0, []string{"a"}, 1, 0}, {2, []string{"a"}, 3, 0}, {AllPhases, []string{"a"}, 6, 0},
		{1, []string{"a", "b"}, 2, 1}, {AllPhases, []string{"b"}, 0, 3}, {AllPhases, []string{"zzz"}, 0, 0},
	} {
		got := a.Total(tt.phase, tt.ops...)
		if got.OK != tt.ok || got.Failed() != tt.failed {
			t.Errorf("Total(%d, %v): ok %d failed %d, want %d %d", tt.phase, tt.ops, got.OK, got.Failed(), tt.ok, tt.failed)
		}
	}
	if got := a.Ops(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Ops = %v", got)
	}
	// Out-of-range phases land in the nearest one rather than panicking.
	r.Success(0, 99, time.Millisecond, time.Millisecond)
	r.Success(0, -1, time.Millisecond, time.Millisecond)
	if err := a.Add(flush(t, r, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if got := a.Total(2, "a").OK; got != 4 {
		t.Errorf("phase 99 clamped: phase 2 has %d, want 4", got)
	}
}

func TestSummariseClampsAndRounds(t *testing.T) {
	h := NewHistogram()
	if got := Summarise(h); got != (Percentiles{}) {
		t.Errorf("empty: got %+v", got)
	}
	record(h, 0)           // below the range: recorded as 1 µs
	record(h, 2*time.Hour) // above: recorded as an hour
	record(h, 1500*time.Microsecond)
	s := Summarise(h)
	if s.Max < 3_590_000 || s.P50 != 1.5 {
		t.Errorf("got %+v, want max about an hour and p50 1.5 ms", s)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := NewRecorder([]string{"a"}, 1)
	a := NewAggregate(1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				r.Success(0, 0, time.Millisecond, time.Millisecond)
				r.Push("t")
			}
		})
	}
	stop := make(chan struct{})
	flushed := make(chan error, 1)
	go func() {
		tick := 0
		for {
			iv, err := r.Flush(0, tick)
			if err == nil {
				err = a.Add(iv)
			}
			if err != nil {
				flushed <- err
				return
			}
			tick++
			select {
			case <-stop:
				iv, err := r.Flush(0, tick)
				if err == nil {
					err = a.Add(iv)
				}
				flushed <- err
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	pushes, _ := a.Pushes()
	if got := a.Total(AllPhases, "a").OK; got != 8000 || pushes["t"] != 8000 {
		t.Errorf("recorded %d successes and %d pushes across flushes, want 8000 each", got, pushes["t"])
	}
}
