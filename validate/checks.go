package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// check is one step of the runbook.
type check struct {
	name        string
	title       string
	destructive bool // breaks or moves something; refused on an unhealthy cluster
	run         func(ctx context.Context, e *env, c *checkRun)
}

// checks in runbook order.
var checks = []check{
	{name: "etcd", title: "etcd: 3 healthy members, one leader", run: checkEtcd},
	{name: "formation", title: "Patroni formation: 1 leader + 2 streaming replicas, one timeline", run: checkFormation},
	{name: "routing", title: "routing: 5000 → leader, 5001 → replicas", run: checkRouting},
	{name: "replication", title: "replication: a write reaches every replica", run: checkReplication},
	{name: "backup", title: "backups: WAL archived and its lag, a backup, a point-in-time restore with exactly the rows before the target", run: checkBackup},
	{name: "switchover", title: "controlled switchover under traffic", destructive: true,
		run: func(ctx context.Context, e *env, c *checkRun) { e.story(ctx, scenario.Switchover(e.opts.candidate), c) }},
	{name: "failover", title: "automatic failover under traffic", destructive: true,
		run: func(ctx context.Context, e *env, c *checkRun) { e.story(ctx, scenario.Failover(e.opts.fault), c) }},
}

func checkNames() []string {
	var out []string
	for _, c := range checks {
		out = append(out, c.name)
	}
	return out
}

func checkByName(name string) (check, bool) {
	for _, c := range checks {
		if c.name == name {
			return c, true
		}
	}
	if sc, ok := scenario.Get(strings.TrimPrefix(name, scenarioPrefix)); ok && strings.HasPrefix(name, scenarioPrefix) {
		return check{name: name, title: sc.Title, destructive: true,
			run: func(ctx context.Context, e *env, c *checkRun) { e.story(ctx, sc, c) }}, true
	}
	return check{}, false
}

// checkRun collects one check's verdict and figures.
type checkRun struct {
	report.Check
	e *env
}

func (c *checkRun) failf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	c.Problems = append(c.Problems, msg)
	c.e.logf("  FAIL: %s", msg)
}

func (c *checkRun) figure(key, label string, v float64, unit string) {
	c.Figures = append(c.Figures, report.Figure{Key: key, Label: label, Value: v, Unit: unit})
	c.e.logf("  %s: %s", label, c.Figures[len(c.Figures)-1])
}

func (c *checkRun) text(key, label, v string) {
	c.Figures = append(c.Figures, report.Figure{Key: key, Label: label, Text: v})
	c.e.logf("  %s: %s", label, v)
}

// ---- 1. etcd ----

func checkEtcd(ctx context.Context, e *env, c *checkRun) {
	st := e.probe.Etcd(ctx)
	healthy := 0
	for _, m := range st.Members {
		if m.Healthy {
			healthy++
		}
	}
	c.figure("healthy_members", "healthy members", float64(healthy), "")
	c.figure("listed_members", "members in the member list", float64(len(st.Listed)), "")
	if st.Leader != "" {
		c.text("leader", "leader", st.Leader)
	}
	for _, m := range st.Members {
		if m.Node.Name == st.Leader {
			c.text("raft_term", "raft term", m.RaftTerm)
			c.text("version", "etcd version", m.Version)
		}
	}
	for _, p := range st.Problems {
		c.failf("%s", p)
	}
	c.Summary = fmt.Sprintf("%d/3 healthy, leader %s", healthy, orNone(st.Leader))
	if !st.OK() {
		c.Summary = st.Problems[0]
	}
}

// ---- 2. formation ----

func checkFormation(ctx context.Context, e *env, c *checkRun) {
	// A cluster that has just started may still be attaching its replicas;
	// give it a short while before judging.
	f, _ := e.waitFormation(ctx, 10*time.Second, nil)
	formationFigures(c, f)
	for _, p := range f.Problems {
		c.failf("%s", p)
	}
	clockFigures(ctx, e, c)
	pendingRestart(c, f, e.stack.ClusterName)
	var reps []string
	for _, r := range f.Replicas {
		reps = append(reps, r.Name+" "+f.Repl[r.Name].State)
	}
	c.Summary = fmt.Sprintf("leader %s, replicas: %s, timeline %d", orNone(f.Leader.Name), strings.Join(reps, ", "), f.Timeline)
	if f.Sync != "" {
		c.Summary += ", sync standby " + f.Sync
	}
	if !f.OK() {
		c.Summary = f.Problems[0]
	}
}

func formationFigures(c *checkRun, f probe.Formation) {
	c.text("leader", "leader", orNone(f.Leader.Name))
	streaming := 0
	for _, r := range f.Replicas {
		if f.Repl[r.Name].State == "streaming" {
			streaming++
		}
	}
	c.figure("streaming_replicas", "streaming replicas", float64(streaming), "")
	c.figure("timeline", "timeline", float64(f.Timeline), "")
	if f.Sync != "" {
		c.text("sync_standby", "sync standby", f.Sync)
	}
	var names []string
	for n := range f.Repl {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := f.Repl[n]
		c.text("replication_"+n, "pg_stat_replication "+n, fmt.Sprintf("%s, %s, %d bytes behind", r.State, r.SyncState, r.LagBytes))
	}
}

// maxClockSkew is the spread between the PostgreSQL nodes' clocks past
// which the formation check fails: the scenarios order events from
// different nodes by their clocks (a promotion before or after a write),
// and a skew of seconds would misorder them. The labs' nodes share one
// clock; EC2 instances that sync with the Amazon Time Sync Service are
// within milliseconds of each other.
const maxClockSkew = time.Second

// pendingRestart names the members waiting for a restart to take a changed
// parameter (shared_buffers, max_connections after a new workload or
// instance type): not a failure, a step the operator owes. Patroni
// restarts them one at a time on request.
func pendingRestart(c *checkRun, f probe.Formation, scope string) {
	var pending []string
	for _, m := range f.Cluster.Members {
		if m.PendingRestart {
			pending = append(pending, m.Name)
		}
	}
	if len(pending) == 0 {
		c.text("pending_restart", "members waiting for a restart", "none")
		return
	}
	c.text("pending_restart", "members waiting for a restart",
		strings.Join(pending, ", ")+" (a changed parameter needs it: `sudo pgha-patronictl restart "+scope+" <member>`, replicas first, the leader after a switchover; docs/runbook.md, Apply a parameter that needs a restart)")
}

// clockFigures reports each PostgreSQL node's clock offset and their
// spread, and fails past maxClockSkew.
func clockFigures(ctx context.Context, e *env, c *checkRun) {
	rs, unreadable := e.probe.Clocks(ctx)
	for _, r := range rs {
		c.text("clock_"+r.Node, "clock of "+r.Node, fmt.Sprintf("%+.1f ms from validate's (± %.1f ms)",
			float64(r.Offset.Microseconds())/1000, float64(r.Uncertainty.Microseconds())/1000))
	}
	if len(unreadable) > 0 {
		c.text("clock_unreadable", "clocks not read", strings.Join(unreadable, "; "))
	}
	skew, unc := probe.Skew(rs)
	c.figure("clock_skew_ms", "clock skew between PostgreSQL nodes", float64(skew.Microseconds())/1000, "ms")
	if skew-unc > maxClockSkew {
		c.failf("the PostgreSQL nodes' clocks differ by %s (± %s), more than %s: sync their clocks (on EC2, with the Amazon Time Sync Service at 169.254.169.123)", skew.Round(time.Millisecond), unc.Round(time.Millisecond), maxClockSkew)
	}
}

// ---- 3. routing ----

func checkRouting(ctx context.Context, e *env, c *checkRun) {
	f := e.probe.Formation(ctx)
	if f.Leader.Name == "" {
		c.failf("cannot check routing without a leader: %s", f.Problem())
		return
	}
	var replicaIPs []string
	for _, r := range f.Replicas {
		replicaIPs = append(replicaIPs, r.Host)
	}
	r := e.probe.WaitRouting(ctx, e.opts.routingBound, f.Leader.Host, replicaIPs)
	routingFigures(e, c, r)
	for _, p := range r.Problems {
		c.failf("%s", p)
	}
	c.Summary = fmt.Sprintf("5000 → %s; 5001 → %s", f.Leader.Name, strings.Join(replicaNames(f), " + "))
	if !r.OK() {
		c.Summary = r.Problems[0]
	}
}

func routingFigures(e *env, c *checkRun, r probe.Routing) {
	var keys []string
	for k := range r.Writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.text("write_route_"+k, "write "+k+" reached", e.probe.Distribution(r.Writes[k]))
	}
	keys = keys[:0]
	for k := range r.Reads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.text("read_route_"+k, "read "+k+" reached", e.probe.Distribution(r.Reads[k]))
	}
}

func replicaNames(f probe.Formation) []string {
	var out []string
	for _, r := range f.Replicas {
		out = append(out, r.Name)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
