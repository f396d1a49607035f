package promgraph

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/report"
)

// The scrape jobs of the cluster's Prometheus.
const (
	JobPatroni  = "patroni"
	JobPostgres = "postgres"
	JobHAProxy  = "haproxy"
)

// Request is the window to graph.
type Request struct {
	From, To time.Time
	// Step between evaluations (default 1 s).
	Step time.Duration
	// Database is the one whose transactions are counted (the
	// application's, which validate's traffic writes to).
	Database string
	// Nodes names the node behind each address, for targets without a
	// node label.
	Nodes map[string]string
	// MaxSettle bounds the wait for the scrapes that cover To (default
	// 15 s).
	MaxSettle time.Duration
}

// Panel queries. Each is evaluated at every step; %s is the rate window.
var (
	qMaster  = `patroni_master{job="patroni"}`
	qRunning = `patroni_postgres_running{job="patroni"}`
	// Replication lag from Patroni's own view on every member: the
	// leader's WAL position (max over members, since the others report 0)
	// minus each running replica's replayed position. It is robust across
	// a leader change: a failed scrape ends the old leader's series at once
	// (a staleness marker), the new leader's appears after its promotion,
	// and a replica that is down or not yet streaming still has its own
	// series, where the leader's pg_stat_replication (postgres_exporter)
	// would simply lose the row exactly when it matters. The two positions
	// come from two scrapes up to an interval apart, so a negative lag is
	// clamped to 0.
	qLag = `clamp_min(max(patroni_xlog_location{job="patroni"}) - on() group_right() ` +
		`(patroni_xlog_replayed_location{job="patroni"} > 0 and on(instance) patroni_replica{job="patroni"} == 1), 0)`
	// irate: the last two samples in the window, so an outage shows at
	// its real edges rather than smoothed over the window.
	qTPS = `sum by (instance, node) (irate(pg_stat_database_xact_commit{job="postgres",datname=%q}[%s])` +
		` + irate(pg_stat_database_xact_rollback{job="postgres",datname=%q}[%s]))`
	qHAProxy = `haproxy_backend_active_servers{job="haproxy",proxy=~"primary|replicas"}`
	// qSamples gives the raw scrape times of the last 30 s.
	qSamples = `up{job=~"patroni|postgres|haproxy"}[30s]`
)

// Collect asks Prometheus for the panels over the window. It never fails:
// what went wrong is the Metrics' Note, or a panel's.
func Collect(ctx context.Context, c *Client, rq Request) *report.Metrics {
	if rq.Step <= 0 {
		rq.Step = time.Second
	}
	if rq.MaxSettle <= 0 {
		rq.MaxSettle = 15 * time.Second
	}
	m := &report.Metrics{Prometheus: c.BaseURL, Start: rq.From, End: rq.To, Step: rq.Step}
	interval, err := ScrapeInterval(ctx, c)
	if err != nil {
		m.Note = fmt.Sprintf("Prometheus at %s did not answer: %v", c.BaseURL, err)
		return m
	}
	if interval == 0 {
		m.Note = fmt.Sprintf("Prometheus at %s scraped none of the jobs patroni, postgres, haproxy in the last 30 s", c.BaseURL)
		return m
	}
	// The scrape that covers To lands up to an interval later.
	if d := time.Until(rq.To.Add(interval + time.Second)); d > 0 {
		if err := wait.Sleep(ctx, min(d, rq.MaxSettle)); err != nil {
			m.Note = "not collected: interrupted"
			return m
		}
	}
	window := (4 * interval).Round(time.Second)
	if window < 4*time.Second {
		window = 4 * time.Second
	}
	get := func(q string) ([]report.MetricSeries, error) {
		r, err := c.QueryRange(ctx, q, rq.From, rq.To, rq.Step)
		if err != nil {
			return nil, err
		}
		return toSeries(r, rq.Nodes), nil
	}

	roles := report.MetricPanel{Name: "roles", Title: "Patroni role of each member", Kind: report.PanelRoles,
		Queries: []string{qMaster, qRunning}}
	master, err1 := get(qMaster)
	running, err2 := get(qRunning)
	if err := errors.Join(err1, err2); err != nil {
		roles.Note = err.Error()
	} else {
		roles.Series = Roles(master, running)
	}

	lag := report.MetricPanel{Name: "replication_lag", Title: "Replication lag: WAL each replica has not replayed yet",
		Kind: report.PanelLines, Unit: "bytes", Queries: []string{qLag}}
	lag.Series, err = get(qLag)
	if err != nil {
		lag.Note = err.Error()
	}

	w := window.String()
	tpsQ := fmt.Sprintf(qTPS, rq.Database, w, rq.Database, w)
	tps := report.MetricPanel{Name: "tps", Title: fmt.Sprintf("Transactions per second in database %s (commits + rollbacks)", rq.Database),
		Kind: report.PanelLines, Unit: "tx/s", Queries: []string{tpsQ}}
	tps.Series, err = get(tpsQ)
	if err != nil {
		tps.Note = err.Error()
	}

	hap := report.MetricPanel{Name: "haproxy_servers", Title: "HAProxy servers up per backend (primary solid, replicas dashed)",
		Kind: report.PanelLines, Unit: "", Queries: []string{qHAProxy}}
	r, err := c.QueryRange(ctx, qHAProxy, rq.From, rq.To, rq.Step)
	if err != nil {
		hap.Note = err.Error()
	} else {
		hap.Series = haproxySeries(r, rq.Nodes)
	}

	m.Panels = []report.MetricPanel{roles, lag, tps, hap}
	if !m.HasData() {
		var notes []string
		for _, p := range m.Panels {
			if p.Note != "" {
				notes = append(notes, p.Note)
			}
		}
		m.Note = fmt.Sprintf("Prometheus at %s had no samples of the cluster from %s to %s", c.BaseURL,
			rq.From.UTC().Format("15:04:05"), rq.To.UTC().Format("15:04:05"))
		if len(notes) > 0 {
			m.Note += ": " + strings.Join(notes, "; ")
		}
	}
	return m
}

// ScrapeInterval is the median time between two scrapes of the cluster's
// targets over the last 30 s, from the raw sample times; 0 when there are
// none.
func ScrapeInterval(ctx context.Context, c *Client) (time.Duration, error) {
	r, err := c.Query(ctx, qSamples, time.Time{})
	if err != nil {
		return 0, err
	}
	var gaps []time.Duration
	for _, s := range r.Series {
		for i := 1; i < len(s.Samples); i++ {
			gaps = append(gaps, s.Samples[i].At.Sub(s.Samples[i-1].At))
		}
	}
	if len(gaps) == 0 {
		if len(r.Series) > 0 {
			return 15 * time.Second, nil // one sample each: scraped, but rarely
		}
		return 0, nil
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	return gaps[len(gaps)/2], nil
}

// NodeName is the node a series is about: its node label, else the node
// at its instance's address, else the instance.
func NodeName(labels map[string]string, nodes map[string]string) string {
	if n := labels["node"]; n != "" {
		return n
	}
	inst := labels["instance"]
	host, _, err := net.SplitHostPort(inst)
	if err != nil {
		host = inst
	}
	if n := nodes[host]; n != "" {
		return n
	}
	return inst
}

// toSeries names each series by its node, drops values that are not
// numbers, and orders them by name.
func toSeries(r Result, nodes map[string]string) []report.MetricSeries {
	var out []report.MetricSeries
	for _, s := range r.Series {
		n := NodeName(s.Labels, nodes)
		ms := report.MetricSeries{Name: n, Node: n}
		for _, smp := range s.Samples {
			if !math.IsNaN(smp.Value) && !math.IsInf(smp.Value, 0) {
				ms.Points = append(ms.Points, report.Point{At: smp.At, Value: smp.Value})
			}
		}
		if len(ms.Points) > 0 {
			out = append(out, ms)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// haproxySeries names each by node and backend; the replicas backend is
// dashed, so one colour is one HAProxy node.
func haproxySeries(r Result, nodes map[string]string) []report.MetricSeries {
	var out []report.MetricSeries
	for _, s := range r.Series {
		one := toSeries(Result{Series: []Series{s}}, nodes)
		if len(one) == 0 {
			continue
		}
		px := s.Labels["proxy"]
		one[0].Name += " " + px
		one[0].Dashed = px == "replicas"
		out = append(out, one[0])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Roles combines patroni_master and patroni_postgres_running per node into
// one lane: leader, replica running, or PostgreSQL not running. A step
// without patroni_master (Patroni not scraped) stays blank.
func Roles(master, running []report.MetricSeries) []report.MetricSeries {
	run := map[string]map[time.Time]float64{}
	for _, s := range running {
		m := map[time.Time]float64{}
		for _, p := range s.Points {
			m[p.At] = p.Value
		}
		run[s.Node] = m
	}
	var out []report.MetricSeries
	for _, s := range master {
		ms := report.MetricSeries{Name: s.Name, Node: s.Node}
		for _, p := range s.Points {
			v := float64(report.RoleReplica)
			switch r, ok := run[s.Node][p.At]; {
			case p.Value == 1:
				v = report.RoleLeader
			case ok && r == 0:
				v = report.RoleStopped
			}
			ms.Points = append(ms.Points, report.Point{At: p.At, Value: v})
		}
		out = append(out, ms)
	}
	return out
}
