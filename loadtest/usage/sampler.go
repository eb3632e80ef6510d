package usage

import (
	"context"
	"math"
	"sync"
	"time"
)

// Series is what was sampled of one target over a run.
type Series struct {
	Name    string   `json:"name"`
	Where   string   `json:"where"`
	Samples []Sample `json:"samples,omitempty"`
	// Summary over the samples: CPU in cores (1.0 = one core busy).
	CPUCoresAvg float64 `json:"cpu_cores_avg"`
	CPUCoresMax float64 `json:"cpu_cores_max"`
	RSSMaxBytes int64   `json:"rss_max_bytes"`
	RSSEndBytes int64   `json:"rss_end_bytes"` // the last reading
	Errors      int     `json:"errors,omitempty"`
	LastError   string  `json:"last_error,omitempty"`
}

// Sample is one point of a Series: the CPU used since the previous reading
// and the resident memory now.
type Sample struct {
	T        float64 `json:"t_s"` // seconds since the sampler started
	CPUCores float64 `json:"cpu_cores"`
	RSSBytes int64   `json:"rss_bytes"`
}

// Sampler reads every target once per interval while Run runs.
type Sampler struct {
	targets []Target
	every   time.Duration

	mu     sync.Mutex
	series []Series
	prev   []*point
	start  time.Time
}

type point struct {
	at  time.Time
	cpu float64
}

// NewSampler samples targets every interval (a second when zero).
func NewSampler(targets []Target, every time.Duration) *Sampler {
	if every <= 0 {
		every = time.Second
	}
	s := &Sampler{targets: targets, every: every, series: make([]Series, len(targets)), prev: make([]*point, len(targets))}
	for i, t := range targets {
		s.series[i] = Series{Name: t.Name, Where: t.Where}
	}
	return s
}

// Run samples until ctx ends, starting with a baseline reading now.
func (s *Sampler) Run(ctx context.Context) {
	s.mu.Lock()
	s.start = time.Now()
	s.mu.Unlock()
	s.sampleAll(ctx)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sampleAll(ctx)
		}
	}
}

func (s *Sampler) sampleAll(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.targets {
		wg.Go(func() { s.sample(ctx, i) })
	}
	wg.Wait()
}

func (s *Sampler) sample(ctx context.Context, i int) {
	rctx, cancel := context.WithTimeout(ctx, s.every)
	defer cancel()
	r, err := s.targets[i].Source.Read(rctx)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ser := &s.series[i]
	if err != nil {
		if ctx.Err() == nil {
			ser.Errors++
			ser.LastError = err.Error()
		}
		return
	}
	prev := s.prev[i]
	s.prev[i] = &point{at: now, cpu: r.CPUSeconds}
	ser.RSSMaxBytes = max(ser.RSSMaxBytes, r.RSSBytes)
	ser.RSSEndBytes = r.RSSBytes
	if prev == nil {
		return // the baseline: CPU is a rate, it needs two readings
	}
	dt := now.Sub(prev.at).Seconds()
	if dt <= 0 {
		return
	}
	cores := max(r.CPUSeconds-prev.cpu, 0) / dt // a restarted process counts from zero
	ser.Samples = append(ser.Samples, Sample{T: round(now.Sub(s.start).Seconds(), 3), CPUCores: round(cores, 3), RSSBytes: r.RSSBytes})
}

// Series returns what was sampled so far, with its summary.
func (s *Sampler) Series() []Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Series, len(s.series))
	for i, ser := range s.series {
		ser.Samples = append([]Sample(nil), ser.Samples...)
		var sum float64
		for _, smp := range ser.Samples {
			sum += smp.CPUCores
			ser.CPUCoresMax = max(ser.CPUCoresMax, smp.CPUCores)
		}
		if n := len(ser.Samples); n > 0 {
			ser.CPUCoresAvg = round(sum/float64(n), 3)
		}
		out[i] = ser
	}
	return out
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
