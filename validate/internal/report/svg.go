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
	start, end := tl.Start, tl.End
	for _, ops := range [][]history.Op{tl.Writes, tl.Reads} {
		for _, o := range ops {
			if o.End.After(end) {
				end = o.End
			}
		}
	}
	span := end.Sub(start).Seconds()
	if span <= 0 {
		span = 1
	}
	plotW := float64(svgWidth - svgLeft - svgRight)
	x := func(t time.Time) float64 {
		v := svgLeft + plotW*t.Sub(start).Seconds()/span
		return math.Max(svgLeft, math.Min(svgLeft+plotW, v))
	}
	fmt.Fprintf(b, `<g id="%s">`+"\n", esc("timeline-"+tl.Check))
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
			x0, x1 := x(o.Start), x(o.End)
			w := math.Max(1, x1-x0)
			color := "#2e9e4f"
			if !o.OK {
				color = "#d9412b"
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, ry+4, w, rowHeight-8, color)
		}
	}
	axisY := rowsTop + 2*rowHeight + 4
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", svgLeft, axisY, svgLeft+plotW, axisY)
	step := tickStep(span)
	for s := 0.0; s <= span+1e-9; s += step {
		tx := svgLeft + plotW*s/span
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", tx, axisY, tx, axisY+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", tx, axisY+16, esc(fmt.Sprintf("%gs", s)))
	}
	evs := append([]Event(nil), tl.Events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	for i, e := range evs {
		ex := x(e.At)
		color := eventColors[e.Kind]
		if color == "" {
			color = "#555555"
		}
		ly := top + 24 + (i%3)*12
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,2"/>`+"\n", ex, ly+2, ex, axisY, color)
		eventLabel(b, ex, float64(ly), color, fmt.Sprintf("%s +%.1fs", e.Kind, e.At.Sub(start).Seconds()), e.Detail)
	}
	b.WriteString("</g>\n")
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
