package bench

import (
	"fmt"
	"math"
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
// the managed-service comparison, a table per profile, HAProxy's cost,
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
	fmt.Fprintf(&b, "Measured %s–%s UTC by `validate bench` on %s: %d CPUs, Linux %s, "+
		"1/5/15-minute load average %.2f/%.2f/%.2f before and %.2f/%.2f/%.2f after. "+
		"Other labs may run on the same machine at the same time; the load column of the JSON and the per-run "+
		"loads below say how busy it was, and a quieter machine does at least as well.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04"), r.Finished.UTC().Format("15:04"), where, r.Machine.CPUs, strings.SplitN(r.Machine.Kernel, "-", 2)[0],
		r.Machine.LoadBefore[0], r.Machine.LoadBefore[1], r.Machine.LoadBefore[2],
		r.Machine.LoadAfter[0], r.Machine.LoadAfter[1], r.Machine.LoadAfter[2])
	fmt.Fprintf(&b, "Each profile got its own freshly built lab (synchronous mode %s) and %d runs of each kind, under "+
		"live traffic: a writer inserting every 50 ms through 5000 and a reader opening a new connection every 100 ms "+
		"through 5001. Every acknowledged insert is checked on every node afterwards.\n\n", onOff(r.Sync), r.Runs)
	fmt.Fprintf(&b, "Reproduce (as root, about %d minutes):\n\n    %s\n\n", int(math.Ceil(r.Finished.Sub(r.Started).Minutes())),
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

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
