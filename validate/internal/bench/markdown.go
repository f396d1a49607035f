package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Heading is the section of docs/benchmarks.md that the bench owns;
// BootHeading the one of a bench on a booted lab (--boot).
const (
	Heading     = "## Failover benchmarks"
	BootHeading = "## Failover benchmarks on booted machines"
)

// HeadingOf is r's section heading.
func HeadingOf(r Result) string {
	if r.Boot {
		return BootHeading
	}
	return Heading
}

// Managed is a published failover figure of a managed service or a default
// configuration, shown beside ours. These are the vendors' and projects'
// own typical figures as quoted in the issue, not measured here.
type Managed struct {
	Name, Figure, Note string
}

// ManagedFigures are the comparison rows.
var ManagedFigures = []Managed{
	{"Amazon RDS Multi-AZ (instance)", "60–120 s", "typical, published"},
	{"Amazon RDS Multi-AZ DB cluster", "< 35 s", "typical, published"},
	{"Amazon Aurora", "~30 s", "typical, published"},
	{"Pigsty `fast` mode", "~23 s", "modelled average, published"},
	{"Patroni defaults, node lost", "25–35 s", "typical"},
	{"Patroni defaults, PostgreSQL-only crash", "up to 300 s or more", "primary_start_timeout 300 s"},
}

var kindLabel = map[string]string{
	Switchover: "switchover",
	Kill:       "leader kill (SIGKILL)",
	PGCrash:    "PostgreSQL-only crash",
	Partition:  "leader partition",
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func count(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func list(vs []float64, f func(float64) string) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, f(v))
	}
	return strings.Join(parts, ", ")
}

func statsRow(b *strings.Builder, label string, vs []float64, f func(float64) string) {
	s := Summarise(vs)
	fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s |\n", label, s.N, f(s.Min), f(s.Median), f(s.P95), f(s.Max), list(vs, f))
}

// Markdown renders the bench's section of docs/benchmarks.md: goals,
// the managed-service comparison, a table per profile with the clients'
// view beside it, HAProxy's and the pooler's cost,
// failed runs, the machine and the reproducing command. svgName is the
// chart's file name relative to the page ("" for none).
func Markdown(r Result, svgName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", HeadingOf(r))
	where := "this repository's lab"
	if r.Boot {
		where = "this repository's booted lab (every node a Debian 12 machine booting the user data EC2 would get; " +
			"the faults go through validate's AWS path: kill and partition over SSH, through haproxy-1)"
	}
	finished := r.Finished.UTC().Format("15:04")
	if r.Finished.UTC().Format("2006-01-02") != r.Started.UTC().Format("2006-01-02") {
		finished = r.Finished.UTC().Format("2006-01-02 15:04") // merged runs of different days
	}
	fmt.Fprintf(&b, "Measured %s–%s UTC by `validate bench` on %s: %d CPUs, Linux %s, "+
		"1/5/15-minute load average %.2f/%.2f/%.2f before and %.2f/%.2f/%.2f after. "+
		"Other labs may run on the same machine at the same time; the load column of the JSON and the per-run "+
		"loads below say how busy it was, and a quieter machine does at least as well.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04"), finished, where, r.Machine.CPUs, strings.SplitN(r.Machine.Kernel, "-", 2)[0],
		r.Machine.LoadBefore[0], r.Machine.LoadBefore[1], r.Machine.LoadBefore[2],
		r.Machine.LoadAfter[0], r.Machine.LoadAfter[1], r.Machine.LoadAfter[2])
	pooled := ""
	if slices.ContainsFunc(r.Trials, func(t Trial) bool { return !math.IsNaN(t.PooledWritesFailed) }) {
		pooled = ", a second writer inserting every 50 ms through the pooler (PgBouncer's 6432, in front of 5000)"
	}
	fmt.Fprintf(&b, "Each profile got its own freshly built lab (synchronous mode %s) and %d runs of each kind, under "+
		"live traffic: a writer inserting every 50 ms through 5000%s and a reader opening a new connection every 100 ms "+
		"through 5001. Every acknowledged insert is checked on every node afterwards.\n\n", onOff(r.Sync), r.Runs, pooled)
	fmt.Fprintf(&b, "Reproduce (as root, about %d minutes):\n\n    %s\n\n", int(math.Ceil(r.RunMinutes())),
		strings.ReplaceAll(r.Command, "\n", "\n    "))

	b.WriteString("### Goals\n\n")
	fmt.Fprintf(&b, "Timing goals are judged on the `%s` profile's median of at least %d runs; the safety goals on every run of every profile.\n\n", GoalProfile, MinRunsForGoal)
	b.WriteString("| goal | target | measured | verdict | why |\n|---|---|---|---|---|\n")
	for _, g := range Goals(r) {
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** | %s |\n", g.Name, g.Target, g.Measured, g.Verdict, g.Why)
	}

	b.WriteString("\n### Beside managed PostgreSQL\n\n")
	b.WriteString("| system | failover (writes back) | source |\n|---|---|---|\n")
	for _, m := range ManagedFigures {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", m.Name, m.Figure, m.Note)
	}
	for _, p := range r.Profiles {
		for _, k := range []string{Kill, PGCrash, Partition, Switchover} {
			s := Summarise(column(r.Select(p, k), func(t Trial) float64 { return t.Outage }))
			if s.N == 0 {
				continue
			}
			fmt.Fprintf(&b, "| pgha `%s`, %s | median %s s (max %s s) | measured here, runs: %d |\n", p, kindLabel[k], secs(s.Median), secs(s.Max), s.N)
		}
	}

	if svgName != "" {
		fmt.Fprintf(&b, "\n![Distribution of write outage per profile and kind](%s)\n", svgName)
	}

	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "\n### Profile `%s`\n\n", p)
		b.WriteString("Seconds unless a count. Outage is the write gap (last acknowledged write on the old leader → first on the new) " +
			"for a switchover and the RTO (fault → first acknowledged write) for a failover. Rejoin is switchover → every replica " +
			"streaming on the new timeline, or restore of the old leader → it streams again. p95 is nearest-rank, so with fewer " +
			"than 20 runs it is the maximum.\n\n")
		b.WriteString("| measure | n | min | median | p95 | max | runs |\n|---|---|---|---|---|---|---|\n")
		for _, k := range Kinds() {
			ts := r.Select(p, k)
			if len(ts) == 0 {
				continue
			}
			name := kindLabel[k]
			if k == Switchover {
				statsRow(&b, name+": write gap", column(ts, func(t Trial) float64 { return t.Outage }), secs)
			} else {
				statsRow(&b, name+": RTO", column(ts, func(t Trial) float64 { return t.Outage }), secs)
				statsRow(&b, name+": write gap", column(ts, func(t Trial) float64 { return t.WriteGap }), secs)
			}
			statsRow(&b, name+": reads failed", column(ts, func(t Trial) float64 { return t.ReadsFailed }), count)
			statsRow(&b, name+": rejoin", column(ts, func(t Trial) float64 { return t.Rejoin }), secs)
			statsRow(&b, name+": acknowledged writes lost (missing on the leader)", column(ts, func(t Trial) float64 { return t.LostOnLeader }), count)
			statsRow(&b, name+": acknowledged writes missing on some node", column(ts, func(t Trial) float64 { return t.Lost }), count)
			statsRow(&b, name+": split-brain instants", column(ts, func(t Trial) float64 { return float64(t.SplitBrain) }), count)
		}
		var loads []string
		for _, t := range r.Trials {
			if t.Profile == p {
				loads = append(loads, fmt.Sprintf("%.1f", t.Load1))
			}
		}
		fmt.Fprintf(&b, "\n1-minute load average when each run began: %s.\n", strings.Join(loads, ", "))
		clientsView(&b, r, p)
	}

	if len(r.Costs) > 0 {
		fmt.Fprintf(&b, "\n### HAProxy's cost\n\n")
		fmt.Fprintf(&b, "pgbench (PostgreSQL 15) from the lab's client namespace over TLS (`sslmode=require`) as the application "+
			"user, on the `%s` lab: the same run through HAProxy's 5000 and straight to the leader's 5432, alternating, "+
			"several rounds each. The ratio is median via 5000 over median direct.\n\n", r.CostProfile)
		b.WriteString("| workload | clients / threads / seconds | via 5000 (tps) | direct 5432 (tps) | ratio | load |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Costs {
			fmt.Fprintf(&b, "| %s | %d / %d / %d | %s | %s | %.2f | %.1f |\n", c.Workload, c.Clients, c.Threads, c.Seconds,
				list(c.Via, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
				list(c.Direct, func(v float64) string { return fmt.Sprintf("%.0f", v) }), c.Ratio(), c.Load1)
		}
	}

	if len(r.PoolerCosts) > 0 {
		fmt.Fprintf(&b, "\n### The pooler's cost\n\n")
		fmt.Fprintf(&b, "pgbench (PostgreSQL 15) from the lab's client namespace over TLS (`sslmode=require`) as the application "+
			"user, on the `%s` lab: the same run through the pooler (PgBouncer's 6432, transaction pooling, pgbench's simple "+
			"protocol) and through HAProxy's 5000 alone, which the pooler forwards to, alternating, several rounds each; both "+
			"then take the same path to the leader, and only PgBouncer's hop differs. The ratio is median through the pooler "+
			"over median through HAProxy. CPUs busy is the share of all the machine's CPUs busy during the rounds "+
			"(/proc/stat); PgBouncer's is what its processes used during the pooled rounds, in percent of one core, since "+
			"PgBouncer runs one thread.", r.PoolerCostProfile)
		if c := r.PoolerCosts[0]; c.Threads > 0 && c.Threads <= r.Machine.CPUs {
			fmt.Fprintf(&b, " pgbench runs %d threads on the machine's %d CPUs: more threads than CPUs would only take turns "+
				"on them, and both sides run the same pgbench.", c.Threads, r.Machine.CPUs)
		}
		b.WriteString("\n\n")
		b.WriteString("| workload | clients / threads / seconds | via the pooler 6432 (tps) | via HAProxy 5000 (tps) | ratio | " +
			"CPUs busy, pooled / HAProxy rounds (%) | PgBouncer (% of a core) | load |\n|---|---|---|---|---|---|---|---|\n")
		pct := func(v float64) string { return fmt.Sprintf("%.0f", v) }
		for _, c := range r.PoolerCosts {
			fmt.Fprintf(&b, "| %s | %d / %d / %d | %s | %s | %s | %s / %s | %s | %.1f |\n", c.Workload, c.Clients, c.Threads, c.Seconds,
				list(c.Pooler, pct), list(c.HAProxy, pct), ratio(c.Ratio()), orDash(list(c.PoolerBusy, pct)),
				orDash(list(c.HAProxyBusy, pct)), orDash(list(c.PgBouncerCPU, pct)), c.Load1)
		}
		for _, c := range r.PoolerCosts {
			fmt.Fprintf(&b, "\nWhat limited %s through the pooler, as measured: %s.\n", c.Workload, PoolerLimit(c, r.Machine.CPUs))
		}
	}

	var failed []Trial
	for _, t := range r.Trials {
		if !t.OK() {
			failed = append(failed, t)
		}
	}
	if len(failed) > 0 || len(r.Notes) > 0 {
		b.WriteString("\n### Problems found\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, t := range failed {
			fmt.Fprintf(&b, "- `%s` %s run %d: %s\n", t.Profile, t.Kind, t.Run, strings.Join(t.Problems, "; "))
		}
	}
	return b.String()
}

// clientsView renders, for one profile, what the direct client and the
// client of the pooler saw in the same runs; nothing where neither was
// measured (a bench from before these figures).
func clientsView(b *strings.Builder, r Result, profile string) {
	measured := func(t Trial) bool {
		return !math.IsNaN(t.WritesFailed) || !math.IsNaN(t.LongestWrite) || !math.IsNaN(t.PooledWritesFailed)
	}
	var all []Trial
	for _, k := range Kinds() {
		all = append(all, r.Select(profile, k)...)
	}
	if !slices.ContainsFunc(all, measured) {
		return
	}
	b.WriteString("\n#### Clients' view: direct vs through the pooler\n\n")
	b.WriteString("The same runs as two clients saw them, from the fault on: the direct writer through HAProxy's 5000 and " +
		"the writer through the pooler (PgBouncer's 6432 in front of it), each one connection with one insert at a time, " +
		"every 50 ms. Failed operations and the longest single operation (the longest a client waited for one answer) " +
		"are the median / max over the runs; the outage is the median write gap for a switchover and the median RTO for " +
		"a failover; the pooler stall is how long a switchover held behind the poolers kept them paused (PAUSE → RESUME).\n\n")
	b.WriteString("| kind | client | n | failed operations (median / max) | longest operation, s (median / max) | " +
		"outage, s (median) | pooler stall, s (median / max) |\n|---|---|---|---|---|---|---|\n")
	for _, k := range Kinds() {
		ts := r.Select(profile, k)
		if !slices.ContainsFunc(ts, measured) {
			continue
		}
		stall := "–"
		if k == Switchover {
			stall = medMax(column(ts, func(t Trial) float64 { return t.PoolerStall }), secs)
		}
		for _, c := range []struct {
			name                    string
			failed, longest, outage func(Trial) float64
			stall                   string
		}{
			{"direct (HAProxy 5000)", func(t Trial) float64 { return t.WritesFailed }, func(t Trial) float64 { return t.LongestWrite },
				func(t Trial) float64 { return t.Outage }, "–"},
			{"through the pooler (6432)", func(t Trial) float64 { return t.PooledWritesFailed },
				func(t Trial) float64 { return t.PooledLongestWrite }, func(t Trial) float64 { return t.PooledOutage }, stall},
		} {
			failed := column(ts, c.failed)
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s | %s | %s |\n", kindLabel[k], c.name, Summarise(failed).N,
				medMax(failed, count), medMax(column(ts, c.longest), secs), secs(Summarise(column(ts, c.outage)).Median), c.stall)
		}
	}
}

// medMax is "median / max" of the measured values, or "–".
func medMax(vs []float64, f func(float64) string) string {
	s := Summarise(vs)
	if s.N == 0 {
		return "–"
	}
	return f(s.Median) + " / " + f(s.Max)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
