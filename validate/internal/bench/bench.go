// Package bench holds the failover benchmark's data, statistics and
// rendering: the trials `validate bench` ran (switchover, leader kill,
// partition, per failure-time profile), their min/median/p95/max, the goals
// of the project judged against them, what a client directly through HAProxy
// and one through the pooler saw, the HAProxy and pooler throughput costs,
// and the markdown section and SVG chart written to docs/benchmarks.md.
//
// The measuring itself lives in validate, which owns the checks that are
// repeated here; this package only judges and renders what they measured,
// so it can be tested without a cluster.
package bench

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// The kinds of trial, in the order they run and are shown.
const (
	Switchover = "switchover" // POST /switchover to the sync standby
	Kill       = "kill"       // SIGKILL of the leader's Patroni and PostgreSQL
	PGCrash    = "pg-crash"   // SIGKILL of the leader's postmaster; Patroni lives
	Partition  = "partition"  // the leader's link cut
)

// Kinds lists every trial kind in run order.
func Kinds() []string { return []string{Switchover, Kill, PGCrash, Partition} }

// Trial is one repetition of one kind on one profile.
type Trial struct {
	Profile string    `json:"profile"`
	Kind    string    `json:"kind"`
	Run     int       `json:"run"` // 1-based
	At      time.Time `json:"at"`
	Load1   float64   `json:"load1"` // 1-minute load average when it began
	// Problems are the check's failures; a trial with problems still
	// contributes the figures it measured, and the page lists them.
	Problems []string `json:"problems,omitempty"`

	// Outage is what the goal is about: the write gap (last acknowledged
	// write on the old leader → first on the new) for a switchover, the RTO
	// (fault → first acknowledged write) for a failover. Seconds; NaN when
	// writes never resumed.
	Outage float64 `json:"outage_s"`
	// WriteGap is last ack before → first ack after, for every kind.
	WriteGap    float64 `json:"write_gap_s"`
	ReadsFailed float64 `json:"reads_failed"`
	ReadsTotal  float64 `json:"reads_total"`
	// Rejoin: switchover → every replica streaming on the new timeline; for
	// a failover, restore of the old leader → it streams again.
	Rejoin float64 `json:"rejoin_s"`
	Acked  float64 `json:"acked_writes"`
	// Lost is validate's figure: acknowledged writes missing on at least
	// one node (so a node that failed to rejoin counts). LostOnLeader is
	// those missing on the leader at the end: lost from the cluster.
	Lost         float64 `json:"lost_writes"`
	LostOnLeader float64 `json:"lost_on_leader"`
	// SplitBrain counts poll instants at which two or more nodes answered
	// /primary with 200; SplitBrainPolls is how many instants were polled.
	SplitBrain      int `json:"split_brain_instants"`
	SplitBrainPolls int `json:"split_brain_polls"`

	// The clients' view, side by side, from the fault on: the direct
	// writer (through HAProxy's 5000) and the pooled writer (through
	// PgBouncer's 6432 in front of it), each one connection inserting every
	// 50 ms. NaN where not measured: a lab without a pooler, or a bench
	// from before these figures.
	WritesFailed float64 `json:"writes_failed"`
	// LongestWrite is the longest single insert: the longest a client
	// waited for one answer.
	LongestWrite       float64 `json:"longest_write_s"`
	PooledWrites       float64 `json:"pooled_writes_total"`
	PooledWritesFailed float64 `json:"pooled_writes_failed"`
	PooledWriteGap     float64 `json:"pooled_write_gap_s"`
	// PooledOutage is Outage through the pooler: the write gap for a
	// switchover, the RTO for a failover.
	PooledOutage       float64 `json:"pooled_outage_s"`
	PooledLongestWrite float64 `json:"pooled_longest_write_s"`
	// PoolerStall is a switchover's PAUSE → RESUME on the poolers: how
	// long they held new transactions.
	PoolerStall float64 `json:"pooler_stall_s"`
}

// OK says whether the check behind the trial passed.
func (t Trial) OK() bool { return len(t.Problems) == 0 }

// Cost is one pgbench comparison: the same workload through HAProxy's 5000
// and straight to the leader's 5432.
type Cost struct {
	Workload string    `json:"workload"` // "select-only (-S)" or "TPC-B-like (default)"
	Clients  int       `json:"clients"`
	Threads  int       `json:"threads"`
	Seconds  int       `json:"seconds"`
	Via      []float64 `json:"via_haproxy_tps"` // one per round
	Direct   []float64 `json:"direct_tps"`
	Load1    float64   `json:"load1"`
}

// Ratio is the median throughput through HAProxy over the median direct.
func (c Cost) Ratio() float64 {
	d := Summarise(c.Direct).Median
	if d == 0 || math.IsNaN(d) {
		return math.NaN()
	}
	return Summarise(c.Via).Median / d
}

// PoolerCost is one pgbench comparison through the pooler (PgBouncer's
// 6432, which forwards to its own node's HAProxy 5000) against the same
// run through that HAProxy's 5000 alone: only PgBouncer's hop differs.
type PoolerCost struct {
	Workload string    `json:"workload"`
	Clients  int       `json:"clients"`
	Threads  int       `json:"threads"`
	Seconds  int       `json:"seconds"`
	Pooler   []float64 `json:"via_pooler_tps"` // one per round
	HAProxy  []float64 `json:"via_haproxy_tps"`
	Load1    float64   `json:"load1"`
	// What limited it, measured during each round: the share of the
	// machine's CPUs that were busy (percent of all of them), and the CPU
	// PgBouncer's processes used during the pooled rounds (percent of one
	// core; PgBouncer runs one thread). Absent where not measured.
	PoolerBusy   []float64 `json:"pooler_rounds_cpu_busy_pct,omitempty"`
	HAProxyBusy  []float64 `json:"haproxy_rounds_cpu_busy_pct,omitempty"`
	PgBouncerCPU []float64 `json:"pgbouncer_cpu_pct_of_core,omitempty"`
}

// Ratio is the median throughput through the pooler over the median
// through HAProxy alone.
func (c PoolerCost) Ratio() float64 {
	h := Summarise(c.HAProxy).Median
	if h == 0 || math.IsNaN(h) {
		return math.NaN()
	}
	return Summarise(c.Pooler).Median / h
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs       int        `json:"cpus"`
	Kernel     string     `json:"kernel"`
	LoadBefore [3]float64 `json:"load_before"`
	LoadAfter  [3]float64 `json:"load_after"`
}

// Result is one whole bench run.
type Result struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Minutes is how long the bench ran: merged results add their runs'
	// times (Finished − Started then spans the days between them).
	Minutes  float64  `json:"minutes,omitempty"`
	Machine  Machine  `json:"machine"`
	Command  string   `json:"command"`
	Sync     bool     `json:"synchronous_mode"`
	Boot     bool     `json:"booted,omitempty"` // the labs were booted machines (lab up --boot)
	Runs     int      `json:"runs"`
	Profiles []string `json:"profiles"`
	// Kinds are the trial kinds this run was asked for (absent in a bench
	// from before it was recorded: every kind).
	Kinds  []string `json:"kinds,omitempty"`
	Trials []Trial  `json:"trials"`
	Costs  []Cost   `json:"costs,omitempty"`
	// CostProfile is the profile whose lab the pgbench comparison ran on.
	CostProfile string `json:"cost_profile,omitempty"`
	// PoolerCosts are pgbench through the pooler against through HAProxy;
	// PoolerCostProfile the profile whose lab they ran on.
	PoolerCosts       []PoolerCost `json:"pooler_costs,omitempty"`
	PoolerCostProfile string       `json:"pooler_cost_profile,omitempty"`
	// Notes are caveats the run itself found (e.g. a lab that failed to
	// come up); they are printed on the page.
	Notes []string `json:"notes,omitempty"`
}

// RunMinutes is how long the bench ran: Minutes, or for a result from
// before it was recorded, Finished − Started.
func (r Result) RunMinutes() float64 {
	if r.Minutes > 0 {
		return r.Minutes
	}
	if r.Started.IsZero() || r.Finished.Before(r.Started) {
		return 0
	}
	return r.Finished.Sub(r.Started).Minutes()
}

// Select returns the trials of one profile and kind, in run order.
func (r Result) Select(profile, kind string) []Trial {
	var out []Trial
	for _, t := range r.Trials {
		if t.Profile == profile && t.Kind == kind {
			out = append(out, t)
		}
	}
	return out
}

// Stats are the order statistics of one measure.
type Stats struct {
	N                     int
	Min, Median, P95, Max float64
}

// Summarise computes min, median, p95 and max, skipping NaN (a trial that
// could not measure). The median of an even count is the mean of the middle
// two; p95 is the nearest-rank percentile (the ⌈0.95·n⌉-th smallest), so with
// fewer than 20 values it is the maximum: no interpolation invents a value
// that no run produced.
func Summarise(xs []float64) Stats {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		nan := math.NaN()
		return Stats{Min: nan, Median: nan, P95: nan, Max: nan}
	}
	sort.Float64s(v)
	n := len(v)
	s := Stats{N: n, Min: v[0], Max: v[n-1]}
	if n%2 == 1 {
		s.Median = v[n/2]
	} else {
		s.Median = (v[n/2-1] + v[n/2]) / 2
	}
	rank := int(math.Ceil(0.95 * float64(n)))
	s.P95 = v[rank-1]
	return s
}

// column picks one measure out of trials.
func column(ts []Trial, f func(Trial) float64) []float64 {
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = f(t)
	}
	return out
}

// Merge combines an earlier result with a newer one that re-ran some
// profiles (and, where the newer one records them, some kinds): the newer
// trials replace the earlier ones of the same profile and kind, the earlier
// ones of the kinds not run again stay, the earlier pgbench figures stay
// unless the newer run measured its own, and the page shows both commands
// and the whole time span.
func Merge(old, cur Result) Result {
	out := cur
	rerunProfile := map[string]bool{}
	for _, p := range cur.Profiles {
		rerunProfile[p] = true
	}
	rerun := func(profile, kind string) bool {
		return rerunProfile[profile] && (len(cur.Kinds) == 0 || slices.Contains(cur.Kinds, kind))
	}
	// The earlier order, then the profiles it did not have.
	profiles := append([]string(nil), old.Profiles...)
	for _, p := range cur.Profiles {
		if !slices.Contains(profiles, p) {
			profiles = append(profiles, p)
		}
	}
	var trials []Trial
	for _, t := range old.Trials {
		if !rerun(t.Profile, t.Kind) {
			trials = append(trials, t)
		}
	}
	var notes []string
	for _, n := range old.Notes {
		keep := true
		for p := range rerunProfile {
			if rest, ok := strings.CutPrefix(n, "the "+p+" lab was rebuilt after "); ok {
				// About one kind's failed run: it goes with that kind's trials.
				kind, _, _ := strings.Cut(rest, " run ")
				keep = keep && !rerun(p, kind)
			} else if strings.Contains(n, "the "+p+" lab") || strings.HasPrefix(n, "profile "+p+":") {
				keep = false
			}
		}
		if keep {
			notes = append(notes, n)
		}
	}
	if len(old.Kinds) > 0 && len(cur.Kinds) > 0 {
		out.Kinds = nil
		for _, k := range Kinds() {
			if slices.Contains(old.Kinds, k) || slices.Contains(cur.Kinds, k) {
				out.Kinds = append(out.Kinds, k)
			}
		}
	} else {
		out.Kinds = nil // one of them ran every kind
	}
	out.Profiles = profiles
	out.Trials = append(trials, cur.Trials...)
	out.Notes = append(notes, cur.Notes...)
	if len(cur.Costs) == 0 {
		out.Costs, out.CostProfile = old.Costs, old.CostProfile
	}
	if len(cur.PoolerCosts) == 0 {
		out.PoolerCosts, out.PoolerCostProfile = old.PoolerCosts, old.PoolerCostProfile
	}
	out.Minutes = old.RunMinutes() + cur.RunMinutes()
	if old.Started.Before(cur.Started) && !old.Started.IsZero() {
		out.Started = old.Started
		out.Machine.LoadBefore = old.Machine.LoadBefore
	}
	out.Command = old.Command + "\n" + cur.Command
	if cur.Runs < old.Runs || old.Runs == 0 {
		out.Runs = cur.Runs
	} else {
		out.Runs = old.Runs
	}
	return out
}
