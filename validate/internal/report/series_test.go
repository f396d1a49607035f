package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lagSeries() *Series {
	s := &Series{Check: "backup", Name: "archive_lag", Title: "archive lag (RPO) under the validate writer", Unit: "s",
		Start: t0, End: t0.Add(90 * time.Second), BoundNote: "lower bound: nothing written in the window was archived yet",
		Refs:   []Ref{{Value: 60, Label: "archive_timeout 60 s"}},
		Events: []Event{{At: t0.Add(89500 * time.Millisecond), Kind: "failure", Detail: "archive-push failed"}}}
	for i := 0; i <= 360; i++ {
		v := float64(i%260) * 0.25
		s.Points = append(s.Points, Point{At: t0.Add(time.Duration(i) * 250 * time.Millisecond), Value: v, Bound: i < 4})
	}
	return s
}

// svgText is a <text> element of the chart: where it is anchored and what
// it says.
type svgText struct {
	x, y   float64
	anchor string
	text   string
	size   float64
	bold   bool
}

// box is the text's horizontal extent, measured as the renderer measures
// (DejaVu Sans advances; bold about 10 % wider).
func (tx svgText) box() (left, right float64) {
	w := textWidth(tx.text, tx.size)
	if tx.bold {
		w *= 1.1
	}
	switch tx.anchor {
	case "end":
		return tx.x - w, tx.x
	case "middle":
		return tx.x - w/2, tx.x + w/2
	}
	return tx.x, tx.x + w
}

func parseSVG(t *testing.T, svg []byte) (texts []svgText, counts map[string]int) {
	t.Helper()
	counts = map[string]int{}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var cur *svgText
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "timeline.svg must be well-formed XML")
		switch tk := tok.(type) {
		case xml.StartElement:
			counts[tk.Name.Local]++
			if tk.Name.Local == "text" {
				cur = &svgText{anchor: "start", size: labelSize}
				for _, a := range tk.Attr {
					switch a.Name.Local {
					case "x":
						cur.x, err = strconv.ParseFloat(a.Value, 64)
						require.NoError(t, err)
					case "y":
						cur.y, err = strconv.ParseFloat(a.Value, 64)
						require.NoError(t, err)
					case "text-anchor":
						cur.anchor = a.Value
					case "font-size":
						cur.size, err = strconv.ParseFloat(a.Value, 64)
						require.NoError(t, err)
					case "font-weight":
						cur.bold = a.Value == "bold"
					}
				}
			}
			if tk.Name.Local == "title" {
				depth++
			}
		case xml.EndElement:
			if tk.Name.Local == "title" {
				depth--
			}
			if tk.Name.Local == "text" && cur != nil {
				texts = append(texts, *cur)
				cur = nil
			}
		case xml.CharData:
			if cur != nil && depth == 0 {
				cur.text += string(tk)
			}
		}
	}
	return texts, counts
}

// TestSVGLabelsStayInside checks every label's extent, measured with
// DejaVu Sans's advances, against the picture's edges: the traffic
// timeline's last event (rejoin at 95 % of the span) and the series' event
// at its very end used to run past the right edge.
func TestSVGLabelsStayInside(t *testing.T) {
	r := sample()
	r.Checks = append(r.Checks, Check{Name: "backup", Verdict: Pass, Series: []*Series{lagSeries()}})
	svg, err := r.SVG()
	require.NoError(t, err)
	texts, _ := parseSVG(t, svg)
	var sawRejoin, sawFailure bool
	for _, tx := range texts {
		left, right := tx.box()
		assert.GreaterOrEqual(t, left, 0.0, "%q starts left of the picture", tx.text)
		assert.LessOrEqual(t, right, float64(svgWidth), "%q runs past the right edge", tx.text)
		if strings.HasPrefix(tx.text, "rejoin +9.5s") {
			sawRejoin = true
			assert.Equal(t, "end", tx.anchor, "the last label goes left of its mark")
		}
		if strings.HasPrefix(tx.text, "failure +89.5s") {
			sawFailure = true
		}
	}
	assert.True(t, sawRejoin, "the rejoin label is drawn")
	assert.True(t, sawFailure, "the series' event label is drawn")
}

func TestSeriesPanel(t *testing.T) {
	r := &Report{ClusterName: "lab", Checks: []Check{{Name: "backup", Verdict: Pass, Series: []*Series{lagSeries()}}}}
	svg, err := r.SVG()
	require.NoError(t, err)
	texts, counts := parseSVG(t, svg)
	assert.Equal(t, 1, counts["polyline"], "the lag is one line")
	assert.Equal(t, 4, counts["circle"], "one hollow dot per lower bound")
	s := string(svg)
	assert.Contains(t, s, `id="series-backup-archive_lag"`)
	assert.NotContains(t, s, "No destructive check ran", "a series is something to draw")
	var labels []string
	for _, tx := range texts {
		labels = append(labels, tx.text)
	}
	assert.Contains(t, labels, "backup: archive lag (RPO) under the validate writer")
	assert.Contains(t, labels, "archive_timeout 60 s", "the reference line is labelled")
	assert.Contains(t, labels, "0 s", "the value axis starts at zero")
	assert.Contains(t, labels, "90s", "the time axis reaches the window's end")
	// The reference line sits at 60 on a scale that holds the highest
	// value (64.75 s) and 60.
	var top float64
	for _, l := range labels {
		if v, ok := strings.CutSuffix(l, " s"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f > top {
				top = f
			}
		}
	}
	assert.GreaterOrEqual(t, top, 64.75)
	assert.Less(t, top, 100.0)
}

func TestSeriesInMarkdownAndJSON(t *testing.T) {
	r := &Report{ClusterName: "lab", Checks: []Check{{Name: "backup", Verdict: Pass, Series: []*Series{lagSeries()}}}}
	r.Finish(t0)
	md := r.Markdown()
	assert.Contains(t, md, "### archive lag (RPO) under the validate writer")
	assert.Contains(t, md, "361 samples from 03:04:05.000 over 90.0 s")
	assert.Contains(t, md, "reference line: archive_timeout 60 s")
	assert.Contains(t, md, "4 of them are lower bounds")
	assert.Contains(t, md, "![sampled over time](timeline.svg)")
	b, err := r.JSON()
	require.NoError(t, err)
	var back Report
	require.NoError(t, json.Unmarshal(b, &back))
	require.Len(t, back.AllSeries(), 1)
	s := back.AllSeries()[0]
	assert.Len(t, s.Points, 361)
	assert.True(t, s.Points[0].Bound)
	assert.False(t, s.Points[4].Bound)
	assert.Equal(t, 60.0, s.Refs[0].Value)
}
