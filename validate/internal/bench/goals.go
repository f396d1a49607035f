package bench

import (
	"fmt"
	"math"
)

// Verdicts of a goal.
const (
	Met         = "MET"
	Missed      = "MISSED"
	NotMeasured = "NOT MEASURED"
)

// GoalProfile is the profile the timing goals are about.
const GoalProfile = "fast"

// MinRunsForGoal is how many runs a median needs before it may judge a goal.
const MinRunsForGoal = 5

// Goal is one of the targets, judged against a result.
type Goal struct {
	Name     string
	Target   string
	Measured string
	Verdict  string
	Why      string
}

// Goals judges the result against the goals. A timing goal is
// judged on the fast profile's median of at least MinRunsForGoal runs; with
// fewer it is not judged.
func Goals(r Result) []Goal {
	var gs []Goal
	timing := func(name, kind string, bound float64, why string) {
		g := Goal{Name: name, Target: fmt.Sprintf("median ≤ %.1f s", bound)}
		s := Summarise(column(r.Select(GoalProfile, kind), func(t Trial) float64 { return t.Outage }))
		switch {
		case s.N == 0:
			g.Verdict, g.Measured = NotMeasured, "–"
			g.Why = fmt.Sprintf("no %s run of the %s profile in this bench", kind, GoalProfile)
		case s.N < MinRunsForGoal:
			g.Verdict = NotMeasured
			g.Measured = fmt.Sprintf("median %.2f s of %d", s.Median, s.N)
			g.Why = fmt.Sprintf("only %d runs; the goal needs the median of at least %d", s.N, MinRunsForGoal)
		default:
			g.Measured = fmt.Sprintf("median %.2f s of %d (max %.2f s)", s.Median, s.N, s.Max)
			g.Verdict = Met
			if s.Median > bound {
				g.Verdict, g.Why = Missed, why
			}
		}
		gs = append(gs, g)
	}
	timing("leader kill: writes back", Kill, 10,
		"detection alone takes ttl − loop_wait … ttl (8–9 s with ttl 9, loop_wait 1): the lock of a SIGKILLed leader "+
			"is only released when its etcd lease expires; promotion and HAProxy's rise come on top")
	timing("PostgreSQL-only crash: writes back", PGCrash, 5,
		"Patroni notices the dead postmaster on its next HA loop (loop_wait) and restarts it in place; crash recovery "+
			"and HAProxy's rise come on top")
	timing("partition: writes back", Partition, 12,
		"the partitioned leader's lease must expire (ttl) before a replica may take the lock, as for a kill; "+
			"the cut link also makes HAProxy's checks of it time out rather than fail at once")
	timing("switchover write gap", Switchover, 2.5,
		"the old leader shuts PostgreSQL down with a checkpoint before releasing the lock, the candidate then "+
			"promotes, and HAProxy needs rise passed checks of the new leader")

	// Safety goals cover every profile and every run.
	lost, missing, acked, sb, polls, n := 0.0, 0.0, 0.0, 0, 0, 0
	for _, t := range r.Trials {
		n++
		if !math.IsNaN(t.LostOnLeader) {
			lost += t.LostOnLeader
		}
		if !math.IsNaN(t.Lost) {
			missing += t.Lost
		}
		if !math.IsNaN(t.Acked) {
			acked += t.Acked
		}
		sb += t.SplitBrain
		polls += t.SplitBrainPolls
	}
	g := Goal{Name: "acknowledged writes lost", Target: "0 in every run", Verdict: Met,
		Measured: fmt.Sprintf("%.0f of %.0f acknowledged, %d runs", lost, acked, n)}
	if missing > lost {
		g.Why = fmt.Sprintf("none is missing on the leader; %.0f were missing on a node that had not rejoined (see the problems below)", missing)
	}
	if n == 0 {
		g.Verdict, g.Measured = NotMeasured, "–"
	} else if lost > 0 {
		g.Verdict = Missed
		g.Why = "acknowledged writes are missing on the leader; see the problems below"
		if !r.Sync {
			g.Why = "asynchronous replication was benchmarked: a failover may lose the last commits by design"
		}
	}
	gs = append(gs, g)
	g = Goal{Name: "split-brain instants", Target: "0 in every run", Verdict: Met,
		Measured: fmt.Sprintf("%d of %d polls of /primary on every reachable node", sb, polls)}
	if polls == 0 {
		g.Verdict, g.Measured = NotMeasured, "–"
	} else if sb > 0 {
		g.Verdict, g.Why = Missed, "two nodes answered /primary with 200 at the same instant; see the runs below"
	}
	gs = append(gs, g)

	for _, c := range r.Costs {
		g := Goal{Name: "HAProxy throughput ratio, " + c.Workload, Target: "≥ 0.90"}
		ratio := c.Ratio()
		if math.IsNaN(ratio) {
			g.Verdict, g.Measured = NotMeasured, "–"
		} else {
			g.Measured = fmt.Sprintf("%.2f", ratio)
			g.Verdict = Met
			if ratio < 0.9 {
				g.Verdict = Missed
				g.Why = "on 2 cores HAProxy competes for the same CPUs as pgbench and PostgreSQL, so its forwarding " +
					"costs throughput that separate hosts would not pay"
			}
		}
		gs = append(gs, g)
	}
	if len(r.Costs) == 0 {
		gs = append(gs, Goal{Name: "HAProxy throughput ratio", Target: "≥ 0.90", Measured: "–", Verdict: NotMeasured,
			Why: "pgbench was not run (--pgbench-seconds 0)"})
	}
	return gs
}
