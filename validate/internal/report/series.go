package report

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

// Series is one quantity a check sampled over a window, drawn as a line
// panel of the timeline chart below the traffic panels: the archive lag of
// the backup check, say, with archive_timeout as a reference line.
type Series struct {
	Check string    `json:"check"`
	Name  string    `json:"name"` // machine name, e.g. archive_lag
	Title string    `json:"title"`
	Unit  string    `json:"unit"` // of the values, e.g. s
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Points in time order.
	Points []Point `json:"points"`
	// Refs are horizontal reference lines: a bound the values should stay
	// under, say.
	Refs []Ref `json:"refs,omitempty"`
	// Events are marked as on a traffic timeline.
	Events []Event `json:"events,omitempty"`
	// BoundNote explains the points marked Bound (drawn hollow).
	BoundNote string `json:"boundNote,omitempty"`
}

// Point is one sample of a Series.
type Point struct {
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
	// Bound marks a value known only as a lower bound.
	Bound bool `json:"bound,omitempty"`
}

// Ref is a reference line of a Series.
type Ref struct {
	Value float64 `json:"value"`
	Label string  `json:"label"`
}

// AllSeries returns the checks' series in check order.
func (r *Report) AllSeries() []*Series {
	var out []*Series
	for _, c := range r.Checks {
		out = append(out, c.Series...)
	}
	return out
}

// Series panel geometry, in pixels.
const (
	seriesTitle = 22  // the panel's title line
	seriesPlotH = 150 // the plot area
	seriesAxis  = 26  // the time axis and its labels below the plot
	seriesH     = seriesTitle + 14 + seriesPlotH + seriesAxis
)

// seriesPanel draws s with its top edge at top: the values as a line over
// time, each a dot (hollow when only a lower bound), the reference lines
// dashed with their labels inside the plot, the events as marks.
func seriesPanel(b *bytes.Buffer, s *Series, top int) {
	start, end := s.Start, s.End
	for _, p := range s.Points {
		if start.IsZero() || p.At.Before(start) {
			start = p.At
		}
		if p.At.After(end) {
			end = p.At
		}
	}
	span := end.Sub(start).Seconds()
	if span <= 0 {
		span = 1
	}
	hi := 0.0
	for _, p := range s.Points {
		hi = math.Max(hi, p.Value)
	}
	for _, r := range s.Refs {
		hi = math.Max(hi, r.Value)
	}
	ystep := tickStep(math.Max(hi*1.1, 1) * 2) // about five ticks
	ymax := math.Ceil(math.Max(hi*1.1, 1)/ystep) * ystep
	plotW := float64(svgWidth - svgLeft - svgRight)
	plotTop := top + seriesTitle + 14
	plotBottom := plotTop + seriesPlotH
	x := func(t time.Time) float64 {
		v := svgLeft + plotW*t.Sub(start).Seconds()/span
		return math.Max(svgLeft, math.Min(svgLeft+plotW, v))
	}
	y := func(v float64) float64 {
		return float64(plotBottom) - float64(seriesPlotH)*math.Max(0, math.Min(v, ymax))/ymax
	}
	fmt.Fprintf(b, `<g id="%s">`+"\n", esc("series-"+s.Check+"-"+s.Name))
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", top+12, esc(s.Check+": "+s.Title))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f7f7f7"/>`+"\n", svgLeft, plotTop, plotW, seriesPlotH)
	// Value axis: grid lines and labels left of the plot.
	for v := 0.0; v <= ymax+1e-9; v += ystep {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>`+"\n", svgLeft, y(v), svgLeft+plotW, y(v))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, y(v)+4, esc(fmt.Sprintf("%g %s", v, s.Unit)))
	}
	// Time axis.
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", svgLeft, plotBottom, svgLeft+plotW, plotBottom)
	step := tickStep(span)
	for t := 0.0; t <= span+1e-9; t += step {
		tx := svgLeft + plotW*t/span
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", tx, plotBottom, tx, plotBottom+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", tx, plotBottom+16, esc(fmt.Sprintf("%gs", t)))
	}
	for _, r := range s.Refs {
		ry := y(r.Value)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d68910" stroke-width="1.5" stroke-dasharray="6,3"/>`+"\n", svgLeft, ry, svgLeft+plotW, ry)
		// Inside the plot, right-aligned, just above the line (below it
		// when the line is at the top).
		ly := ry - 4
		if ly < float64(plotTop)+12 {
			ly = ry + 13
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#9a6408">%s</text>`+"\n", svgLeft+plotW-4, ly, esc(r.Label))
	}
	for i, e := range s.Events {
		ex := x(e.At)
		color := eventColors[e.Kind]
		if color == "" {
			color = "#c0392b"
		}
		ly := top + seriesTitle + (i%2)*11
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4,2"/>`+"\n", ex, ly+2, ex, plotBottom, color)
		eventLabel(b, ex, float64(ly), color, fmt.Sprintf("%s +%.1fs", e.Kind, e.At.Sub(start).Seconds()), e.Detail)
	}
	if len(s.Points) > 0 {
		var pts bytes.Buffer
		for i, p := range s.Points {
			if i > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", x(p.At), y(p.Value))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>`+"\n", pts.String())
		for _, p := range s.Points {
			if p.Bound {
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#ffffff" stroke="#1f5fbf"/>`+"\n", x(p.At), y(p.Value))
			}
		}
	} else {
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", svgLeft+10, plotTop+20, esc("no samples"))
	}
	if s.BoundNote != "" {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555555">%s</text>`+"\n", svgLeft, plotBottom+seriesAxis+2, esc("○ "+s.BoundNote))
	}
	b.WriteString("</g>\n")
}

// dejaVuWidths are the advances of printable ASCII (from the space) in
// DejaVu Sans, the sans-serif most Linux systems render with and wider
// than Arial or Helvetica, in ems: a label measured with them fits in
// the common fonts.
var dejaVuWidths = [95]float64{
	0.318, 0.401, 0.460, 0.838, 0.636, 0.950, 0.780, 0.275, 0.390, 0.390, 0.500, 0.838, 0.318, 0.361, 0.318, 0.337,
	0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.337, 0.337, 0.838, 0.838, 0.838, 0.531,
	1.000, 0.684, 0.686, 0.698, 0.770, 0.632, 0.575, 0.775, 0.752, 0.295, 0.295, 0.656, 0.557, 0.863, 0.748, 0.787,
	0.603, 0.787, 0.695, 0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685, 0.390, 0.337, 0.390, 0.838, 0.500,
	0.500, 0.613, 0.635, 0.550, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278, 0.278, 0.579, 0.278, 0.974, 0.634, 0.612,
	0.635, 0.635, 0.411, 0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525, 0.636, 0.337, 0.636, 0.838,
}

// textWidth is the width of s at size px, with a 5 % margin; characters
// beyond ASCII count as a full em.
func textWidth(s string, size float64) float64 {
	w := 0.0
	for _, r := range s {
		if r >= ' ' && r <= '~' {
			w += dejaVuWidths[r-' ']
		} else {
			w += 1
		}
	}
	return 1.05 * w * size
}

// labelSize is the picture's font size (the svg element's font-size).
const labelSize = 11

// eventLabel writes label next to a mark at x: to its right, or, when
// that would run past the picture's right edge, to its left, so the whole
// label is always inside the picture.
func eventLabel(b *bytes.Buffer, x, y float64, color, label, title string) {
	w := textWidth(label, labelSize)
	if x+3+w > svgWidth-2 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" fill="%s" text-anchor="end"><title>%s</title>%s</text>`+"\n", math.Max(x-3, w+2), y, color, esc(title), esc(label))
		return
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.0f" fill="%s"><title>%s</title>%s</text>`+"\n", x+3, y, color, esc(title), esc(label))
}
