package usage

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    Reading
		wantErr string
	}{
		{"client_golang", "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.048576e+07\nlivecell_gateway_sessions 3\n",
			Reading{CPUSeconds: 12.5, RSSBytes: 10485760}, ""},
		{"untyped", "process_cpu_seconds_total 2\nprocess_resident_memory_bytes 4096\n", Reading{CPUSeconds: 2, RSSBytes: 4096}, ""},
		{"no rss", "process_cpu_seconds_total 1\n", Reading{CPUSeconds: 1}, ""},
		{"no cpu", "process_resident_memory_bytes 1\n", Reading{}, "no process_cpu_seconds_total"},
		{"garbage", "{{{ not metrics\n", Reading{}, "parse metrics"},
		{"negative cpu", "process_cpu_seconds_total -1\n", Reading{}, "is -1"},
	} {
		got, err := ParseMetrics(strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got %+v, %v; want an error with %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestMetricsTarget(t *testing.T) {
	var cpu atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		// One core's worth of CPU per 100 ms of wall time.
		fmt.Fprintf(w, "process_cpu_seconds_total %g\nprocess_resident_memory_bytes 2e6\n", float64(cpu.Add(1))*0.05)
	}))
	defer srv.Close()
	good := MetricsTarget("gw", srv.URL+"/metrics", nil)
	bad := MetricsTarget("missing", srv.URL+"/nope", nil)
	s := NewSampler([]Target{good, bad}, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 330*time.Millisecond)
	defer cancel()
	s.Run(ctx)
	ser := s.Series()
	if len(ser[0].Samples) < 3 || ser[0].RSSMaxBytes != 2e6 || ser[0].CPUCoresAvg <= 0 {
		t.Errorf("good target: got %+v", ser[0])
	}
	if ser[0].Errors != 0 {
		t.Errorf("good target: %d errors (%s)", ser[0].Errors, ser[0].LastError)
	}
	if ser[1].Errors == 0 || !strings.Contains(ser[1].LastError, "HTTP 404") || len(ser[1].Samples) != 0 {
		t.Errorf("missing target: got %+v, want errors with HTTP 404 and no samples", ser[1])
	}
}

func TestPIDTargetSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	self := os.Getpid()
	src := PIDTarget("self", func() []int { return []int{self} }).Source
	r1, err := src.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so the counter moves.
	deadline := time.Now().Add(150 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	r2, err := src.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r1.RSSBytes <= 0 || r2.CPUSeconds <= r1.CPUSeconds {
		t.Errorf("readings %+v then %+v (%d): want RSS and growing CPU", r1, r2, x)
	}
	gone := PIDTarget("gone", func() []int { return []int{1 << 30} }).Source
	if _, err := gone.Read(context.Background()); err == nil {
		t.Errorf("a process that does not exist was read")
	}
	none := PIDTarget("none", func() []int { return nil }).Source
	if _, err := none.Read(context.Background()); err == nil {
		t.Errorf("an empty process set was read")
	}
}

func TestProcSourceSurvivesExits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	// A process set whose member changes: the total must never go down.
	self := os.Getpid()
	pids := []int{self}
	p := &procSource{pids: func() []int { return pids }, last: map[int]float64{}}
	r1, err := p.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pids = []int{self, 1 << 30} // one unreadable: skipped, not fatal
	r2, err := p.Read(context.Background())
	if err != nil || r2.CPUSeconds < r1.CPUSeconds {
		t.Errorf("after adding a dead pid: %+v, %v; want CPU ≥ %g", r2, err, r1.CPUSeconds)
	}
}
