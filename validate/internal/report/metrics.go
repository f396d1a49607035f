package report

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Metrics is what the cluster's Prometheus recorded during a destructive
// check: evidence beside the traffic, never a verdict.
type Metrics struct {
	// Prometheus is the server asked.
	Prometheus string `json:"prometheus,omitempty"`
	// Start and End are the window asked for: a few seconds before the
	// fault to a few after the cluster was healthy again.
	Start  time.Time     `json:"start"`
	End    time.Time     `json:"end"`
	Step   time.Duration `json:"stepNs,omitempty"`
	Panels []MetricPanel `json:"panels,omitempty"`
	// Note says, in one line, why there are no graphs (monitoring off,
	// Prometheus unreachable, no samples).
	Note string `json:"note,omitempty"`
}

// Panel kinds.
const (
	// PanelRoles draws one lane per node, coloured by the Role* value.
	PanelRoles = "roles"
	// PanelLines draws each series as a line.
	PanelLines = "lines"
)

// Values of a PanelRoles series.
const (
	RoleStopped = 0 // Patroni answers, PostgreSQL is not running
	RoleReplica = 1
	RoleLeader  = 2
)

// MetricPanel is one graph: one quantity per node over the window.
type MetricPanel struct {
	Name  string `json:"name"` // machine name: roles, replication_lag, tps, haproxy_servers
	Title string `json:"title"`
	Kind  string `json:"kind"`
	Unit  string `json:"unit,omitempty"` // bytes, or a word drawn after each value
	// Queries are the PromQL asked, so a reader can ask again.
	Queries []string       `json:"queries"`
	Series  []MetricSeries `json:"series,omitempty"`
	// Note says what went wrong with this panel's queries.
	Note string `json:"note,omitempty"`
}

// MetricSeries is one line or lane, named in the legend.
type MetricSeries struct {
	Name   string  `json:"name"` // legend text: the node, and what of it
	Node   string  `json:"node"` // picks the colour: one node, one colour
	Dashed bool    `json:"dashed,omitempty"`
	Points []Point `json:"points"`
}

// HasData reports whether any panel has a sample.
func (m *Metrics) HasData() bool {
	if m == nil {
		return false
	}
	for _, p := range m.Panels {
		for _, s := range p.Series {
			if len(s.Points) > 0 {
				return true
			}
		}
	}
	return false
}

// MetricsFile is the name of a check's metrics picture in the report
// directory.
func MetricsFile(check string) string {
	r := strings.NewReplacer(":", "-", "/", "-", " ", "-")
	return "metrics-" + r.Replace(check) + ".svg"
}

// Metric panel geometry, in pixels.
const (
	metricHead  = 34  // title and legend lines above the plot
	metricPlotH = 110 // a line plot
	laneHeight  = 18  // one node's lane in a roles panel
	metricAxis  = 24  // the time axis under each plot
)

// nodePalette colours series by node, the same node the same colour in
// every panel of a picture.
var nodePalette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"}

var roleColors = map[float64]string{RoleLeader: "#8e44ad", RoleReplica: "#8fd19e", RoleStopped: "#d9412b"}

// MetricsSVG draws one check's metrics under its traffic timeline, all
// on one time axis: the writes and reads with the events labelled, then
// each panel with the same events as vertical marks.
func MetricsSVG(c Check, cluster string) []byte {
	m := c.Metrics
	tl := c.Timeline
	ax := metricsAxis(m, tl)
	colors := nodeColors(m)
	height := 40
	if tl != nil {
		height += labelSpace + 2*rowHeight + 8 + 24 + panelGap
	}
	heights := make([]int, len(m.Panels))
	for i, p := range m.Panels {
		heights[i] = metricPanelHeight(p)
		height += heights[i] + panelGap
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d">`+"\n", svgWidth, height, svgWidth, height, labelSize)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("pgha validate — %s — %s: traffic and what Prometheus saw", cluster, c.Name)))
	y := 40
	var evs []Event
	if tl != nil {
		trafficPanel(&b, tl, y, ax, "traffic-"+c.Name)
		y += labelSpace + 2*rowHeight + 8 + 24 + panelGap
		evs = sortedEvents(tl.Events)
	}
	for i, p := range m.Panels {
		metricPanel(&b, p, y, ax, colors, evs)
		y += heights[i] + panelGap
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// metricsAxis spans the query window and the timeline, ticks counted from
// the timeline's start.
func metricsAxis(m *Metrics, tl *Timeline) timeAxis {
	ax := timeAxis{origin: m.Start, from: m.Start, to: m.End}
	if tl != nil {
		t := timelineAxis(tl)
		ax.origin = t.origin
		if ax.from.IsZero() || t.from.Before(ax.from) {
			ax.from = t.from
		}
		if t.to.After(ax.to) {
			ax.to = t.to
		}
	}
	return ax
}

func nodeColors(m *Metrics) map[string]string {
	var nodes []string
	seen := map[string]bool{}
	for _, p := range m.Panels {
		for _, s := range p.Series {
			if !seen[s.Node] {
				seen[s.Node] = true
				nodes = append(nodes, s.Node)
			}
		}
	}
	sort.Strings(nodes)
	out := map[string]string{}
	for i, n := range nodes {
		out[n] = nodePalette[i%len(nodePalette)]
	}
	return out
}

func metricPanelHeight(p MetricPanel) int {
	plotH := metricPlotH
	if p.Kind == PanelRoles {
		plotH = max(1, len(p.Series)) * laneHeight
	}
	return metricHead + plotH + metricAxis
}

// legendItem is one swatch and its text.
type legendItem struct {
	color, text string
	dashed      bool
	block       bool // a filled square (a role) rather than a line
}

// legend writes the items in a row from x at baseline y, left to right
// within the plot's width, and returns how many fitted.
func legend(b *bytes.Buffer, items []legendItem, x, y float64) int {
	right := float64(svgWidth - svgRight)
	for i, it := range items {
		w := 22 + textWidth(it.text, labelSize)
		if x+w > right {
			fmt.Fprintf(b, `<text x="%.1f" y="%.0f" fill="#555555">…</text>`+"\n", x, y)
			return i
		}
		if it.block {
			fmt.Fprintf(b, `<rect x="%.1f" y="%.0f" width="14" height="9" fill="%s" stroke="#bbbbbb" stroke-width="0.5"/>`+"\n", x, y-8, it.color)
		} else {
			dash := ""
			if it.dashed {
				dash = ` stroke-dasharray="5,3"`
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`+"\n", x, y-4, x+16, y-4, it.color, dash)
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f">%s</text>`+"\n", x+19, y, esc(it.text))
		x += w + 12
	}
	return len(items)
}

// metricPanel draws p with its top edge at top.
func metricPanel(b *bytes.Buffer, p MetricPanel, top int, ax timeAxis, colors map[string]string, evs []Event) {
	plotTop := top + metricHead
	plotH := metricPanelHeight(p) - metricHead - metricAxis
	plotBottom := plotTop + plotH
	plotW := ax.plotW()
	fmt.Fprintf(b, `<g id="%s">`+"\n", esc("metric-"+p.Name))
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", top+12, esc(p.Title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f7f7f7"/>`+"\n", svgLeft, plotTop, plotW, plotH)
	var items []legendItem
	if p.Kind == PanelRoles {
		items = []legendItem{{color: roleColors[RoleLeader], text: "leader (patroni_master 1)", block: true},
			{color: roleColors[RoleReplica], text: "replica, PostgreSQL running", block: true},
			{color: roleColors[RoleStopped], text: "PostgreSQL not running", block: true},
			{color: "#f7f7f7", text: "blank: no sample (target down or unreachable)", block: true}}
	} else {
		for _, s := range p.Series {
			items = append(items, legendItem{color: colors[s.Node], text: s.Name, dashed: s.Dashed})
		}
	}
	legend(b, items, svgLeft, float64(top+28))
	step := stepOf(p)
	switch {
	case len(p.Series) == 0:
		msg := "no samples"
		if p.Note != "" {
			msg = p.Note
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555555">%s</text>`+"\n", svgLeft+10, plotTop+16, esc(msg))
	case p.Kind == PanelRoles:
		for i, s := range p.Series {
			ly := plotTop + i*laneHeight
			fmt.Fprintf(b, `<text x="10" y="%d">%s</text>`+"\n", ly+laneHeight/2+4, esc(s.Name))
			for _, pt := range s.Points {
				x0, x1 := ax.x(pt.At), ax.x(pt.At.Add(step))
				fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ly+3, math.Max(0.5, x1-x0), laneHeight-6, roleColors[pt.Value])
			}
		}
	default:
		hi := 0.0
		for _, s := range p.Series {
			for _, pt := range s.Points {
				hi = math.Max(hi, pt.Value)
			}
		}
		ystep, ymax := valueTicks(hi, p.Unit)
		y := func(v float64) float64 {
			return float64(plotBottom) - float64(plotH)*math.Max(0, math.Min(v, ymax))/ymax
		}
		for v := 0.0; v <= ymax+1e-9; v += ystep {
			fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", svgLeft, y(v), svgLeft+plotW, y(v))
			fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, y(v)+4, esc(formatValue(v, p.Unit)))
		}
		for si, s := range p.Series {
			// Identical lines (both HAProxy nodes agree) would hide each
			// other: each is nudged a pixel or so.
			off := (float64(si) - float64(len(p.Series)-1)/2) * 1.5
			y := func(v float64) float64 { return y(v) + off }
			dash := ""
			if s.Dashed {
				dash = ` stroke-dasharray="5,3"`
			}
			// A missing step is a gap in the line: Prometheus had nothing.
			// Each value holds until the next step, as a gauge does.
			for _, run := range runs(s.Points, step) {
				var pts bytes.Buffer
				for i, pt := range run {
					if i > 0 {
						fmt.Fprintf(&pts, " %.1f,%.1f ", ax.x(pt.At), y(run[i-1].Value))
					}
					fmt.Fprintf(&pts, "%.1f,%.1f", ax.x(pt.At), y(pt.Value))
				}
				last := run[len(run)-1]
				fmt.Fprintf(&pts, " %.1f,%.1f", ax.x(last.At.Add(step)), y(last.Value))
				fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"%s><title>%s</title></polyline>`+"\n", pts.String(), colors[s.Node], dash, esc(s.Name))
			}
		}
	}
	ax.ticks(b, plotBottom)
	for _, e := range evs {
		ex := ax.x(e.At)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,2"><title>%s</title></line>`+"\n",
			ex, plotTop, ex, plotBottom, eventColor(e.Kind), esc(fmt.Sprintf("%s %+.1fs: %s", e.Kind, e.At.Sub(ax.origin).Seconds(), e.Detail)))
	}
	b.WriteString("</g>\n")
}

// stepOf is the spacing of p's samples: the smallest gap between two.
func stepOf(p MetricPanel) time.Duration {
	step := time.Duration(0)
	for _, s := range p.Series {
		for i := 1; i < len(s.Points); i++ {
			if d := s.Points[i].At.Sub(s.Points[i-1].At); d > 0 && (step == 0 || d < step) {
				step = d
			}
		}
	}
	if step == 0 {
		return time.Second
	}
	return step
}

// runs splits points where a step is missing.
func runs(pts []Point, step time.Duration) [][]Point {
	var out [][]Point
	for i, p := range pts {
		if i == 0 || p.At.Sub(pts[i-1].At) > step*3/2 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], p)
	}
	return out
}

// valueTicks picks about four grid lines up to just above hi; bytes step
// in powers of two.
func valueTicks(hi float64, unit string) (step, top float64) {
	if hi <= 0 {
		hi = 1
	}
	if unit == "bytes" && hi >= 1024 {
		step = math.Pow(2, math.Ceil(math.Log2(hi/4)))
	} else {
		step = tickStep(hi * 10 / 4)
		if unit != "bytes" && step < 1 && hi >= 1 {
			step = 1
		}
	}
	top = math.Ceil(hi/step) * step
	if top < hi*1.05 {
		top += step
	}
	return step, top
}

// formatValue writes v in unit: bytes as B, KiB, MiB, GiB.
func formatValue(v float64, unit string) string {
	if unit != "bytes" {
		if unit == "" {
			return fmt.Sprintf("%g", v)
		}
		return fmt.Sprintf("%g %s", v, unit)
	}
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if math.Abs(v) < 1024 || u == "GiB" {
			return fmt.Sprintf("%g %s", math.Round(v*10)/10, u)
		}
		v /= 1024
	}
	return ""
}

// metricsSection writes a check's graphs, or the one line saying why
// there are none.
func metricsSection(b *strings.Builder, c Check) {
	m := c.Metrics
	if m == nil {
		return
	}
	if !m.HasData() {
		note := m.Note
		if note == "" {
			note = "Prometheus had no samples for the window"
		}
		fmt.Fprintf(b, "Metric graphs: none (%s).\n\n", md(strings.TrimSuffix(note, ".")))
		return
	}
	origin := m.Start
	if c.Timeline != nil {
		origin = c.Timeline.Start
	}
	rel := func(t time.Time) string { return fmt.Sprintf("%+.1f s", t.Sub(origin).Seconds()) }
	fmt.Fprintf(b, "### What Prometheus saw\n\n![%s: traffic and what Prometheus saw](%s)\n\n", md(c.Name), MetricsFile(c.Name))
	fmt.Fprintf(b, "From %s, every %s from %s to %s (times relative to the timeline's start).\n\n", md(m.Prometheus), m.Step, rel(m.Start), rel(m.End))
	for _, p := range m.Panels {
		fmt.Fprintf(b, "- **%s**: ", md(p.Title))
		switch {
		case p.Note != "":
			b.WriteString(md(p.Note))
		case len(p.Series) == 0:
			b.WriteString("no samples")
		case p.Kind == PanelRoles:
			b.WriteString(md(leaderStory(p, rel)))
		default:
			var parts []string
			for _, s := range p.Series {
				hi := 0.0
				for _, pt := range s.Points {
					hi = math.Max(hi, pt.Value)
				}
				parts = append(parts, fmt.Sprintf("%s max %s", s.Name, formatValue(math.Round(hi*10)/10, p.Unit)))
			}
			b.WriteString(md(strings.Join(parts, ", ")))
		}
		fmt.Fprintf(b, ". Query: `%s`\n", strings.Join(p.Queries, "` and `"))
	}
	b.WriteString("\n")
}

// leaderStory tells who led when, by patroni_master: "leader pg-1 +0.0 s
// to +5.0 s; none for 8.0 s; pg-2 +13.0 s to +30.0 s". Two members
// leading in one sample are named together.
func leaderStory(p MetricPanel, rel func(time.Time) string) string {
	step := stepOf(p)
	byTime := map[time.Time][]string{}
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if pt.Value == RoleLeader {
				byTime[pt.At] = append(byTime[pt.At], s.Name)
			}
		}
	}
	if len(byTime) == 0 {
		return "no member reported itself leader"
	}
	var times []time.Time
	for t := range byTime {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	who := func(t time.Time) string {
		n := byTime[t]
		sort.Strings(n)
		return strings.Join(n, " and ")
	}
	var parts []string
	cur, from, last := who(times[0]), times[0], times[0]
	flush := func() { parts = append(parts, fmt.Sprintf("%s %s to %s", cur, rel(from), rel(last))) }
	for _, t := range times[1:] {
		w := who(t)
		gap := t.Sub(last) > step*3/2
		if w == cur && !gap {
			last = t
			continue
		}
		flush()
		if gap {
			parts = append(parts, fmt.Sprintf("none for %.1f s", (t.Sub(last)-step).Seconds()))
		}
		cur, from, last = w, t, t
	}
	flush()
	return "leader " + strings.Join(parts, "; ")
}
