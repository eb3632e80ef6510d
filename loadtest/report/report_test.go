package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livecell/livecell/loadtest/stats"
	"github.com/livecell/livecell/loadtest/usage"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// sample is a small report with every section filled.
func sample() *Report {
	lat := stats.Percentiles{P50: 0.42, P90: 0.9, P95: 1.2, P99: 3.5, P999: 12, Max: 40, Mean: 0.6}
	return &Report{
		Scenario: "dev-mix", File: "loadtest/scenarios/dev.yaml", Description: "dev-mix: 2 players",
		Mode: "open-loop", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationS: 3, TickS: 1, Players: 2,
		Processes: []Process{{Shard: 0, PID: 10, Players: 1, Source: "127.0.0.1"}, {Shard: 1, PID: 11, Players: 1, Source: "127.0.0.2", Error: "exited: exit status 2"}},
		Summary:   Summary{Phase: "steady", Sessions: 2, RTTPerSec: 1234.5, P50MS: 0.42, P99MS: 3.5, PushPerSec: 10, Errors: 3, ErrorRate: 0.0012},
		Ops: []Op{
			{Name: "connect", Kind: KindSession, Count: 3, OK: 2, Failed: 1, Errors: map[string]int64{"connection_refused": 1},
				ErrorExamples: map[string]string{"connection_refused": "dial tcp 127.0.0.1:1: connect: connection refused"}, PerSec: 0.667, Latency: lat},
			{Name: "echo", Kind: KindRequest, Opcode: "0x0010", Count: 2470, OK: 2468, Failed: 2, Errors: map[string]int64{"timeout": 2}, PerSec: 822.667, Latency: lat, Service: &lat},
			{Name: "all", Kind: KindTotal, Count: 2470, OK: 2468, Failed: 2, Errors: map[string]int64{"timeout": 2}, PerSec: 822.667, Latency: lat},
		},
		Phases: []Phase{
			{Name: "ramp-up", StartS: 0, EndS: 1, From: 0, To: 2, Ops: []Op{{Name: "all", Kind: KindTotal, PerSec: 100, Latency: lat}}},
			{Name: "steady", StartS: 1, EndS: 3, From: 2, To: 2, Ops: []Op{{Name: "all", Kind: KindTotal, PerSec: 1234.5, Failed: 2, Latency: lat}}},
		},
		Sessions: Sessions{Peak: 2, End: 2, Events: map[string]int64{"disconnect:idle_timeout": 1, "session_end": 4}},
		Pushes:   Pushes{Total: 30, PerSec: 10, Dropped: 1, ByTopic: map[string]int64{"inventory.updated": 30}},
		Series: []stats.Point{
			{Index: 0, Active: 1, Ops: map[string]stats.PointOp{"echo": {OK: 100, P50: 0.4, P90: 0.8, P99: 2, Max: 5}, "all": {OK: 100, P50: 0.4, P90: 0.8, P99: 2, Max: 5}, "connect": {OK: 1, P50: 1, P99: 1, Max: 1}}},
			{Index: 1, Active: 2, Ops: map[string]stats.PointOp{"echo": {OK: 1200, Errors: 2, P50: 0.5, P90: 1, P99: 4, Max: 40}, "all": {OK: 1200, Errors: 2, P50: 0.5, P90: 1, P99: 4, Max: 40}}, Pushes: 20},
			{Index: 2, Active: 2, Ops: map[string]stats.PointOp{"echo": {OK: 1168, P50: 0.4, P90: 0.9, P99: 3, Max: 9}, "all": {OK: 1168, P50: 0.4, P90: 0.9, P99: 3, Max: 9}}, Pushes: 10},
		},
		Usage: []usage.Series{{Name: "cell-eu-west", Where: "/proc", CPUCoresAvg: 0.5, CPUCoresMax: 0.8, RSSMaxBytes: 50 << 20, RSSEndBytes: 48 << 20,
			Samples: []usage.Sample{{T: 1, CPUCores: 0.2, RSSBytes: 40 << 20}, {T: 2, CPUCores: 0.8, RSSBytes: 50 << 20}}}},
		Notes: []string{"the run was stopped before the end of its schedule"},
	}
}

func TestWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sample()); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/sample.txt.golden"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if b.String() != string(want) {
		t.Errorf("text report:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	var b bytes.Buffer
	r := sample()
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON round trip changed the report:\n got %+v\nwant %+v", back, *r)
	}
	for _, key := range []string{`"rtt_per_sec"`, `"p99_9_ms"`, `"sessions"`, `"push_per_sec"`, `"cpu_cores_avg"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestWriteHTMLSelfContainedAndEscaped(t *testing.T) {
	r := sample()
	r.Scenario = `<script>alert("x")</script>`
	r.Ops[1].Name = `echo"><img src=x>`
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<img", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q: not self-contained or not escaped", bad)
		}
	}
	// Sessions, throughput, latency, p99 by operation, CPU, memory.
	if n := strings.Count(page, "<svg"); n != 6 {
		t.Errorf("page has %d charts, want 6", n)
	}
	for _, want := range []string{"ramp-up", "steady", "connection_refused", "connect: connection refused", "cell-eu-west", "exit status 2", "1234"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestWriteHTMLEmptyRun(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHTML(&b, &Report{Scenario: "empty"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") {
		t.Errorf("a run without ticks drew charts")
	}
}

func TestChartScales(t *testing.T) {
	for _, tt := range []struct {
		lines  []float64
		log    bool
		lo, hi float64
	}{
		{[]float64{0, 3.2, 7}, false, 0, 8},
		{[]float64{0.4, 35, math.NaN()}, true, 0.1, 100},
		{nil, true, 0.1, 1},
		{[]float64{0, 0}, false, 0, 1},
		{[]float64{1000}, true, 1000, 10000},
	} {
		c := chart{Log: tt.log, Lines: []line{{Y: tt.lines}}}
		if lo, hi := c.yRange(); lo != tt.lo || hi != tt.hi {
			t.Errorf("yRange(%v, log=%v) = %g..%g, want %g..%g", tt.lines, tt.log, lo, hi, tt.lo, tt.hi)
		}
	}
	if got := linearTicks(0, 60, 8); !reflect.DeepEqual(got, []float64{0, 10, 20, 30, 40, 50, 60}) {
		t.Errorf("linearTicks(0, 60) = %v", got)
	}
	if got := (chart{Log: true}).yTicks(0.1, 100); !reflect.DeepEqual(got, []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100}) {
		t.Errorf("log ticks = %v", got)
	}
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0"}, {2000, "2000"}, {20000, "20k"}, {15000, "15k"}, {2.5e6, "2.5M"}, {0.25, "0.25"}, {0.002, "0.002"}, {12, "12"}} {
		if got := tickLabel(tt.v); got != tt.want {
			t.Errorf("tickLabel(%g) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
