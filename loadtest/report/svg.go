package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW       = 900
	chartH       = 260
	marginLeft   = 70
	marginRight  = 16
	marginTop    = 30
	marginBottom = 34
)

var palette = []string{"#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"}

// line is one series of a chart; NaN values leave gaps.
type line struct {
	Name  string
	Color string
	Dash  bool
	X, Y  []float64
}

// band shades a stretch of the x axis, such as a phase.
type band struct {
	From, To float64
	Label    string
}

// chart is a line chart over time, rendered as inline SVG.
type chart struct {
	Title string
	Unit  string // of the y axis
	Log   bool   // logarithmic y axis (latencies)
	XMax  float64
	Lines []line
	Bands []band
}

// SVG renders the chart.
func (c chart) SVG() template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`, chartW, chartH, template.HTMLEscapeString(c.Title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="title">%s</text>`, marginLeft, template.HTMLEscapeString(c.Title))
	// The legend sits right of the title, or on a row of its own below it
	// when they would overlap.
	legendW := 0.0
	for _, l := range c.Lines {
		legendW += legendWidth(l.Name)
	}
	top, legendY := marginTop, 9
	if float64(marginLeft)+float64(len(c.Title))*7.5+legendW > chartW-marginRight {
		top, legendY = marginTop+16, 25
	}
	pw, ph := float64(chartW-marginLeft-marginRight), float64(chartH-top-marginBottom)
	xmax := c.XMax
	if xmax <= 0 {
		xmax = 1
	}
	px := func(x float64) float64 { return float64(marginLeft) + x/xmax*pw }

	lo, hi := c.yRange()
	py := func(y float64) float64 {
		var f float64
		if c.Log {
			f = (math.Log10(math.Max(y, lo)) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo))
		} else {
			f = (y - lo) / (hi - lo)
		}
		f = math.Min(math.Max(f, 0), 1)
		return float64(top) + (1-f)*ph
	}

	for i, bd := range c.Bands {
		x0, x1 := px(math.Max(bd.From, 0)), px(math.Min(bd.To, xmax))
		if x1 <= x0 {
			continue
		}
		cls := "band"
		if i%2 == 1 {
			cls = "band alt"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%.1f"/>`, cls, x0, top, x1-x0, ph)
		fmt.Fprintf(&b, `<text class="bandlabel" x="%.1f" y="%d">%s</text>`, x0+4, top+12, template.HTMLEscapeString(bd.Label))
	}
	// Axes and grid.
	for _, t := range c.yTicks(lo, hi) {
		y := py(t)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, marginLeft, chartW-marginRight, y, y)
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, marginLeft-6, y+4, tickLabel(t))
	}
	for _, t := range linearTicks(0, xmax, 8) {
		x := px(t)
		fmt.Fprintf(&b, `<line class="axis" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, x, x, float64(top)+ph, float64(top)+ph+4)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%ss</text>`, x, float64(top)+ph+16, tickLabel(t))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, marginLeft, chartW-marginRight, float64(top)+ph, float64(top)+ph)
	fmt.Fprintf(&b, `<text class="unit" x="12" y="%d" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, top+int(ph/2), top+int(ph/2), template.HTMLEscapeString(c.Unit))

	// Series, then the legend over them.
	for _, l := range c.Lines {
		var d strings.Builder
		pen := false
		for i := range l.X {
			if i >= len(l.Y) || math.IsNaN(l.Y[i]) || (c.Log && l.Y[i] <= 0) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, px(l.X[i]), py(l.Y[i]))
			pen = true
		}
		dash := ""
		if l.Dash {
			dash = ` stroke-dasharray="5 3"`
		}
		fmt.Fprintf(&b, `<path class="series" d="%s" stroke="%s"%s><title>%s</title></path>`, strings.TrimSpace(d.String()), l.Color, dash, template.HTMLEscapeString(l.Name))
	}
	x := float64(chartW - marginRight)
	for i := len(c.Lines) - 1; i >= 0; i-- {
		l := c.Lines[i]
		x -= legendWidth(l.Name)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="12" height="4" fill="%s"/><text class="legend" x="%.1f" y="%d">%s</text>`,
			x, legendY, l.Color, x+16, legendY+6, template.HTMLEscapeString(l.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text above is escaped
}

// legendWidth estimates the room a legend entry takes (11 px text).
func legendWidth(name string) float64 { return float64(len(name))*6.5 + 22 }

// yRange is the y axis's span: from 0 (linear) or the smallest decade
// below the data (log) to a round number above it.
func (c chart) yRange() (float64, float64) {
	lo, hi := math.Inf(1), 0.0
	for _, l := range c.Lines {
		for _, y := range l.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			if y > 0 {
				lo = math.Min(lo, y)
			}
			hi = math.Max(hi, y)
		}
	}
	if c.Log {
		if math.IsInf(lo, 1) {
			lo, hi = 0.1, 1
		}
		lo = math.Pow(10, math.Floor(math.Log10(lo)))
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		if hi <= lo {
			hi = lo * 10
		}
		return lo, hi
	}
	if hi <= 0 {
		return 0, 1
	}
	return 0, niceCeil(hi * 1.05)
}

func (c chart) yTicks(lo, hi float64) []float64 {
	if !c.Log {
		return linearTicks(lo, hi, 5)
	}
	var out []float64
	decades := math.Log10(hi / lo)
	for d := lo; d <= hi*1.0001; d *= 10 {
		out = append(out, d)
		if decades <= 3 && d*10 <= hi*1.0001 {
			out = append(out, 2*d, 5*d)
		}
	}
	return out
}

// linearTicks returns round tick values covering [lo, hi], about n of them.
func linearTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	step := niceStep((hi - lo) / float64(n))
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step/1000; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

// niceStep rounds s up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s {
			return m * p
		}
	}
	return 10 * p
}

// niceCeil rounds v up to a round number.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trim(fmt.Sprintf("%.1fG", v/1e9))
	case a >= 1e6:
		return trim(fmt.Sprintf("%.1fM", v/1e6))
	case a >= 1e4:
		return trim(fmt.Sprintf("%.1fk", v/1e3))
	case a >= 1 || a == 0:
		return trim(fmt.Sprintf("%.1f", v))
	case a >= 0.01:
		return trim(fmt.Sprintf("%.2f", v))
	}
	return trim(fmt.Sprintf("%.3f", v))
}

// trim drops a fraction of zeros: "2.0k" → "2k".
func trim(s string) string {
	num, unit := s, ""
	if n := len(s); n > 0 && (s[n-1] < '0' || s[n-1] > '9') {
		num, unit = s[:n-1], s[n-1:]
	}
	if strings.Contains(num, ".") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num + unit
}
