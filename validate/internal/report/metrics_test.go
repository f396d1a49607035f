package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sampleMetrics is a failover as Prometheus saw it, on sample()'s
// timeline (fault +4 s, promotion +6.5 s, restore +8 s, rejoin +9.5 s):
// pg-1 leads, is not scraped while killed, comes back a replica; pg-2
// takes over; HAProxy's primary backend is empty in between.
func sampleMetrics() *Metrics {
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	m := &Metrics{Prometheus: "https://10.42.3.10:9090", Start: sec(-2), End: sec(12), Step: time.Second}
	var pg1, pg2, pg3, lag2, lag3, tps1, tps2, hp, hr Points
	for s := -2; s <= 12; s++ {
		switch {
		case s < 4:
			pg1.add(sec(s), RoleLeader)
			tps1.add(sec(s), 20)
			lag2.add(sec(s), 512)
			lag3.add(sec(s), 2048)
		case s >= 9:
			pg1.add(sec(s), RoleReplica)
		}
		if s < 7 {
			pg2.add(sec(s), RoleReplica)
		} else {
			pg2.add(sec(s), RoleLeader)
			tps2.add(sec(s), 25)
			lag3.add(sec(s), 3<<20)
		}
		pg3.add(sec(s), RoleReplica)
		up := 1.0
		if s >= 4 && s < 8 {
			up = 0
		}
		hp.add(sec(s), up)
		hr.add(sec(s), 2)
	}
	m.Panels = []MetricPanel{
		{Name: "roles", Title: "Patroni role of each member", Kind: PanelRoles, Queries: []string{"patroni_master"},
			Series: []MetricSeries{{Name: "pg-1", Node: "pg-1", Points: pg1}, {Name: "pg-2", Node: "pg-2", Points: pg2}, {Name: "pg-3", Node: "pg-3", Points: pg3}}},
		{Name: "replication_lag", Title: "Replication lag", Kind: PanelLines, Unit: "bytes", Queries: []string{"lag"},
			Series: []MetricSeries{{Name: "pg-2", Node: "pg-2", Points: lag2}, {Name: "pg-3", Node: "pg-3", Points: lag3}}},
		{Name: "tps", Title: "Transactions per second", Kind: PanelLines, Unit: "tx/s", Queries: []string{"tps"},
			Series: []MetricSeries{{Name: "pg-1", Node: "pg-1", Points: tps1}, {Name: "pg-2", Node: "pg-2", Points: tps2}}},
		{Name: "haproxy_servers", Title: "HAProxy servers up", Kind: PanelLines, Queries: []string{"haproxy"},
			Series: []MetricSeries{{Name: "haproxy-1 primary", Node: "haproxy-1", Points: hp},
				{Name: "haproxy-1 replicas", Node: "haproxy-1", Dashed: true, Points: hr}}},
	}
	return m
}

// Points builds a series' points.
type Points []Point

func (p *Points) add(at time.Time, v float64) { *p = append(*p, Point{At: at, Value: v}) }

func failoverWithMetrics() *Report {
	r := sample()
	for i := range r.Checks {
		if r.Checks[i].Name == "failover" {
			r.Checks[i].Metrics = sampleMetrics()
			// The last mark at the very end of the window: its label must
			// still fit.
			r.Checks[i].Timeline.Events = append(r.Checks[i].Timeline.Events,
				Event{At: t0.Add(12 * time.Second), Kind: "healthy", Detail: "1+2 again"})
		}
	}
	return r
}

// svgMark is an event's vertical mark in a metric panel.
type svgMark struct {
	panel string
	x     float64
	title string
}

// metricMarks reads every titled <line> (an event's mark) inside the
// metric panels' groups, in document order.
func metricMarks(t *testing.T, svg []byte) []svgMark {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var out []svgMark
	var group string
	var cur *svgMark
	inTitle := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		switch tk := tok.(type) {
		case xml.StartElement:
			switch tk.Name.Local {
			case "g":
				for _, a := range tk.Attr {
					if a.Name.Local == "id" {
						group = a.Value
					}
				}
			case "line":
				if strings.HasPrefix(group, "metric-") {
					cur = &svgMark{panel: group}
					for _, a := range tk.Attr {
						if a.Name.Local == "x1" {
							cur.x, _ = strconv.ParseFloat(a.Value, 64)
						}
					}
				}
			case "title":
				inTitle = true
			}
		case xml.CharData:
			if inTitle && cur != nil {
				cur.title += string(tk)
			}
		case xml.EndElement:
			switch tk.Name.Local {
			case "title":
				inTitle = false
			case "line":
				if cur != nil && cur.title != "" {
					out = append(out, *cur)
				}
				cur = nil
			}
		}
	}
}

func TestMetricsSVG(t *testing.T) {
	r := failoverWithMetrics()
	c, ok := r.Check("failover")
	require.True(t, ok)
	svg := MetricsSVG(c, r.ClusterName)
	texts, counts := parseSVG(t, svg)
	require.NoError(t, xml.Unmarshal(svg, new(struct{})), "one root element")

	var all []string
	for _, tx := range texts {
		all = append(all, tx.text)
		left, right := tx.box()
		assert.GreaterOrEqual(t, left, 0.0, "%q starts left of the picture", tx.text)
		assert.LessOrEqual(t, right, float64(svgWidth), "%q runs past the right edge", tx.text)
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"writes :5000", "fault +4.0s", "promotion +6.5s", "healthy +12.0s", // the traffic and its marks
		"Patroni role of each member", "Replication lag", "Transactions per second", "HAProxy servers up",
		"pg-1", "pg-2", "pg-3", "haproxy-1 primary", "haproxy-1 replicas", // legends and lanes
		"3 MiB", "-2s", "0s", "12s", // value and time axes
	} {
		assert.Contains(t, all, want, "the picture shows %q; it has:\n%s", want, joined)
	}
	// One line per unbroken run: pg-2's lag stops at the promotion, the
	// TPS lines meet no gap; the leader lanes are bars.
	assert.Equal(t, 7, counts["polyline"], "lag pg-2, lag pg-3 (two runs), tps pg-1, tps pg-2, haproxy primary, haproxy replicas")
	assert.Contains(t, string(svg), `stroke-dasharray="5,3"><title>haproxy-1 replicas</title>`, "the replicas backend is dashed")

	// Every metric panel marks the events, in time order, at the traffic
	// timeline's positions.
	marks := metricMarks(t, svg)
	byPanel := map[string][]svgMark{}
	for _, m := range marks {
		byPanel[m.panel] = append(byPanel[m.panel], m)
	}
	require.Len(t, byPanel, 4)
	ax := metricsAxis(c.Metrics, c.Timeline)
	for panel, ms := range byPanel {
		require.Len(t, ms, 5, panel)
		for i, kind := range []string{"fault", "promotion", "restore", "rejoin", "healthy"} {
			assert.True(t, strings.HasPrefix(ms[i].title, kind+" "), "%s: mark %d is %q", panel, i, ms[i].title)
			if i > 0 {
				assert.Greater(t, ms[i].x, ms[i-1].x, "%s: marks in time order", panel)
			}
		}
		assert.InDelta(t, ax.x(t0.Add(4*time.Second)), ms[0].x, 0.06, "the fault's mark is where the timeline has it")
	}
}

func TestMetricsLeaderLanes(t *testing.T) {
	r := failoverWithMetrics()
	c, _ := r.Check("failover")
	svg := string(MetricsSVG(c, r.ClusterName))
	start := strings.Index(svg, `<g id="metric-roles">`)
	require.GreaterOrEqual(t, start, 0)
	roles := svg[start : start+strings.Index(svg[start:], "</g>")]
	// pg-1 leads 6 steps (-2..3 s), pg-2 6 steps (7..12 s).
	assert.Equal(t, 6+6+1, strings.Count(roles, `fill="`+roleColors[RoleLeader]+`"`), "leader bars, plus the legend's swatch")
}

func TestMetricsMarkdownAndFiles(t *testing.T) {
	r := failoverWithMetrics()
	r.Checks = append(r.Checks, Check{Name: "scenario:leader-kill", Verdict: Pass, Timeline: &Timeline{Check: "scenario:leader-kill", Start: t0, End: t0.Add(time.Second)},
		Metrics: &Metrics{Note: "Prometheus at https://10.42.3.10:9090 did not answer: connection refused."}})
	md := r.Markdown()
	for _, want := range []string{
		"### What Prometheus saw",
		"![failover: traffic and what Prometheus saw](metrics-failover.svg)",
		"every 1s from -2.0 s to +12.0 s",
		"- **Patroni role of each member**: leader pg-1 -2.0 s to +3.0 s; none for 3.0 s; pg-2 +7.0 s to +12.0 s.",
		"- **Replication lag**: pg-2 max 512 B, pg-3 max 3 MiB. Query: `lag`",
		"Metric graphs: none (Prometheus at https://10.42.3.10:9090 did not answer: connection refused).",
	} {
		assert.Contains(t, md, want)
	}
	// The graphs come after the check's timeline.
	assert.Less(t, strings.Index(md, "### Timeline"), strings.Index(md, "### What Prometheus saw"))

	dir := t.TempDir()
	require.NoError(t, r.WriteDir(dir))
	_, err := os.Stat(filepath.Join(dir, "metrics-failover.svg"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, MetricsFile("scenario:leader-kill")))
	require.True(t, os.IsNotExist(err), "no picture without samples")
	assert.Equal(t, "metrics-scenario-leader-kill.svg", MetricsFile("scenario:leader-kill"))

	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	require.NoError(t, err)
	var back Report
	require.NoError(t, json.Unmarshal(b, &back))
	c, _ := back.Check("failover")
	require.True(t, c.Metrics.HasData())
	assert.Equal(t, RoleLeader, int(c.Metrics.Panels[0].Series[1].Points[14].Value))
}

func TestLeaderStoryTwoLeaders(t *testing.T) {
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	lane := func(vs ...float64) Points {
		var p Points
		for i, v := range vs {
			p.add(sec(i), v)
		}
		return p
	}
	p := MetricPanel{Kind: PanelRoles, Series: []MetricSeries{
		{Name: "pg-1", Points: lane(RoleLeader, RoleLeader, RoleReplica)},
		{Name: "pg-2", Points: lane(RoleReplica, RoleLeader, RoleLeader)},
	}}
	rel := func(t time.Time) string { return strconv.Itoa(int(t.Sub(t0).Seconds())) }
	assert.Equal(t, "leader pg-1 0 to 0; pg-1 and pg-2 1 to 1; pg-2 2 to 2", leaderStory(p, rel))
}

func TestValueAxis(t *testing.T) {
	for _, c := range []struct {
		hi   float64
		unit string
		top  string
	}{{0, "", "2"}, {2, "", "3"}, {3 << 20, "bytes", "4 MiB"}, {25, "tx/s", "30 tx/s"}, {700, "bytes", "800 B"}} {
		step, top := valueTicks(c.hi, c.unit)
		assert.Greater(t, step, 0.0)
		assert.GreaterOrEqual(t, top, c.hi*1.05)
		assert.Equal(t, c.top, formatValue(top, c.unit), "hi %g", c.hi)
	}
}
