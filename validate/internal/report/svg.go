package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
)

// SVG geometry, in pixels.
const (
	svgWidth   = 1100
	svgLeft    = 90
	svgRight   = 20
	rowHeight  = 26
	labelSpace = 54 // room above the rows for event labels
	panelGap   = 36
)

var eventColors = map[string]string{
	"switchover": "#1f5fbf",
	"fault":      "#c0392b",
	"promotion":  "#8e44ad",
	"restore":    "#d68910",
	"rejoin":     "#117a65",
	"resumed":    "#2e7d32",
}

// SVG renders every timeline as one panel: a row of writes and a row of
// reads, each operation a bar from its start to its end (green acknowledged,
// red failed), with vertical marks for the events; then every series as a
// line panel (see seriesPanel). Hand-written, so the report needs no
// charting dependency.
func (r *Report) SVG() ([]byte, error) {
	tls, series := r.Timelines(), r.AllSeries()
	var b bytes.Buffer
	panelH := labelSpace + 2*rowHeight + 8 + 24
	height := 40 + len(tls)*(panelH+panelGap) + len(series)*(seriesH+panelGap)
	if len(tls) == 0 && len(series) == 0 {
		height = 80
	}
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	what := "write and read success over time"
	if len(tls) == 0 && len(series) > 0 {
		what = "sampled over time"
	}
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("pgha validate — %s — %s", r.ClusterName, what)))
	if len(tls) == 0 && len(series) == 0 {
		fmt.Fprintf(&b, `<text x="10" y="50">%s</text>`+"\n", esc("No destructive check ran, so there is no traffic timeline."))
	}
	y := 40
	for _, tl := range tls {
		panel(&b, tl, y)
		y += panelH + panelGap
	}
	for _, s := range series {
		seriesPanel(&b, s, y)
		y += seriesH + panelGap
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

func panel(b *bytes.Buffer, tl *Timeline, top int) {
	trafficPanel(b, tl, top, timelineAxis(tl), "timeline-"+tl.Check)
}

// timelineAxis spans a timeline from its start to its last operation's end.
func timelineAxis(tl *Timeline) timeAxis {
	end := tl.End
	for _, ops := range [][]history.Op{tl.Writes, tl.Reads} {
		for _, o := range ops {
			if o.End.After(end) {
				end = o.End
			}
		}
	}
	return timeAxis{origin: tl.Start, from: tl.Start, to: end}
}

// timeAxis maps instants from..to onto the plot's width. Ticks count
// seconds from origin, the timeline's start, as report.md's tables do, so
// one instant has one label in every picture.
type timeAxis struct{ origin, from, to time.Time }

func (a timeAxis) span() float64 {
	if s := a.to.Sub(a.from).Seconds(); s > 0 {
		return s
	}
	return 1
}

func (a timeAxis) plotW() float64 { return float64(svgWidth - svgLeft - svgRight) }

// x is t's position, clamped to the plot.
func (a timeAxis) x(t time.Time) float64 {
	v := svgLeft + a.plotW()*t.Sub(a.from).Seconds()/a.span()
	return math.Max(svgLeft, math.Min(svgLeft+a.plotW(), v))
}

// ticks draws the axis line at y and a labelled tick every round number
// of seconds from origin.
func (a timeAxis) ticks(b *bytes.Buffer, y int) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", svgLeft, y, svgLeft+a.plotW(), y)
	step := tickStep(a.span())
	off := a.from.Sub(a.origin).Seconds()
	for k := math.Ceil(off/step - 1e-9); k*step <= off+a.span()+1e-9; k++ {
		s := k * step
		tx := svgLeft + a.plotW()*(s-off)/a.span()
		if math.Abs(s) < 1e-9 {
			s = 0 // no "-0s"
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", tx, y, tx, y+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", tx, y+16, esc(fmt.Sprintf("%gs", s)))
	}
}

// trafficPanel draws a timeline's writes and reads on ax, with its events
// marked and labelled above the rows.
func trafficPanel(b *bytes.Buffer, tl *Timeline, top int, ax timeAxis, id string) {
	plotW := ax.plotW()
	fmt.Fprintf(b, `<g id="%s">`+"\n", esc(id))
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", top+12, esc(tl.Check))
	rowsTop := top + labelSpace
	rows := []struct {
		name string
		ops  []history.Op
	}{{"writes :5000", tl.Writes}, {"reads :5001", tl.Reads}}
	for i, row := range rows {
		ry := rowsTop + i*rowHeight
		fmt.Fprintf(b, `<text x="10" y="%d">%s</text>`+"\n", ry+rowHeight/2+4, esc(row.name))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f2f2f2"/>`+"\n", svgLeft, ry+2, plotW, rowHeight-4)
		for _, o := range row.ops {
			x0, x1 := ax.x(o.Start), ax.x(o.End)
			w := math.Max(1, x1-x0)
			color := "#2e9e4f"
			if !o.OK {
				color = "#d9412b"
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ry+4, w, rowHeight-8, color)
		}
	}
	axisY := rowsTop + 2*rowHeight + 4
	ax.ticks(b, axisY)
	for i, e := range sortedEvents(tl.Events) {
		ex := ax.x(e.At)
		color := eventColor(e.Kind)
		ly := top + 24 + (i%3)*12
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,2"/>`+"\n", ex, ly+2, ex, axisY, color)
		eventLabel(b, ex, float64(ly), color, fmt.Sprintf("%s %+.1fs", e.Kind, e.At.Sub(ax.origin).Seconds()), e.Detail)
	}
	b.WriteString("</g>\n")
}

func sortedEvents(evs []Event) []Event {
	out := append([]Event(nil), evs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func eventColor(kind string) string {
	if c := eventColors[kind]; c != "" {
		return c
	}
	return "#555555"
}

// tickStep picks 1, 2, 5 × 10^n seconds for about ten ticks.
func tickStep(span float64) float64 {
	raw := span / 10
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
