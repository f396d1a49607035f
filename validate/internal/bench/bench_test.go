package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSummarise(t *testing.T) {
	s := Summarise([]float64{3, 1, 2, 5, 4})
	assert.Equal(t, Stats{N: 5, Min: 1, Median: 3, P95: 5, Max: 5}, s)

	// Even count: the mean of the middle two.
	s = Summarise([]float64{4, 1, 3, 2})
	assert.Equal(t, 2.5, s.Median)
	assert.Equal(t, 4.0, s.P95)

	// 20 values 1..20: nearest rank ⌈0.95·20⌉ = 19th.
	var xs []float64
	for i := 20; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	s = Summarise(xs)
	assert.Equal(t, 19.0, s.P95)
	assert.Equal(t, 10.5, s.Median)
	assert.Equal(t, 1.0, s.Min)
	assert.Equal(t, 20.0, s.Max)

	// NaN (a run that could not measure) is skipped, not counted as zero.
	s = Summarise([]float64{math.NaN(), 7, math.NaN()})
	assert.Equal(t, Stats{N: 1, Min: 7, Median: 7, P95: 7, Max: 7}, s)

	s = Summarise(nil)
	assert.Equal(t, 0, s.N)
	assert.True(t, math.IsNaN(s.Median))

	// The input is not reordered.
	in := []float64{3, 1, 2}
	Summarise(in)
	assert.Equal(t, []float64{3, 1, 2}, in)
}

func trials(profile, kind string, outages ...float64) []Trial {
	var ts []Trial
	for i, o := range outages {
		nan := math.NaN()
		ts = append(ts, Trial{Profile: profile, Kind: kind, Run: i + 1, Outage: o, WriteGap: o, Rejoin: 5, Acked: 100,
			ReadsFailed: 2, SplitBrainPolls: 50, Load1: 1.5,
			// Not measured, as in a bench from before the pooler.
			WritesFailed: nan, LongestWrite: nan, PooledWrites: nan, PooledWritesFailed: nan, PooledWriteGap: nan,
			PooledOutage: nan, PooledLongestWrite: nan, PoolerStall: nan})
	}
	return ts
}

// withPooler gives the trials the clients' view: direct and pooled
// failures and longest writes, the pooled outage, and (a switchover's)
// the pooler stall; one value per trial.
func withPooler(ts []Trial, failed, longest, outage []float64) []Trial {
	for i := range ts {
		t := &ts[i]
		t.WritesFailed, t.LongestWrite = 1, 0.9
		t.PooledWrites, t.PooledWritesFailed, t.PooledLongestWrite = 40, failed[i], longest[i]
		t.PooledOutage, t.PooledWriteGap = outage[i], outage[i]
		if t.Kind == Switchover {
			t.PoolerStall = longest[i] - 0.1
		}
	}
	return ts
}

func sample() Result {
	r := Result{
		Started: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 26, 3, 20, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, Kernel: "6.1.0", LoadBefore: [3]float64{1, 2, 3}, LoadAfter: [3]float64{2, 2, 2}},
		Command: "go run ./validate bench --profiles fast,safe --runs 5", Sync: true, Runs: 5,
		Profiles: []string{"fast", "safe"},
	}
	r.Trials = append(r.Trials, trials("fast", Switchover, 2.1, 2.2, 2.0, 2.4, 3.0)...)
	r.Trials = append(r.Trials, trials("fast", Kill, 9.5, 10.5, 11, 10.8, 10.9)...)
	r.Trials = append(r.Trials, trials("fast", Partition, 11, 11.5, 12.5)...)
	r.Trials = append(r.Trials, trials("safe", Kill, 30, 31)...)
	r.Costs = []Cost{{Workload: "select-only (-S)", Clients: 4, Threads: 2, Seconds: 15, Via: []float64{900, 950}, Direct: []float64{1000, 1000}}}
	r.CostProfile = "fast"
	return r
}

func goalByName(gs []Goal, prefix string) Goal {
	for _, g := range gs {
		if strings.HasPrefix(g.Name, prefix) {
			return g
		}
	}
	return Goal{}
}

func TestGoals(t *testing.T) {
	r := sample()
	gs := Goals(r)
	assert.Equal(t, Met, goalByName(gs, "switchover").Verdict, "median 2.2 ≤ 2.5")
	kill := goalByName(gs, "leader kill")
	assert.Equal(t, Missed, kill.Verdict, "median 10.8 > 10")
	assert.NotEmpty(t, kill.Why, "a missed goal says why")
	assert.Contains(t, kill.Measured, "10.80")
	assert.Equal(t, NotMeasured, goalByName(gs, "partition").Verdict, "3 runs are fewer than 5")
	assert.Equal(t, NotMeasured, goalByName(gs, "PostgreSQL-only").Verdict, "no pg-crash run")
	assert.Equal(t, Met, goalByName(gs, "acknowledged").Verdict)
	assert.Equal(t, Met, goalByName(gs, "split-brain").Verdict)
	ratio := goalByName(gs, "HAProxy")
	assert.Equal(t, Met, ratio.Verdict, "925/1000")
	assert.Equal(t, "0.93", ratio.Measured)

	// The PostgreSQL-only crash is judged on its own kind.
	crash := r
	crash.Trials = append(append([]Trial(nil), r.Trials...), trials("fast", PGCrash, 4.1, 4.3, 5.6, 4.0, 6.0)...)
	assert.Equal(t, Met, goalByName(Goals(crash), "PostgreSQL-only").Verdict, "median 4.3 ≤ 5")
	crash.Trials = append(append([]Trial(nil), r.Trials...), trials("fast", PGCrash, 5.1, 5.3, 5.6, 4.0, 6.0)...)
	assert.Equal(t, Missed, goalByName(Goals(crash), "PostgreSQL-only").Verdict, "median 5.3 > 5")

	// One lost write anywhere, or one double-primary instant, misses.
	r.Trials[5].Lost = 3 // missing on a node that did not rejoin, not on the leader
	gs = Goals(r)
	assert.Equal(t, Met, goalByName(gs, "acknowledged").Verdict)
	assert.Contains(t, goalByName(gs, "acknowledged").Why, "3 were missing on a node")
	r.Trials[7].LostOnLeader = 1
	r.Trials[2].SplitBrain = 1
	r.Costs[0].Via = []float64{500}
	gs = Goals(r)
	assert.Equal(t, Missed, goalByName(gs, "acknowledged").Verdict)
	assert.Equal(t, Missed, goalByName(gs, "split-brain").Verdict)
	assert.Equal(t, Missed, goalByName(gs, "HAProxy").Verdict)

	// Nothing measured: nothing is claimed.
	for _, g := range Goals(Result{}) {
		assert.Equal(t, NotMeasured, g.Verdict, g.Name)
	}
}

func TestMarkdown(t *testing.T) {
	r := sample()
	r.Trials[3].Problems = []string{"no write was acknowledged"}
	md := Markdown(r, "benchmarks.svg")
	assert.True(t, strings.HasPrefix(md, Heading+"\n"))
	for _, want := range []string{
		"2 CPUs", "1.00/2.00/3.00 before", "synchronous mode on", r.Command,
		"| leader kill: writes back | median ≤ 10.0 s | median 10.80 s of 5 (max 11.00 s) | **MISSED** |",
		"| switchover write gap | median ≤ 2.5 s | median 2.20 s of 5 (max 3.00 s) | **MET** |",
		"| Amazon RDS Multi-AZ (instance) | 60–120 s |", "| Amazon Aurora | ~30 s |", "| Pigsty `fast` mode | ~23 s |",
		"| pgha `fast`, leader kill (SIGKILL) | median 10.80 s (max 11.00 s) | measured here, runs: 5 |",
		"### Profile `fast`", "### Profile `safe`",
		"| switchover: write gap | 5 | 2.00 | 2.20 | 3.00 | 3.00 | 2.10, 2.20, 2.00, 2.40, 3.00 |",
		"| leader kill (SIGKILL): RTO | 2 | 30.00 | 30.50 | 31.00 | 31.00 | 30.00, 31.00 |",
		"| select-only (-S) | 4 / 2 / 15 | 900, 950 | 1000, 1000 | 0.93 |",
		"![Distribution of write outage per profile and kind](benchmarks.svg)",
		"- `fast` switchover run 4: no write was acknowledged",
	} {
		assert.Contains(t, md, want)
	}
	sameCells(t, md)
}

// sameCells checks that every table row has as many cells as its header.
func sameCells(t *testing.T, md string) {
	t.Helper()
	var cols int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(line, "|")
		if cols == 0 {
			cols = n
		}
		assert.Equal(t, cols, n, line)
	}
}

func TestSVGWellFormed(t *testing.T) {
	r := sample()
	r.Trials[0].Outage = math.NaN()          // a run that never resumed is left out, not drawn at 0
	r.Profiles = append(r.Profiles, "a<b&c") // escaping
	svg := SVG(r)
	d := xml.NewDecoder(bytes.NewReader(svg))
	circles, root := 0, ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "SVG must be well-formed XML")
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				assert.Equal(t, "http://www.w3.org/2000/svg", se.Name.Space)
			}
			if se.Name.Local == "circle" {
				circles++
			}
		}
	}
	assert.Equal(t, "svg", root)
	assert.Equal(t, len(r.Trials)-1, circles, "one dot per measured run")
	assert.Contains(t, string(svg), "median 10.80 s")
	assert.Contains(t, string(svg), "goal 10.0 s")

	// An empty result still renders a valid chart.
	require.NoError(t, xml.Unmarshal(SVG(Result{}), new(struct{})))
}

func TestMerge(t *testing.T) {
	old := sample() // fast and safe
	old.Notes = []string{"the safe lab was rebuilt after kill run 1 failed", "the fast lab was rebuilt after kill run 2 failed"}
	cur := Result{
		Started: old.Finished.Add(time.Minute), Finished: old.Finished.Add(20 * time.Minute),
		Command: "go run ./validate bench --profiles safe --runs 5", Runs: 5, Sync: true, Profiles: []string{"safe"},
		Trials: trials("safe", Kill, 28, 29, 30, 31, 32),
	}
	m := Merge(old, cur)
	assert.Equal(t, []string{"fast", "safe"}, m.Profiles)
	assert.Len(t, m.Select("safe", Kill), 5, "the new safe trials replace the old two")
	assert.Len(t, m.Select("fast", Kill), 5, "fast is kept")
	assert.Equal(t, old.Costs, m.Costs, "pgbench figures kept when not re-measured")
	assert.Equal(t, old.Started, m.Started)
	assert.Equal(t, cur.Finished, m.Finished)
	assert.Equal(t, []string{"the fast lab was rebuilt after kill run 2 failed"}, m.Notes)
	assert.Equal(t, old.Command+"\n"+cur.Command, m.Command)
	md := Markdown(m, "")
	assert.Contains(t, md, "    "+old.Command+"\n    "+cur.Command+"\n", "both commands in one code block")
}

func TestTrialJSON(t *testing.T) {
	in := trials("fast", Kill, 9.5)[0]
	in.Rejoin = math.NaN()
	in.Problems = []string{"did not rejoin"}
	b, err := json.Marshal(Result{Trials: []Trial{in}})
	require.NoError(t, err, "NaN must not break the JSON")
	assert.Contains(t, string(b), `"rejoin_s":null`)
	var out Result
	require.NoError(t, json.Unmarshal(b, &out))
	require.Len(t, out.Trials, 1)
	got := out.Trials[0]
	assert.True(t, math.IsNaN(got.Rejoin))
	assert.Equal(t, 9.5, got.Outage)
	assert.Equal(t, in.Problems, got.Problems)
	// A figure an older file lacks is unmeasured, not zero.
	require.NoError(t, json.Unmarshal([]byte(`{"profile":"fast","kind":"kill","outage_s":9}`), &got))
	assert.True(t, math.IsNaN(got.LostOnLeader))
}

// pooledSample is the fast profile with the pooler's figures: five
// switchovers that failed no pooled operation and held none for more than
// 2.5 s, five kills failing at most one pooled insert each and coming back
// within one write interval of the direct writer, and the pooler's pgbench
// comparison.
func pooledSample() Result {
	r := sample()
	r.Trials = nil
	r.Trials = append(r.Trials, withPooler(trials("fast", Switchover, 2.1, 2.2, 2.0, 2.4, 3.0),
		[]float64{0, 0, 0, 0, 0}, []float64{2.0, 2.1, 2.5, 2.2, 2.3}, []float64{2.1, 2.2, 2.0, 2.4, 3.0})...)
	r.Trials = append(r.Trials, withPooler(trials("fast", Kill, 9.5, 10.5, 11, 10.8, 10.9),
		[]float64{1, 1, 0, 1, 1}, []float64{1.0, 1.0, 1.0, 1.0, 1.0}, []float64{9.5, 10.55, 11.1, 10.85, 10.9})...)
	r.Trials = append(r.Trials, trials("safe", Kill, 30, 31)...)
	r.PoolerCosts = []PoolerCost{{Workload: "select-only (-S)", Clients: 16, Threads: 2, Seconds: 15,
		Pooler: []float64{6000, 6400}, HAProxy: []float64{8000, 8000}, Load1: 2.1,
		PoolerBusy: []float64{99, 98}, HAProxyBusy: []float64{97, 96}, PgBouncerCPU: []float64{45, 47}}}
	r.PoolerCostProfile = "fast"
	return r
}

func TestPooledGoals(t *testing.T) {
	r := pooledSample()
	gs := Goals(r)
	swFailed := goalByName(gs, "switchover through the pooler: failed")
	assert.Equal(t, Met, swFailed.Verdict)
	assert.Equal(t, "0 in every run", swFailed.Target)
	assert.Equal(t, "max 0, median 0, of 5", swFailed.Measured)
	swLong := goalByName(gs, "switchover through the pooler: longest")
	assert.Equal(t, Met, swLong.Verdict, "max 2.5 ≤ 3")
	assert.Equal(t, "max 2.50 s, median 2.20 s, of 5", swLong.Measured)
	killFailed := goalByName(gs, "leader kill through the pooler: failed")
	assert.Equal(t, Met, killFailed.Verdict, "one failed insert per run is the writer's concurrency")
	killRTO := goalByName(gs, "leader kill through the pooler: writes back")
	assert.Equal(t, Met, killRTO.Verdict, "median 10.85 vs 10.80 direct: within one write interval")
	assert.Equal(t, "median 10.85 s through the pooler, 10.80 s direct (+0.05 s), of 5", killRTO.Measured)
	ratio := goalByName(gs, "pooler throughput ratio")
	assert.Equal(t, "pooler throughput ratio, select-only (-S), 16 clients", ratio.Name)
	assert.Equal(t, Missed, ratio.Verdict, "6200/8000")
	assert.Equal(t, "0.78", ratio.Measured)
	assert.Contains(t, ratio.Why, "the CPUs were the limit: 98 % busy during the pooled rounds, 96 % through HAProxy alone, "+
		"PgBouncer's thread using 46 % of one core")
	// The HAProxy goals are judged as before, beside them.
	assert.Equal(t, Met, goalByName(gs, "HAProxy").Verdict)

	// One failed pooled operation in one switchover misses, and so does
	// one operation held 3.2 s; each says why.
	miss := pooledSample()
	miss.Trials[2].PooledWritesFailed = 1
	miss.Trials[3].PooledLongestWrite = 3.2
	miss.Trials[5].PooledWritesFailed = 2 // a kill that failed two
	for i := 5; i < 10; i++ {
		miss.Trials[i].PooledOutage = miss.Trials[i].Outage + 0.9
	}
	miss.PoolerCosts[0].Pooler = []float64{7800, 7600}
	gs = Goals(miss)
	for _, name := range []string{"switchover through the pooler: failed", "switchover through the pooler: longest",
		"leader kill through the pooler: failed", "leader kill through the pooler: writes back"} {
		g := goalByName(gs, name)
		assert.Equal(t, Missed, g.Verdict, name)
		assert.NotEmpty(t, g.Why, name)
	}
	assert.Contains(t, goalByName(gs, "switchover through the pooler: longest").Why, "median 2.10 s, max 2.40 s here",
		"the pause it measured is in the why")
	assert.Equal(t, "max 2, median 1, of 5", goalByName(gs, "leader kill through the pooler: failed").Measured)
	assert.Contains(t, goalByName(gs, "leader kill through the pooler: writes back").Why, "server_login_retry")
	assert.Equal(t, Met, goalByName(gs, "pooler throughput ratio").Verdict, "7700/8000 = 0.96")

	// Fewer than MinRunsForGoal runs: a bound kept is not met yet, but
	// one run over it already misses the goal of every run.
	few := pooledSample()
	few.Trials = append(append([]Trial(nil), few.Trials[:3]...), few.Trials[5:8]...)
	gs = Goals(few)
	assert.Equal(t, NotMeasured, goalByName(gs, "switchover through the pooler: failed").Verdict)
	assert.Contains(t, goalByName(gs, "switchover through the pooler: failed").Why, "only 3 runs")
	assert.Equal(t, NotMeasured, goalByName(gs, "leader kill through the pooler: writes back").Verdict)
	few.Trials[0].PooledWritesFailed = 1
	assert.Equal(t, Missed, goalByName(Goals(few), "switchover through the pooler: failed").Verdict)

	// A bench without a pooler (or from before it) claims nothing about it.
	for _, g := range Goals(sample()) {
		if strings.Contains(g.Name, "pooler") {
			assert.Equal(t, NotMeasured, g.Verdict, g.Name)
			assert.Equal(t, "–", g.Measured, g.Name)
			assert.NotEmpty(t, g.Why, g.Name)
		}
	}
}

func TestPoolerLimit(t *testing.T) {
	c := PoolerCost{Load1: 1.7}
	assert.Equal(t, "what limited it was not measured (1-minute load 1.7 when it began)", PoolerLimit(c, 2))
	c.PoolerBusy, c.PgBouncerCPU = []float64{70}, []float64{97}
	assert.Equal(t, "PgBouncer's one thread was the limit: it used 97 % of a core during the pooled rounds (the CPUs 70 % busy)",
		PoolerLimit(c, 2))
	c.PgBouncerCPU = []float64{40}
	assert.Contains(t, PoolerLimit(c, 2), "neither PgBouncer's thread (40 % of a core) nor the CPUs (70 % busy) were saturated")
	c.PoolerBusy = []float64{95}
	assert.Contains(t, PoolerLimit(c, 2), "the CPUs were the limit")
	assert.Contains(t, PoolerLimit(c, 2), "share the same 2 CPUs")
}

func TestMarkdownClientsView(t *testing.T) {
	md := Markdown(pooledSample(), "")
	for _, want := range []string{
		"a second writer inserting every 50 ms through the pooler",
		"#### Clients' view: direct vs through the pooler",
		"| switchover | direct (HAProxy 5000) | 5 | 1 / 1 | 0.90 / 0.90 | 2.20 | – |",
		"| switchover | through the pooler (6432) | 5 | 0 / 0 | 2.20 / 2.50 | 2.20 | 2.10 / 2.40 |",
		"| leader kill (SIGKILL) | through the pooler (6432) | 5 | 1 / 1 | 1.00 / 1.00 | 10.85 | – |",
		"| switchover through the pooler: failed client operations | 0 in every run | max 0, median 0, of 5 | **MET** |",
		"### The pooler's cost",
		"| select-only (-S) | 16 / 2 / 15 | 6000, 6400 | 8000, 8000 | 0.78 | 99, 98 / 97, 96 | 45, 47 | 2.1 |",
		"What limited select-only (-S) through the pooler, as measured: the CPUs were the limit",
		"pgbench runs 2 threads on the machine's 2 CPUs",
	} {
		assert.Contains(t, md, want)
	}
	sameCells(t, md)
	// The safe profile measured no client's view: no table of dashes.
	safe := md[strings.Index(md, "### Profile `safe`"):]
	assert.NotContains(t, safe, "Clients' view")

	// A bench from before the pooler renders as before, its goals about
	// the pooler not measured.
	old := Markdown(sample(), "")
	assert.NotContains(t, old, "Clients' view")
	assert.NotContains(t, old, "The pooler's cost")
	assert.NotContains(t, old, "through the pooler (PgBouncer")
	assert.Contains(t, old, "| switchover through the pooler: failed client operations | 0 in every run | – | **NOT MEASURED** |")

	// A pooled figure one run lacks is a dash where nothing else is
	// measured, and is skipped in the statistics.
	r := pooledSample()
	for i := 0; i < 5; i++ {
		r.Trials[i].PoolerStall = math.NaN()
	}
	r.PoolerCosts[0].PgBouncerCPU, r.PoolerCosts[0].PoolerBusy, r.PoolerCosts[0].HAProxyBusy = nil, nil, nil
	md = Markdown(r, "")
	assert.Contains(t, md, "| switchover | through the pooler (6432) | 5 | 0 / 0 | 2.20 / 2.50 | 2.20 | – |")
	assert.Contains(t, md, "| 0.78 | – / – | – | 2.1 |")
	assert.Contains(t, md, "as measured: what limited it was not measured")
}

func TestPooledJSON(t *testing.T) {
	r := pooledSample()
	r.Trials[0].PoolerStall = math.NaN()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"pooler_stall_s":null`)
	assert.Contains(t, string(b), `"pooled_writes_failed":0`)
	var out Result
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, r.PoolerCosts, out.PoolerCosts)
	assert.Equal(t, "fast", out.PoolerCostProfile)
	got := out.Trials[1]
	assert.Equal(t, 0.0, got.PooledWritesFailed)
	assert.Equal(t, 2.1, got.PooledLongestWrite)
	assert.Equal(t, 2.0, got.PoolerStall)
	assert.Equal(t, 1.0, got.WritesFailed)
	assert.Equal(t, 40.0, got.PooledWrites)
	assert.True(t, math.IsNaN(out.Trials[0].PoolerStall))

	// A file from before the pooler: every new figure unmeasured.
	require.NoError(t, json.Unmarshal([]byte(`{"profile":"fast","kind":"switchover","outage_s":2.1,"write_gap_s":2.1}`), &got))
	for name, v := range map[string]float64{"writes_failed": got.WritesFailed, "longest_write_s": got.LongestWrite,
		"pooled_writes_total": got.PooledWrites, "pooled_writes_failed": got.PooledWritesFailed, "pooled_write_gap_s": got.PooledWriteGap,
		"pooled_outage_s": got.PooledOutage, "pooled_longest_write_s": got.PooledLongestWrite, "pooler_stall_s": got.PoolerStall} {
		assert.True(t, math.IsNaN(v), name)
	}
}

func TestMergeKinds(t *testing.T) {
	old := sample() // fast: switchover, kill, partition; safe: kill
	old.Notes = []string{"the fast lab was rebuilt after partition run 2 failed", "the fast lab was rebuilt after kill run 1 failed",
		"HAProxy cost on the fast lab: refused"}
	cur := Result{
		Started: old.Finished.Add(time.Minute), Finished: old.Finished.Add(20 * time.Minute),
		Command: "go run ./validate bench --profiles fast --runs 5 --kinds switchover,kill", Runs: 5, Sync: true,
		Profiles: []string{"fast"}, Kinds: []string{Switchover, Kill},
		Trials: append(trials("fast", Switchover, 1.9, 2.0, 2.1, 2.2, 2.3), trials("fast", Kill, 9, 9, 9, 9, 9)...),
	}
	m := Merge(old, cur)
	assert.Equal(t, []string{"fast", "safe"}, m.Profiles, "in the earlier order")
	assert.Len(t, m.Select("fast", Partition), 3, "the kinds not run again are kept")
	assert.Len(t, m.Select("safe", Kill), 2)
	outage := func(t Trial) float64 { return t.Outage }
	assert.Equal(t, []float64{1.9, 2.0, 2.1, 2.2, 2.3}, column(m.Select("fast", Switchover), outage), "the kinds run again are the new trials")
	assert.Equal(t, []float64{9, 9, 9, 9, 9}, column(m.Select("fast", Kill), outage))
	assert.Equal(t, []string{"the fast lab was rebuilt after partition run 2 failed"}, m.Notes,
		"a rebuilt lab's note goes with its kind; other notes of a re-run profile go")
	assert.Equal(t, old.Costs, m.Costs, "HAProxy's cost kept when not re-measured")
	assert.Nil(t, m.Kinds, "the earlier bench ran every kind")
	assert.Equal(t, []string{Switchover, Kill}, Merge(cur, Result{Profiles: []string{"safe"}, Kinds: []string{Kill}}).Kinds)

	assert.Equal(t, []string{"fast", "safe"}, Merge(sample(), Result{Profiles: []string{"safe", "balanced"}}).Profiles[:2])
	assert.Equal(t, []string{"fast", "safe", "balanced"}, Merge(sample(), Result{Profiles: []string{"balanced"}}).Profiles,
		"a profile the earlier run did not have comes last")
}

func TestMergePoolerCosts(t *testing.T) {
	cur := pooledSample()
	cur.Profiles, cur.Kinds = []string{"fast"}, []string{Switchover, Kill}
	cur.Costs = nil
	m := Merge(sample(), cur)
	assert.Equal(t, sample().Costs, m.Costs, "HAProxy's cost kept when not re-measured")
	assert.Equal(t, cur.PoolerCosts, m.PoolerCosts, "the pooler's measured now")

	// An earlier file with the pooler's cost keeps it when the newer one
	// did not measure it.
	m = Merge(cur, Result{Profiles: []string{"safe"}, Kinds: []string{Kill}})
	assert.Equal(t, cur.PoolerCosts, m.PoolerCosts)
	assert.Equal(t, "fast", m.PoolerCostProfile)
}

func TestMergeAddsTheRunsMinutes(t *testing.T) {
	day := time.Date(2026, 11, 26, 5, 57, 0, 0, time.UTC)
	old := Result{Started: day, Finished: day.Add(25 * time.Minute), Profiles: []string{"fast"}}
	cur := Result{Started: day.Add(6 * 24 * time.Hour), Finished: day.Add(6*24*time.Hour + 7*time.Minute), Profiles: []string{"fast"}, Kinds: []string{Switchover}}
	m := Merge(old, cur)
	assert.InDelta(t, 32, m.RunMinutes(), 1e-9, "the two runs' times, not the days between them")
	assert.Contains(t, Markdown(m, ""), "about 32 minutes")
	assert.Contains(t, Markdown(m, ""), "Measured 2026-11-26 05:57–2026-12-02 06:04 UTC")
	assert.InDelta(t, 39, Merge(m, cur).RunMinutes(), 1e-9, "merged again: adds up")
}
