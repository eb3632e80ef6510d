// Package report is the result of a load test run and its three forms: a
// text table for a person at a terminal, JSON for machines (`--json`), and
// a self-contained HTML page with charts of latency, throughput, sessions
// and the target's CPU and memory over time (`--html`), which opens
// anywhere without a network: no script, styles or fonts are fetched.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livecell/livecell/loadtest/stats"
	"github.com/livecell/livecell/loadtest/usage"
)

// Operation kinds.
const (
	KindSession = "session" // resolve, sign-in, connect: a session's set-up
	KindRequest = "request" // an entry of the scenario's request mix
	KindTotal   = "total"   // the request mix taken together ("all")
)

// Report is the outcome of a run.
type Report struct {
	Scenario    string    `json:"scenario"`
	File        string    `json:"file,omitempty"`
	Description string    `json:"description"`
	Mode        string    `json:"mode"` // open-loop, closed-loop or sessions-only
	Started     time.Time `json:"started"`
	DurationS   float64   `json:"duration_s"`
	TickS       float64   `json:"tick_s"`
	Players     int       `json:"players"`
	Processes   []Process `json:"processes"`
	Summary     Summary   `json:"summary"`
	Ops         []Op      `json:"ops"`
	Phases      []Phase   `json:"phases"`
	Sessions    Sessions  `json:"sessions"`
	Pushes      Pushes    `json:"pushes"`
	// Series has one point per tick; T of point i is (i+1)*TickS.
	Series []stats.Point  `json:"series"`
	Usage  []usage.Series `json:"usage,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
}

// Summary holds the headline figures, from the phase named steady when
// the scenario has one, else from the whole run.
type Summary struct {
	Phase      string  `json:"phase,omitempty"`
	Sessions   int64   `json:"sessions"`    // most sessions open at once
	RTTPerSec  float64 `json:"rtt_per_sec"` // requests answered successfully per second
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	PushPerSec float64 `json:"push_per_sec"`
	Errors     int64   `json:"errors"`     // failed operations of every kind, whole run
	ErrorRate  float64 `json:"error_rate"` // failed / attempted requests in the summary's span
}

// Process is one load-generating process.
type Process struct {
	Shard   int    `json:"shard"`
	PID     int    `json:"pid,omitempty"`
	Source  string `json:"source,omitempty"` // local address its sessions use
	Players int    `json:"players"`
	Error   string `json:"error,omitempty"`
}

// Op is one operation's figures.
type Op struct {
	Name   string           `json:"name"`
	Kind   string           `json:"kind"`
	Opcode string           `json:"opcode,omitempty"`
	Count  int64            `json:"count"` // attempts that finished: OK + Failed
	OK     int64            `json:"ok"`
	Failed int64            `json:"failed"`
	Errors map[string]int64 `json:"errors,omitempty"` // by error code or kind
	// ErrorExamples hold the first message of each kind of error.
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	PerSec        float64           `json:"per_sec"` // OK per second
	Latency       stats.Percentiles `json:"latency"`
	// Service is measured from the actual send; Latency, for open-loop
	// requests, from the scheduled one (coordinated omission corrected).
	Service *stats.Percentiles `json:"service,omitempty"`
}

// Phase is one phase of the scenario with its own figures.
type Phase struct {
	Name   string  `json:"name"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	From   int     `json:"from_players"`
	To     int     `json:"to_players"`
	Ops    []Op    `json:"ops"`
}

// Sessions is what happened to sessions.
type Sessions struct {
	Peak   int64            `json:"peak"`
	End    int64            `json:"end"` // open at the last tick
	Events map[string]int64 `json:"events,omitempty"`
}

// Pushes counts server pushes received.
type Pushes struct {
	Total   int64            `json:"total"`
	PerSec  float64          `json:"per_sec"`
	Dropped int64            `json:"dropped,omitempty"` // lost to a full client buffer
	ByTopic map[string]int64 `json:"by_topic,omitempty"`
}

// Op returns the named operation of the whole run.
func (r *Report) Op(name string) (Op, bool) {
	for _, o := range r.Ops {
		if o.Name == name {
			return o, true
		}
	}
	return Op{}, false
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r as tables for a terminal.
func WriteText(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "scenario %s", r.Scenario)
	if r.File != "" {
		fmt.Fprintf(b, " (%s)", r.File)
	}
	fmt.Fprintf(b, "\n  %s\n", r.Description)
	fmt.Fprintf(b, "  ran %.1f s from %s in %d process(es)\n\n", r.DurationS, r.Started.Format(time.RFC3339), len(r.Processes))

	s := r.Summary
	span := "whole run"
	if s.Phase != "" {
		span = "phase " + s.Phase
	}
	fmt.Fprintf(b, "summary (%s): %d sessions, %s req/s, p50 %s ms, p99 %s ms, %s push/s, %d errors (%.2f%% of requests)\n\n",
		span, s.Sessions, num(s.RTTPerSec), num(s.P50MS), num(s.P99MS), num(s.PushPerSec), s.Errors, 100*s.ErrorRate)

	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tok/s\terrors\tp50 ms\tp90 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, o := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", o.Name, o.Count, num(o.PerSec), o.Failed,
			num(o.Latency.P50), num(o.Latency.P90), num(o.Latency.P95), num(o.Latency.P99), num(o.Latency.P999), num(o.Latency.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range r.Ops {
		if len(o.Errors) == 0 || o.Kind == KindTotal {
			continue
		}
		fmt.Fprintf(b, "  %s errors: %s\n", o.Name, counts(o.Errors))
		for _, kv := range sortedCounts(o.Errors) {
			if ex := o.ErrorExamples[kv.K]; ex != "" {
				fmt.Fprintf(b, "    %s, e.g.: %s\n", kv.K, ex)
			}
		}
	}
	if len(r.Phases) > 1 {
		b.WriteString("\nphases:\n")
		for _, ph := range r.Phases {
			line := fmt.Sprintf("  %-12s %6.1f-%6.1f s  players %d→%d", ph.Name, ph.StartS, ph.EndS, ph.From, ph.To)
			for _, o := range ph.Ops {
				if o.Kind == KindTotal {
					line += fmt.Sprintf("  requests %s/s p50 %s p99 %s ms, %d errors", num(o.PerSec), num(o.Latency.P50), num(o.Latency.P99), o.Failed)
				}
			}
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(b, "\nsessions: peak %d, open at the end %d", r.Sessions.Peak, r.Sessions.End)
	if len(r.Sessions.Events) > 0 {
		fmt.Fprintf(b, "; %s", counts(r.Sessions.Events))
	}
	b.WriteString("\n")
	if r.Pushes.Total > 0 || r.Pushes.Dropped > 0 {
		fmt.Fprintf(b, "pushes: %d (%s/s), dropped %d; %s\n", r.Pushes.Total, num(r.Pushes.PerSec), r.Pushes.Dropped, counts(r.Pushes.ByTopic))
	}
	for _, u := range r.Usage {
		fmt.Fprintf(b, "usage %s (%s): cpu %.2f cores avg, %.2f max; rss %s max, %s at the end", u.Name, u.Where,
			u.CPUCoresAvg, u.CPUCoresMax, mib(u.RSSMaxBytes), mib(u.RSSEndBytes))
		if u.Errors > 0 {
			fmt.Fprintf(b, "; %d failed samples (%s)", u.Errors, u.LastError)
		}
		b.WriteString("\n")
	}
	for _, p := range r.Processes {
		if p.Error != "" {
			fmt.Fprintf(b, "process %d (pid %d): %s\n", p.Shard, p.PID, p.Error)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num formats a figure with as many decimals as it deserves.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// counts formats a map of counts, largest first.
func counts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
