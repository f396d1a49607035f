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

// The pooled writer: one connection with one insert in flight at a time,
// like the direct writer, every WriteInterval seconds (validate's default
// --write-interval, which the bench uses).
const (
	PooledConcurrency = 1
	WriteInterval     = 0.05
)

// PooledHoldBound is the longest a planned switchover may hold one
// operation of a client of the pooler, seconds.
const PooledHoldBound = 3.0

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

	gs = append(gs, pooledGoals(r)...)

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
		gs = append(gs, ratioGoal("HAProxy throughput ratio, "+c.Workload, "≥ 0.90", c.Ratio(),
			"on 2 cores HAProxy competes for the same CPUs as pgbench and PostgreSQL, so its forwarding "+
				"costs throughput that separate hosts would not pay"))
	}
	if len(r.Costs) == 0 {
		gs = append(gs, Goal{Name: "HAProxy throughput ratio", Target: "≥ 0.90", Measured: "–", Verdict: NotMeasured,
			Why: "pgbench was not run (--pgbench-seconds 0)"})
	}
	for _, c := range r.PoolerCosts {
		gs = append(gs, ratioGoal(fmt.Sprintf("pooler throughput ratio, %s, %d clients", c.Workload, c.Clients),
			"≥ 0.90 of HAProxy alone", c.Ratio(), PoolerLimit(c, r.Machine.CPUs)))
	}
	if len(r.PoolerCosts) == 0 {
		gs = append(gs, Goal{Name: "pooler throughput ratio", Target: "≥ 0.90 of HAProxy alone", Measured: "–", Verdict: NotMeasured,
			Why: "pgbench was not run through a pooler (--pgbench-seconds 0, a lab without one, or a bench from before it)"})
	}
	return gs
}

// ratioGoal judges a throughput ratio against 0.90; why is said when it
// is missed.
func ratioGoal(name, target string, ratio float64, why string) Goal {
	g := Goal{Name: name, Target: target}
	switch {
	case math.IsNaN(ratio):
		g.Verdict, g.Measured = NotMeasured, "–"
	case ratio < 0.9:
		g.Verdict, g.Measured, g.Why = Missed, fmt.Sprintf("%.2f", ratio), why
	default:
		g.Verdict, g.Measured = Met, fmt.Sprintf("%.2f", ratio)
	}
	return g
}

// pooledGoals judges what the client of the pooler saw on the goal
// profile: a planned switchover held behind the poolers fails none of its
// operations and holds none long, and a leader kill costs it no more than
// it costs a direct client.
func pooledGoals(r Result) []Goal {
	cnt := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	sec := func(v float64) string { return fmt.Sprintf("%.2f s", v) }
	sw, kill := r.Select(GoalProfile, Switchover), r.Select(GoalProfile, Kill)

	hold := "the poolers hold new transactions from PAUSE to RESUME, and the old leader's shutdown checkpoint, " +
		"the promotion and HAProxy's rise on the new leader all fall inside that"
	if st := Summarise(column(sw, func(t Trial) float64 { return t.PoolerStall })); st.N > 0 {
		hold = fmt.Sprintf("the poolers hold new transactions from PAUSE to RESUME (median %.2f s, max %.2f s here), and the "+
			"old leader's shutdown checkpoint, the promotion and HAProxy's rise on the new leader all fall inside that", st.Median, st.Max)
	}
	gs := []Goal{
		everyRun("switchover through the pooler: failed client operations", "0 in every run", Switchover, sw, 0,
			func(t Trial) float64 { return t.PooledWritesFailed }, cnt,
			"a client of the pooler got an error during a switchover held behind the poolers; the problems below name each operation and its error"),
		everyRun("switchover through the pooler: longest client operation", fmt.Sprintf("≤ %.1f s in every run", PooledHoldBound), Switchover, sw, PooledHoldBound,
			func(t Trial) float64 { return t.PooledLongestWrite }, sec, hold),
		everyRun("leader kill through the pooler: failed client operations",
			fmt.Sprintf("≤ %d in every run (the pooled writer's concurrency)", PooledConcurrency), Kill, kill, PooledConcurrency,
			func(t Trial) float64 { return t.PooledWritesFailed }, cnt,
			"the insert in flight on the killed leader fails with its server connection; and while PgBouncer's logins to HAProxy "+
				"fail and its pool is empty, PgBouncer 1.18 refuses new queries at once instead of holding them"),
	}

	// The RTO through the pooler against the direct one, on the runs that
	// measured both. The writers tick apart, so each sees writes come back
	// up to one interval after the other by sampling alone.
	g := Goal{Name: "leader kill through the pooler: writes back",
		Target: fmt.Sprintf("median ≤ the direct median + %.2f s (one write interval)", WriteInterval)}
	var pooled, direct []float64
	for _, t := range kill {
		if !math.IsNaN(t.PooledOutage) && !math.IsNaN(t.Outage) {
			pooled, direct = append(pooled, t.PooledOutage), append(direct, t.Outage)
		}
	}
	p, d := Summarise(pooled), Summarise(direct)
	switch {
	case p.N == 0:
		g.Verdict, g.Measured = NotMeasured, "–"
		g.Why = fmt.Sprintf("no %s run of the %s profile through a pooler in this bench", Kill, GoalProfile)
	default:
		g.Measured = fmt.Sprintf("median %.2f s through the pooler, %.2f s direct (%+.2f s), of %d", p.Median, d.Median, p.Median-d.Median, p.N)
		switch {
		case p.N < MinRunsForGoal:
			g.Verdict = NotMeasured
			g.Why = fmt.Sprintf("only %d runs; the goal needs the median of at least %d", p.N, MinRunsForGoal)
		case p.Median > d.Median+WriteInterval+1e-9:
			g.Verdict = Missed
			g.Why = "after a failed login PgBouncer tries its server again only every server_login_retry (0.25 s), while the " +
				"direct writer reconnects on its next 50 ms tick: the client of the pooler may come back up to that much later"
		default:
			g.Verdict = Met
		}
	}
	return append(gs, g)
}

// everyRun judges a bound that every run of the goal profile must keep:
// the max over the runs. One run over it misses the goal however few runs
// there were; a bound kept needs at least MinRunsForGoal runs to be met.
func everyRun(name, target, kind string, ts []Trial, bound float64, f func(Trial) float64, show func(float64) string, why string) Goal {
	g := Goal{Name: name, Target: target}
	s := Summarise(column(ts, f))
	switch {
	case s.N == 0:
		g.Verdict, g.Measured = NotMeasured, "–"
		g.Why = fmt.Sprintf("no %s run of the %s profile through a pooler in this bench", kind, GoalProfile)
		return g
	case s.Max > bound:
		g.Verdict, g.Why = Missed, why
	case s.N < MinRunsForGoal:
		g.Verdict = NotMeasured
		g.Why = fmt.Sprintf("only %d runs; the goal needs at least %d", s.N, MinRunsForGoal)
	default:
		g.Verdict = Met
	}
	g.Measured = fmt.Sprintf("max %s, median %s, of %d", show(s.Max), show(s.Median), s.N)
	return g
}

// PoolerLimit says, from what was measured during the pooled rounds, what
// limited the throughput through the pooler: PgBouncer's one thread, the
// machine's CPUs, or neither.
func PoolerLimit(c PoolerCost, cpus int) string {
	pgb, busy, busyHA := Summarise(c.PgBouncerCPU), Summarise(c.PoolerBusy), Summarise(c.HAProxyBusy)
	if pgb.N == 0 || busy.N == 0 {
		return fmt.Sprintf("what limited it was not measured (1-minute load %.1f when it began)", c.Load1)
	}
	shared := fmt.Sprintf("pgbench, PgBouncer, HAProxy and PostgreSQL share the same %d CPUs, so PgBouncer's hop "+
		"(it ends the client's TLS and runs its own to PostgreSQL through HAProxy) is paid from the CPU the others would use", cpus)
	ha := ""
	if busyHA.N > 0 {
		ha = fmt.Sprintf(", %.0f %% through HAProxy alone", busyHA.Median)
	}
	switch {
	case pgb.Median >= 90:
		return fmt.Sprintf("PgBouncer's one thread was the limit: it used %.0f %% of a core during the pooled rounds "+
			"(the CPUs %.0f %% busy%s)", pgb.Median, busy.Median, ha)
	case busy.Median >= 90:
		return fmt.Sprintf("the CPUs were the limit: %.0f %% busy during the pooled rounds%s, PgBouncer's thread using %.0f %% of "+
			"one core; %s", busy.Median, ha, pgb.Median, shared)
	}
	return fmt.Sprintf("neither PgBouncer's thread (%.0f %% of a core) nor the CPUs (%.0f %% busy%s) were saturated: each of the "+
		"clients waits for one answer at a time, so the extra hop's latency itself limits them", pgb.Median, busy.Median, ha)
}
