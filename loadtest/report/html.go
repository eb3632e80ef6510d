package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"time"
)

// WriteHTML writes r as a self-contained HTML page: inline styles and SVG,
// nothing fetched from anywhere.
func WriteHTML(w io.Writer, r *Report) error {
	return page.Execute(w, view{R: r, Charts: charts(r), Generated: time.Now().UTC().Format(time.RFC3339)})
}

type view struct {
	R         *Report
	Charts    []chart
	Generated string
}

// charts builds the page's charts from the time series.
func charts(r *Report) []chart {
	n := len(r.Series)
	if n == 0 {
		return nil
	}
	tick := r.TickS
	if tick <= 0 {
		tick = 1
	}
	xs := make([]float64, n)
	for i, p := range r.Series {
		xs[i] = float64(p.Index+1) * tick
	}
	xmax := math.Max(xs[n-1], r.DurationS)
	var bands []band
	for _, ph := range r.Phases {
		bands = append(bands, band{From: ph.StartS, To: ph.EndS, Label: ph.Name})
	}
	at := func(f func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range n {
			out[i] = f(i)
		}
		return out
	}
	var out []chart

	// Sessions: what was open against what the schedule asked for.
	wanted := at(func(i int) float64 { return wantedAt(r.Phases, xs[i]) })
	out = append(out, chart{Title: "Sessions open", Unit: "sessions", XMax: xmax, Bands: bands, Lines: []line{
		{Name: "open", Color: palette[0], X: xs, Y: at(func(i int) float64 { return float64(r.Series[i].Active) })},
		{Name: "players scheduled", Color: palette[8], Dash: true, X: xs, Y: wanted},
	}})

	// Throughput: successes per second per operation, errors, pushes.
	var req, sess []Op
	for _, o := range r.Ops {
		switch o.Kind {
		case KindRequest:
			req = append(req, o)
		case KindSession:
			sess = append(sess, o)
		}
	}
	shown := req
	if len(shown) == 0 {
		shown = sess
	}
	var tput []line
	for i, o := range shown {
		tput = append(tput, line{Name: o.Name + " ok/s", Color: palette[(i+2)%len(palette)], X: xs,
			Y: at(func(j int) float64 { return float64(r.Series[j].Ops[o.Name].OK) / tick })})
	}
	tput = append(tput, line{Name: "errors/s", Color: palette[1], Dash: true, X: xs, Y: at(func(j int) float64 {
		var e int64
		for name, po := range r.Series[j].Ops {
			if name != "all" {
				e += po.Errors
			}
		}
		return float64(e) / tick
	})})
	if r.Pushes.Total > 0 {
		tput = append(tput, line{Name: "pushes/s", Color: palette[3], X: xs, Y: at(func(j int) float64 { return float64(r.Series[j].Pushes) / tick })})
	}
	out = append(out, chart{Title: "Throughput", Unit: "per second", XMax: xmax, Bands: bands, Lines: tput})

	// Latency percentiles of the request mix (or of connects when the
	// scenario sends no requests), then p99 of every operation.
	focus := "all"
	if len(req) == 0 {
		focus = "connect"
	}
	pct := func(get func(p float64, q float64, m float64, x float64) float64) func(int) float64 {
		return func(i int) float64 {
			po, ok := r.Series[i].Ops[focus]
			if !ok || po.OK == 0 {
				return math.NaN()
			}
			return get(po.P50, po.P90, po.P99, po.Max)
		}
	}
	out = append(out, chart{Title: "Latency over time: " + focus + " (log scale)", Unit: "ms", Log: true, XMax: xmax, Bands: bands, Lines: []line{
		{Name: "p50", Color: palette[0], X: xs, Y: at(pct(func(a, _, _, _ float64) float64 { return a }))},
		{Name: "p90", Color: palette[2], X: xs, Y: at(pct(func(_, b, _, _ float64) float64 { return b }))},
		{Name: "p99", Color: palette[4], X: xs, Y: at(pct(func(_, _, c, _ float64) float64 { return c }))},
		{Name: "max", Color: palette[1], Dash: true, X: xs, Y: at(pct(func(_, _, _, d float64) float64 { return d }))},
	}})
	var p99s []line
	for i, o := range append(append([]Op(nil), sess...), req...) {
		p99s = append(p99s, line{Name: o.Name, Color: palette[i%len(palette)], X: xs, Y: at(func(j int) float64 {
			po, ok := r.Series[j].Ops[o.Name]
			if !ok || po.OK == 0 {
				return math.NaN()
			}
			return po.P99
		})})
	}
	if len(p99s) > 0 {
		out = append(out, chart{Title: "p99 latency by operation (log scale)", Unit: "ms", Log: true, XMax: xmax, Bands: bands, Lines: p99s})
	}

	// The target's (and the load tester's own) CPU and memory.
	if len(r.Usage) > 0 {
		var cpu, rss []line
		for i, u := range r.Usage {
			ux := make([]float64, len(u.Samples))
			uc := make([]float64, len(u.Samples))
			um := make([]float64, len(u.Samples))
			for j, s := range u.Samples {
				ux[j], uc[j], um[j] = s.T, s.CPUCores, float64(s.RSSBytes)/(1<<20)
			}
			color := palette[i%len(palette)]
			cpu = append(cpu, line{Name: u.Name, Color: color, X: ux, Y: uc})
			rss = append(rss, line{Name: u.Name, Color: color, X: ux, Y: um})
		}
		out = append(out,
			chart{Title: "CPU", Unit: "cores", XMax: xmax, Bands: bands, Lines: cpu},
			chart{Title: "Resident memory", Unit: "MiB", XMax: xmax, Bands: bands, Lines: rss})
	}
	return out
}

// wantedAt is the number of players the phases schedule at t seconds.
func wantedAt(phases []Phase, t float64) float64 {
	for _, ph := range phases {
		if t <= ph.EndS && ph.EndS > ph.StartS {
			f := math.Max(0, (t-ph.StartS)/(ph.EndS-ph.StartS))
			return float64(ph.From) + f*float64(ph.To-ph.From)
		}
	}
	if len(phases) > 0 {
		return float64(phases[len(phases)-1].To)
	}
	return 0
}

func sortedCounts(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].V != out[j].V {
			return out[i].V > out[j].V
		}
		return out[i].K < out[j].K
	})
	return out
}

type kv struct {
	K string
	V int64
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"num":    num,
	"mib":    mib,
	"pct":    func(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) },
	"counts": sortedCounts,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>livecell load test: {{.R.Scenario}}</title>
<style>
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f9fafb;--card:#fff;--bad:#b91c1c}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:960px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.muted{color:var(--muted)}.bad{color:var(--bad);font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px;margin:16px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .v{font-size:22px;font-weight:600}.card .k{color:var(--muted);font-size:12px}
.chart{width:100%;height:auto;background:var(--card);border:1px solid var(--line);border-radius:8px;margin:8px 0}
.chart .title{font-weight:600;font-size:13px;fill:var(--fg)}.chart .tick,.chart .legend,.chart .unit{font-size:11px;fill:var(--muted)}
.chart .grid{stroke:var(--line)}.chart .axis{stroke:#9ca3af}.chart .series{fill:none;stroke-width:1.6}
.chart .band{fill:#eef2ff;opacity:.6}.chart .band.alt{fill:#f0fdf4}.chart .bandlabel{font-size:10px;fill:#6366f1}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}th{background:#f3f4f6;font-weight:600}
td:first-child,th:first-child,td.msg{text-align:left}td.msg{white-space:normal;font-size:12px;color:var(--muted)}tr.total td{font-weight:600;background:#fafafa}
code{font-size:12px}
</style></head><body><main>
<h1>{{.R.Scenario}}</h1>
<div class="muted">{{.R.Description}}</div>
<div class="muted">{{if .R.File}}{{.R.File}} · {{end}}started {{.R.Started.Format "2006-01-02 15:04:05 MST"}} · {{printf "%.1f" .R.DurationS}} s · {{len .R.Processes}} load process(es) · {{.R.Mode}}</div>
{{with .R.Summary}}
<div class="cards">
<div class="card"><div class="v">{{.Sessions}}</div><div class="k">sessions (peak)</div></div>
<div class="card"><div class="v">{{num .RTTPerSec}}</div><div class="k">requests/s{{if .Phase}} ({{.Phase}}){{end}}</div></div>
<div class="card"><div class="v">{{num .P50MS}} ms</div><div class="k">p50</div></div>
<div class="card"><div class="v">{{num .P99MS}} ms</div><div class="k">p99</div></div>
<div class="card"><div class="v">{{num .PushPerSec}}</div><div class="k">pushes/s</div></div>
<div class="card"><div class="v {{if .Errors}}bad{{end}}">{{.Errors}}</div><div class="k">errors ({{pct .ErrorRate}} of requests)</div></div>
</div>{{end}}
{{range .Charts}}{{.SVG}}{{end}}
<h2>Operations</h2>
<table><tr><th>operation</th><th>count</th><th>ok/s</th><th>errors</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max ms</th></tr>
{{range .R.Ops}}<tr{{if eq .Kind "total"}} class="total"{{end}}><td>{{.Name}}{{if .Opcode}} <code class="muted">{{.Opcode}}</code>{{end}}</td><td>{{.Count}}</td><td>{{num .PerSec}}</td><td{{if .Failed}} class="bad"{{end}}>{{.Failed}}</td>
<td>{{num .Latency.P50}}</td><td>{{num .Latency.P90}}</td><td>{{num .Latency.P95}}</td><td>{{num .Latency.P99}}</td><td>{{num .Latency.P999}}</td><td>{{num .Latency.Max}}</td></tr>
{{end}}</table>
<p class="muted">Latency of open-loop requests counts from when each was scheduled, so time spent queued behind a slow answer is included (coordinated omission corrected).</p>
{{$errs := false}}{{range .R.Ops}}{{if and .Errors (ne .Kind "total")}}{{$errs = true}}{{end}}{{end}}
{{if $errs}}<h2>Errors</h2><table><tr><th>operation</th><th>error</th><th>count</th><th>first message</th></tr>
{{range .R.Ops}}{{if ne .Kind "total"}}{{$op := .}}{{range counts .Errors}}<tr><td>{{$op.Name}}</td><td>{{.K}}</td><td>{{.V}}</td><td class="msg">{{index $op.ErrorExamples .K}}</td></tr>{{end}}{{end}}{{end}}
</table>{{end}}
{{if gt (len .R.Phases) 1}}<h2>Phases</h2>
<table><tr><th>phase</th><th>from s</th><th>to s</th><th>players</th><th>operation</th><th>ok/s</th><th>errors</th><th>p50</th><th>p99</th><th>max ms</th></tr>
{{range .R.Phases}}{{$ph := .}}{{range .Ops}}<tr{{if eq .Kind "total"}} class="total"{{end}}><td>{{$ph.Name}}</td><td>{{printf "%.1f" $ph.StartS}}</td><td>{{printf "%.1f" $ph.EndS}}</td><td>{{$ph.From}}→{{$ph.To}}</td><td>{{.Name}}</td><td>{{num .PerSec}}</td><td>{{.Failed}}</td><td>{{num .Latency.P50}}</td><td>{{num .Latency.P99}}</td><td>{{num .Latency.Max}}</td></tr>
{{end}}{{end}}</table>{{end}}
<h2>Sessions</h2>
<p>Peak {{.R.Sessions.Peak}}, open at the end {{.R.Sessions.End}}.{{if .R.Pushes.Total}} Pushes received {{.R.Pushes.Total}} ({{num .R.Pushes.PerSec}}/s){{if .R.Pushes.Dropped}}, <span class="bad">{{.R.Pushes.Dropped}} dropped</span>{{end}}.{{end}}</p>
{{if .R.Sessions.Events}}<table><tr><th>session event</th><th>count</th></tr>{{range counts .R.Sessions.Events}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>{{end}}</table>{{end}}
{{if .R.Usage}}<h2>CPU and memory</h2>
<table><tr><th>process</th><th>sampled from</th><th>cpu avg</th><th>cpu max</th><th>rss max</th><th>rss at end</th><th>failed samples</th></tr>
{{range .R.Usage}}<tr><td>{{.Name}}</td><td><code>{{.Where}}</code></td><td>{{printf "%.2f" .CPUCoresAvg}}</td><td>{{printf "%.2f" .CPUCoresMax}}</td><td>{{mib .RSSMaxBytes}}</td><td>{{mib .RSSEndBytes}}</td><td>{{.Errors}}</td></tr>{{end}}
</table>{{end}}
<h2>Load processes</h2>
<table><tr><th>shard</th><th>pid</th><th>source address</th><th>players</th><th>error</th></tr>
{{range .R.Processes}}<tr><td>{{.Shard}}</td><td>{{.PID}}</td><td>{{.Source}}</td><td>{{.Players}}</td><td{{if .Error}} class="bad"{{end}}>{{.Error}}</td></tr>{{end}}
</table>
{{range .R.Notes}}<p class="muted">Note: {{.}}</p>{{end}}
<p class="muted">Generated by livecell loadtest at {{.Generated}}.</p>
</main></body></html>
`))
