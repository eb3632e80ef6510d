package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/livecell/livecell/loadtest/report"
	"github.com/livecell/livecell/loadtest/scenario"
	"github.com/livecell/livecell/loadtest/stats"
	"github.com/livecell/livecell/loadtest/usage"
)

// startLead is the time between every shard being ready and the common
// start: enough for the start line to reach every worker.
const startLead = 250 * time.Millisecond

// coordinate prepares every shard, starts them at one instant, merges what
// they report while sampling CPU and memory, and builds the report.
func coordinate(ctx context.Context, sc *scenario.Scenario, cfg Config, specs []shardSpec, shards []shardRunner, log *slog.Logger) (*report.Report, error) {
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, s := range shards {
		wg.Go(func() { errs[i] = s.prepare(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, s := range shards {
			if errs[i] == nil {
				s.abort()
			}
		}
		return nil, err
	}

	tick := specs[0].Tick
	pids := func() []int {
		out := []int{os.Getpid()}
		for _, s := range shards {
			if p := s.pid(); p != 0 && p != os.Getpid() {
				out = append(out, p)
			}
		}
		return out
	}
	sampler := usage.NewSampler(append(append([]usage.Target(nil), cfg.Usage...), usage.PIDTarget("loadtest", pids)), tick)
	sctx, stopSampling := context.WithCancel(context.WithoutCancel(ctx))
	sampled := make(chan struct{})
	go func() { sampler.Run(sctx); close(sampled) }()

	start := time.Now().Add(startLead)
	events := make(chan shardEvent, 4*len(shards))
	for _, s := range shards {
		go s.run(ctx, start, events)
	}

	_, mix := opsFor(sc)
	agg := stats.NewAggregate(len(shards))
	if len(mix) > 0 {
		agg.Group(opAll, mix...)
	}
	var (
		points []stats.Point
		notes  []string
		procs  = make([]report.Process, len(shards))
	)
	for i, s := range shards {
		procs[i] = s.info()
	}
	progress := func(ps []stats.Point) {
		points = append(points, ps...)
		if cfg.Progress == nil {
			return
		}
		for _, p := range ps {
			cfg.Progress(progressOf(sc, tick, p))
		}
	}
	for remaining := len(shards); remaining > 0; {
		ev := <-events
		if ev.iv != nil {
			if err := agg.Add(*ev.iv); err != nil {
				notes = append(notes, fmt.Sprintf("an interval of process %d was dropped: %v", ev.shard, err))
				log.Warn("loadtest: interval dropped", "shard", ev.shard, "error", err)
			}
		}
		if ev.done {
			remaining--
			agg.Done(ev.shard)
			procs[ev.shard] = shards[ev.shard].info()
			if ev.err != nil {
				procs[ev.shard].Error = ev.err.Error()
				log.Error("loadtest: process failed", "shard", ev.shard, "error", ev.err)
			}
		}
		progress(agg.Ready())
	}
	progress(agg.Finish())
	ended := time.Now()
	stopSampling()
	<-sampled
	if ctx.Err() != nil {
		notes = append(notes, "the run was stopped before the end of its schedule")
	}
	return build(sc, cfg, start, ended, tick, agg, points, sampler.Series(), procs, notes), nil
}

// progressOf summarises one tick for Config.Progress.
func progressOf(sc *scenario.Scenario, tick time.Duration, p stats.Point) Progress {
	elapsed := time.Duration(p.Index+1) * tick
	all := p.Ops[opAll]
	var errs int64
	for name, po := range p.Ops {
		if name != opAll {
			errs += po.Errors
		}
	}
	return Progress{
		Elapsed: elapsed, Total: sc.Duration(), Phase: sc.Phases[sc.PhaseAt(elapsed-tick/2)].Name,
		Sessions: p.Active, Wanted: int(sc.PlayersAt(elapsed)),
		ReqPerSec: float64(all.OK) / tick.Seconds(), P50MS: all.P50, P99MS: all.P99,
		Errors: errs, PushPerS: float64(p.Pushes) / tick.Seconds(),
	}
}

// build assembles the report.
func build(sc *scenario.Scenario, cfg Config, start, ended time.Time, tick time.Duration, agg *stats.Aggregate,
	points []stats.Point, use []usage.Series, procs []report.Process, notes []string) *report.Report {
	session, mix := opsFor(sc)
	mode := "sessions-only"
	switch {
	case sc.Requests.OpenLoop():
		mode = "open-loop"
	case !sc.Requests.Think.IsZero():
		mode = "closed-loop"
	}
	r := &report.Report{
		Scenario: sc.Name, File: cfg.ScenarioPath, Description: sc.Summary(), Mode: mode,
		Started: start.UTC(), DurationS: round(ended.Sub(start).Seconds(), 3), TickS: tick.Seconds(),
		Players: sc.Players, Processes: procs, Series: points, Usage: use, Notes: notes,
	}
	opcodes := map[string]string{}
	for _, op := range sc.Requests.Mix {
		opcodes[op.Name] = op.Opcode.Hex()
	}
	opsOf := func(phase int, seconds float64) []report.Op {
		var out []report.Op
		for _, name := range session {
			if t := agg.Total(phase, name); t.OK+t.Failed() > 0 {
				out = append(out, withExamples(opReport(name, report.KindSession, t, seconds, false), agg))
			}
		}
		for _, name := range mix {
			o := opReport(name, report.KindRequest, agg.Total(phase, name), seconds, sc.Requests.OpenLoop())
			o.Opcode = opcodes[name]
			out = append(out, withExamples(o, agg))
		}
		if len(mix) > 0 {
			out = append(out, opReport(opAll, report.KindTotal, agg.Total(phase, mix...), seconds, sc.Requests.OpenLoop()))
		}
		return out
	}
	// Rates are over the time that ran: all of the schedule, or up to a
	// stop.
	ran := min(ended.Sub(start), sc.Duration())
	r.Ops = opsOf(stats.AllPhases, ran.Seconds())

	var at time.Duration
	summary := -1
	for i, ph := range sc.Phases {
		phaseRan := max(min(at+ph.Duration, ran)-at, 0)
		r.Phases = append(r.Phases, report.Phase{
			Name: ph.Name, StartS: at.Seconds(), EndS: (at + ph.Duration).Seconds(), From: ph.From, To: ph.To,
			Ops: opsOf(i, phaseRan.Seconds()),
		})
		if ph.Name == summaryPhase {
			summary = i
		}
		at += ph.Duration
	}

	for _, p := range points {
		r.Sessions.Peak = max(r.Sessions.Peak, p.Active)
	}
	if n := len(points); n > 0 {
		r.Sessions.End = points[n-1].Active
	}
	r.Sessions.Events = agg.Events()
	byTopic, dropped := agg.Pushes()
	for _, n := range byTopic {
		r.Pushes.Total += n
	}
	r.Pushes.ByTopic, r.Pushes.Dropped = byTopic, dropped
	if ran > 0 {
		r.Pushes.PerSec = round(float64(r.Pushes.Total)/ran.Seconds(), 3)
	}

	// Headline figures: from the steady phase when there is one.
	from, to := 0.0, ran.Seconds()
	phase := stats.AllPhases
	if summary >= 0 {
		phase = summary
		from, to = r.Phases[summary].StartS, min(r.Phases[summary].EndS, ran.Seconds())
		r.Summary.Phase = summaryPhase
	}
	var pushes int64
	for _, p := range points {
		if t := float64(p.Index+1) * tick.Seconds(); t > from && t <= to+tick.Seconds()/2 {
			r.Summary.Sessions = max(r.Summary.Sessions, p.Active)
			pushes += p.Pushes
		}
	}
	span := to - from
	if span > 0 {
		r.Summary.PushPerSec = round(float64(pushes)/span, 3)
	}
	if len(mix) > 0 {
		t := agg.Total(phase, mix...)
		lat := stats.Summarise(t.Latency)
		if span > 0 {
			r.Summary.RTTPerSec = round(float64(t.OK)/span, 3)
		}
		r.Summary.P50MS, r.Summary.P99MS = lat.P50, lat.P99
		if n := t.OK + t.Failed(); n > 0 {
			r.Summary.ErrorRate = round(float64(t.Failed())/float64(n), 6)
		}
	}
	for _, o := range r.Ops {
		if o.Kind != report.KindTotal {
			r.Summary.Errors += o.Failed
		}
	}
	return r
}

// withExamples adds the first message of each kind of error of o.
func withExamples(o report.Op, agg *stats.Aggregate) report.Op {
	for kind := range o.Errors {
		if ex := agg.Example(o.Name, kind); ex != "" {
			if o.ErrorExamples == nil {
				o.ErrorExamples = map[string]string{}
			}
			o.ErrorExamples[kind] = ex
		}
	}
	return o
}

func opReport(name, kind string, t stats.Total, seconds float64, openLoop bool) report.Op {
	o := report.Op{
		Name: name, Kind: kind, OK: t.OK, Failed: t.Failed(), Latency: stats.Summarise(t.Latency),
	}
	o.Count = o.OK + o.Failed
	if len(t.Errors) > 0 {
		o.Errors = t.Errors
	}
	if seconds > 0 {
		o.PerSec = round(float64(t.OK)/seconds, 3)
	}
	if openLoop && kind != report.KindSession && t.OK > 0 {
		s := stats.Summarise(t.Service)
		o.Service = &s
	}
	return o
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
