// Package usage samples the CPU and resident memory of the processes under
// load (and of the load tester itself) while a load test runs: from a
// process's Prometheus /metrics (process_cpu_seconds_total,
// process_resident_memory_bytes), which works for any livecell process the
// tester can reach, or from /proc/<pid> for a local process, which costs
// the target nothing.
package usage

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Reading is one observation of a process (or a set of processes, summed).
type Reading struct {
	CPUSeconds float64 // user + system since the process started
	RSSBytes   int64
}

// Source reads a process's counters.
type Source interface {
	Read(ctx context.Context) (Reading, error)
}

// Target is a process (or a set) to sample, as the report names it.
type Target struct {
	Name   string // "cell-eu-west", "gateway", "loadtest"
	Where  string // where readings come from: a /metrics URL or "pid 1234"
	Source Source
}

// MetricsTarget samples a Prometheus endpoint.
func MetricsTarget(name, url string, hc *http.Client) Target {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	return Target{Name: name, Where: url, Source: metricsSource{url: url, hc: hc}}
}

type metricsSource struct {
	url string
	hc  *http.Client
}

// maxMetricsBody bounds what is read of a /metrics answer.
const maxMetricsBody = 16 << 20

func (m metricsSource) Read(ctx context.Context) (Reading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return Reading{}, err
	}
	// The classic text format: what every client library serves.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := m.hc.Do(req)
	if err != nil {
		return Reading{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Reading{}, fmt.Errorf("GET %s: HTTP %d", m.url, resp.StatusCode)
	}
	return ParseMetrics(io.LimitReader(resp.Body, maxMetricsBody))
}

// Metric names of the process collector every Prometheus client library
// exports.
const (
	metricCPU = "process_cpu_seconds_total"
	metricRSS = "process_resident_memory_bytes"
)

// ParseMetrics reads the process metrics from a Prometheus text exposition.
func ParseMetrics(r io.Reader) (Reading, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Reading{}, fmt.Errorf("usage: parse metrics: %w", err)
	}
	var out Reading
	cpu, ok := fams[metricCPU]
	if !ok || len(cpu.GetMetric()) == 0 {
		return Reading{}, fmt.Errorf("usage: no %s in the metrics", metricCPU)
	}
	m := cpu.GetMetric()[0]
	switch {
	case m.GetCounter() != nil:
		out.CPUSeconds = m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		out.CPUSeconds = m.GetUntyped().GetValue()
	}
	if rss, ok := fams[metricRSS]; ok && len(rss.GetMetric()) > 0 {
		m := rss.GetMetric()[0]
		v := m.GetGauge().GetValue()
		if m.GetUntyped() != nil {
			v = m.GetUntyped().GetValue()
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 && v < math.MaxInt64 {
			out.RSSBytes = int64(v)
		}
	}
	if math.IsNaN(out.CPUSeconds) || math.IsInf(out.CPUSeconds, 0) || out.CPUSeconds < 0 {
		return Reading{}, fmt.Errorf("usage: %s is %v", metricCPU, out.CPUSeconds)
	}
	return out, nil
}

// PIDTarget samples local processes from /proc, summed: one process, or
// the set pids returns at each reading (processes that come and go, such
// as the load tester's workers).
func PIDTarget(name string, pids func() []int) Target {
	return Target{Name: name, Where: "/proc", Source: &procSource{pids: pids, last: map[int]float64{}}}
}

// procSource sums CPU over a changing set of processes: it adds each
// process's growth since it was last seen, so a process that exits takes
// nothing away from the total.
type procSource struct {
	pids func() []int

	mu    sync.Mutex
	last  map[int]float64
	total float64
}

func (p *procSource) Read(ctx context.Context) (Reading, error) {
	pids := p.pids()
	if len(pids) == 0 {
		return Reading{}, fmt.Errorf("usage: no process to sample")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out Reading
	seen := map[int]float64{}
	var firstErr error
	for _, pid := range pids {
		r, err := readProc(pid)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if prev, ok := p.last[pid]; ok && r.CPUSeconds >= prev {
			p.total += r.CPUSeconds - prev
		} else if !ok {
			p.total += r.CPUSeconds
		}
		seen[pid] = r.CPUSeconds
		out.RSSBytes += r.RSSBytes
	}
	if len(seen) == 0 {
		return Reading{}, firstErr
	}
	p.last = seen
	out.CPUSeconds = p.total
	return out, nil
}
