package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livecell/livecell/global/placement"
	"github.com/livecell/livecell/internal/telemetry"
)

// benchRouter is a probed router whose map-backed directory homes n players
// across the active cells, with a full override table loaded (none of its
// entries is one of the n players): the production shape, where every
// resolve of a known player first looks the player up in the table.
func benchRouter(b *testing.B, n int) (*Router, []string) {
	b.Helper()
	cells := testCells(b)
	dir := &fakeDir{homes: make(map[string]string, n)}
	players := make([]string, n)
	for i := range players {
		players[i] = uuid.NewString()
		dir.homes[players[i]] = cells.Cells[i%3].ID
	}
	overrides := make(map[string]Override, 10_000)
	for range 10_000 {
		overrides[uuid.NewString()] = Override{Kind: OverridePin, Cell: "eu-north"}
	}
	routing := &fakeRouting{rt: Routing{Overrides: overrides}}
	r, err := New(Config{Cells: cells}, Deps{Homes: dir, Status: newStatus(cells), Routing: routing, Metrics: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	r.probeRound(context.Background())
	r.routingRound(context.Background())
	return r, players
}

// latencies collects a sample of per-operation latencies from parallel
// goroutines and reports their P99, with the CPU time per operation and the
// throughput per core it implies. Only one operation in sampleEvery is
// timed, so the clock reads barely change ns/op.
//
// resolves/s/core comes from process CPU time, not wall time, so that it
// stays meaningful on a machine shared with other work; p99-ns is wall time
// and includes any time the goroutine waited for a CPU.
type latencies struct {
	mu       sync.Mutex
	all      []time.Duration
	cpuStart time.Duration
}

func (l *latencies) start(b *testing.B) {
	b.ReportAllocs()
	l.cpuStart = processCPU()
	b.ResetTimer()
}

const sampleEvery = 8

func (l *latencies) add(s []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, s...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	b.StopTimer()
	if cpu := processCPU() - l.cpuStart; cpu > 0 && l.cpuStart > 0 {
		perOp := float64(cpu.Nanoseconds()) / float64(b.N)
		b.ReportMetric(perOp, "cpu-ns/op")
		b.ReportMetric(1e9/perOp, "resolves/s/core")
	}
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkResolve measures an in-process Resolve of a known player, the
// path the edge takes. Target: ≥ 50,000 resolves/s per core, P99 < 1 ms.
func BenchmarkResolve(b *testing.B) {
	r, players := benchRouter(b, 1024)
	ctx := context.Background()
	var lat latencies
	lat.start(b)
	b.RunParallel(func(pb *testing.PB) {
		sample := make([]time.Duration, 0, 1024)
		i := 0
		for pb.Next() {
			req := ResolveRequest{PlayerID: players[i%len(players)]}
			var start time.Time
			if i%sampleEvery == 0 {
				start = time.Now()
			}
			res, err := r.Resolve(ctx, req)
			if i%sampleEvery == 0 {
				sample = append(sample, time.Since(start))
			}
			if err != nil || res.Placement != PlacementExisting {
				b.Errorf("got %+v, %v; want an existing home", res, err)
				return
			}
			i++
		}
		lat.add(sample)
	})
	lat.report(b)
}

// BenchmarkResolveNew measures placing a new player by the client's RTT
// report (four regions) against the cells' load: the placement rule on the
// router's cached view.
func BenchmarkResolveNew(b *testing.B) {
	r, _ := benchRouter(b, 1)
	rtts, err := placement.ParseRTTs("eu-west:23.5,europe-north1:31,us-east1:88,asia-southeast1:190")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var lat latencies
	lat.start(b)
	b.RunParallel(func(pb *testing.PB) {
		sample := make([]time.Duration, 0, 1024)
		i := 0
		for pb.Next() {
			var start time.Time
			if i%sampleEvery == 0 {
				start = time.Now()
			}
			res, err := r.Resolve(ctx, ResolveRequest{RTTs: rtts})
			if i%sampleEvery == 0 {
				sample = append(sample, time.Since(start))
			}
			if err != nil || res.HomeCell != "eu-west" {
				b.Errorf("got %+v, %v; want eu-west", res, err)
				return
			}
			i++
		}
		lat.add(sample)
	})
	lat.report(b)
}

// BenchmarkResolveHTTP measures GET /v1/resolve through the handler, bare
// and wrapped in the RED metrics a process adds, without a network: three
// known players for every new player placed by an RTT report.
func BenchmarkResolveHTTP(b *testing.B) {
	r, players := benchRouter(b, 1024)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", r.Handler()},
		{"instrumented", telemetry.InstrumentHTTP(prometheus.NewRegistry(), "router", nil, r.Handler())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lat latencies
			lat.start(b)
			b.RunParallel(func(pb *testing.PB) {
				// Requests are built once per goroutine: the mux writes
				// into the request it serves, so one goroutine reuses its
				// own, never another's.
				reqs := make([]*http.Request, 64)
				for i := range reqs {
					reqs[i] = httptest.NewRequest("GET", "/v1/resolve?player="+players[i*16%len(players)], nil)
					if i%4 == 0 {
						// A quarter are new players with an RTT report.
						reqs[i] = httptest.NewRequest("GET", "/v1/resolve?rtt=eu-west:23.5,europe-north1:31,us-east1:88,asia-southeast1:190", nil)
					}
				}
				sample := make([]time.Duration, 0, 1024)
				i := 0
				for pb.Next() {
					rec := httptest.NewRecorder()
					var start time.Time
					if i%sampleEvery == 0 {
						start = time.Now()
					}
					bc.h.ServeHTTP(rec, reqs[i%len(reqs)])
					if i%sampleEvery == 0 {
						sample = append(sample, time.Since(start))
					}
					if rec.Code != http.StatusOK {
						b.Errorf("got %d %s, want 200", rec.Code, rec.Body)
						return
					}
					i++
				}
				lat.add(sample)
			})
			lat.report(b)
		})
	}
}
