package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
)

// Chart geometry, in pixels.
const (
	chartWidth = 900
	chartLeft  = 200
	chartRight = 30
	chartRowH  = 30
	chartTop   = 52
	panelTitle = 26
	axisH      = 40
)

var kindColor = map[string]string{Switchover: "#1f5fbf", Kill: "#c0392b", PGCrash: "#d68910", Partition: "#8e44ad"}

// goalSeconds are the fast profile's timing goals, drawn as marks.
var goalSeconds = map[string]float64{Switchover: 2.5, Kill: 10, PGCrash: 5, Partition: 12}

// SVG draws the outage of every run as a dot, one row per profile and kind,
// with the median as a vertical bar and, for the goal profile, the goal as
// a dashed mark. Hand-written, so the page needs no charting dependency.
func SVG(r Result) []byte {
	type row struct {
		profile, kind string
		vals          []float64
	}
	var rows []row
	maxV := 0.0
	for _, p := range r.Profiles {
		for _, k := range Kinds() {
			vs := column(r.Select(p, k), func(t Trial) float64 { return t.Outage })
			if len(vs) == 0 {
				continue
			}
			rows = append(rows, row{p, k, vs})
			for _, v := range vs {
				if !math.IsNaN(v) && v > maxV {
					maxV = v
				}
			}
		}
	}
	for _, g := range goalSeconds {
		maxV = math.Max(maxV, g)
	}
	// A round axis end: the next multiple of 5 s.
	axisMax := math.Ceil(maxV/5) * 5
	if axisMax == 0 {
		axisMax = 5
	}
	plotW := float64(chartWidth - chartLeft - chartRight)
	x := func(v float64) float64 { return chartLeft + v/axisMax*plotW }

	height := chartTop + len(rows)*chartRowH + axisH
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("Write outage per run (s): switchover write gap, failover RTO; synchronous mode %s", onOff(r.Sync))))
	bottom := chartTop + len(rows)*chartRowH
	// Grid every 5 s (every second when the axis is short).
	step := 5.0
	if axisMax <= 10 {
		step = 1
	}
	for v := 0.0; v <= axisMax+1e-9; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#dddddd"/>`+"\n", x(v), chartTop, x(v), bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(v), bottom+16, v)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">seconds</text>`+"\n", x(axisMax/2), bottom+34)
	for i, rw := range rows {
		y := float64(chartTop + i*chartRowH + chartRowH/2)
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%d" width="%d" height="%d" fill="#f6f6f6"/>`+"\n", chartTop+i*chartRowH, chartLeft-4, chartRowH)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			chartLeft-10, y, esc(rw.profile+" · "+kindLabel[rw.kind]))
		if g, ok := goalSeconds[rw.kind]; ok && rw.profile == GoalProfile {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#2e7d32" stroke-width="2" stroke-dasharray="4,3"><title>%s</title></line>`+"\n",
				x(g), y-12, x(g), y+12, esc(fmt.Sprintf("goal %.1f s", g)))
		}
		s := Summarise(rw.vals)
		if s.N > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="3"><title>%s</title></line>`+"\n",
				x(s.Median), y-9, x(s.Median), y+9, esc(fmt.Sprintf("median %.2f s", s.Median)))
		}
		for j, v := range rw.vals {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s" fill-opacity="0.6"><title>%s</title></circle>`+"\n",
				x(v), y, kindColor[rw.kind], esc(fmt.Sprintf("run %d: %.2f s", j+1, v)))
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555555">dots: runs · black bar: median · dashed green: fast-profile goal</text>`+"\n", chartLeft, chartTop-12)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
