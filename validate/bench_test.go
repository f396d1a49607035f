package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/bench"
	"github.com/pgha/pgha/validate/internal/report"
)

func TestParseBenchOptions(t *testing.T) {
	o, err := parseBenchOptions([]string{"--profiles", "fast", "--kinds", "kill", "--runs", "2", "--doc", "x/b.md"}, os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, []string{"fast"}, o.profiles)
	assert.Equal(t, []string{"kill"}, o.kinds)
	assert.Equal(t, filepath.Join("x", "benchmarks.svg"), o.svg)
	assert.Equal(t, "go run ./validate bench --profiles fast --runs 2 --kinds kill --doc x/b.md", reproduceBench(o))
	for _, bad := range [][]string{
		{"--profiles", "turbo"}, {"--kinds", "stop"}, {"--runs", "0"}, {"extra"},
	} {
		_, err := parseBenchOptions(bad, os.Stderr)
		require.Error(t, err, "%v", bad)
		assert.True(t, isUserError(err), "%v: %v", bad, err)
	}
	// A lab name is the lab command's to judge: `lab up` refuses a bad one
	// before it makes anything (lab/cluster TestLabNames).
}

// checkOf is a check that reported the figures given as key, value pairs.
func checkOf(kv ...any) report.Check {
	var c report.Check
	for i := 0; i < len(kv); i += 2 {
		c.Figures = append(c.Figures, report.Figure{Key: kv[i].(string), Value: kv[i+1].(float64)})
	}
	return c
}

func TestTrialFigures(t *testing.T) {
	// A switchover held behind the poolers: the gaps are the outages, and
	// the pooler's pause is the stall.
	c := checkOf("write_gap_s", 2.1, "rejoin_s", 5.0, "writes_failed", 2.0, "longest_write_s", 1.0,
		"pooled_writes_total", 60.0, "pooled_writes_failed", 0.0, "pooled_write_gap_s", 2.3, "pooled_rto_s", 2.4,
		"pooled_longest_write_s", 2.2, "pooler_stall_s", 2.0, "acked_writes", 100.0, "lost_writes", 0.0,
		"lost_on_leader", 0.0, "split_brain_instants", 0.0, "primary_polls", 40.0)
	c.Problems = []string{"one"}
	tr := trialFigures(bench.Trial{Kind: bench.Switchover, Problems: []string{"restore"}}, c)
	assert.Equal(t, 2.1, tr.Outage)
	assert.Equal(t, 5.0, tr.Rejoin)
	assert.Equal(t, 2.0, tr.WritesFailed)
	assert.Equal(t, 1.0, tr.LongestWrite)
	assert.Equal(t, 60.0, tr.PooledWrites)
	assert.Equal(t, 0.0, tr.PooledWritesFailed)
	assert.Equal(t, 2.3, tr.PooledWriteGap)
	assert.Equal(t, 2.3, tr.PooledOutage, "a switchover's outage is its write gap, through the pooler too")
	assert.Equal(t, 2.2, tr.PooledLongestWrite)
	assert.Equal(t, 2.0, tr.PoolerStall)
	assert.Equal(t, 40, tr.SplitBrainPolls)
	assert.Equal(t, []string{"restore", "one"}, tr.Problems)

	// A kill: the RTOs, each client's own.
	tr = trialFigures(bench.Trial{Kind: bench.Kill}, checkOf("write_gap_s", 9.0, "rto_s", 9.3, "recovered_s", 7.0,
		"pooled_write_gap_s", 9.1, "pooled_rto_s", 9.35, "pooled_writes_failed", 1.0))
	assert.Equal(t, 9.3, tr.Outage)
	assert.Equal(t, 9.35, tr.PooledOutage)
	assert.Equal(t, 1.0, tr.PooledWritesFailed)
	assert.True(t, math.IsNaN(tr.PoolerStall), "no pause in a failover")

	// A gap under the outage threshold has no direct RTO: the pooled side
	// takes its gap as well, like with like.
	tr = trialFigures(bench.Trial{Kind: bench.PGCrash}, checkOf("write_gap_s", 0.4, "pooled_write_gap_s", 0.5, "pooled_rto_s", 3.0))
	assert.Equal(t, 0.4, tr.Outage)
	assert.Equal(t, 0.5, tr.PooledOutage)

	// A lab without a pooler: nothing through it is measured.
	tr = trialFigures(bench.Trial{Kind: bench.Kill}, checkOf("rto_s", 9.0, "writes_failed", 3.0, "longest_write_s", 1.0))
	for name, v := range map[string]float64{"pooled_writes_failed": tr.PooledWritesFailed, "pooled_outage": tr.PooledOutage,
		"pooled_longest_write_s": tr.PooledLongestWrite, "pooled_write_gap_s": tr.PooledWriteGap, "pooled_writes_total": tr.PooledWrites} {
		assert.True(t, math.IsNaN(v), name)
	}
	assert.Equal(t, 3.0, tr.WritesFailed)
}

func TestCPUSample(t *testing.T) {
	stat := "cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 50 2 25 400 10 1 1 0 0 0\ncpu1 50 3 25 400 10 2 1 0 0 0\nintr 1 2 3\nctxt 9\n"
	a, err := parseProcStat(stat)
	require.NoError(t, err)
	assert.Equal(t, cpuSample{busy: 160, total: 980, cpus: 2}, a, "guest time is in user already; idle and iowait are not busy")
	_, err = parseProcStat("intr 1\n")
	require.Error(t, err)

	comm, ticks, ok := parsePidStat("4242 (pgbouncer) S 1 4242 4242 0 -1 4194560 900 0 0 0 120 30 0 0 20 0 1 0 100 1000 200")
	require.True(t, ok)
	assert.Equal(t, "pgbouncer", comm)
	assert.Equal(t, uint64(150), ticks)
	comm, ticks, ok = parsePidStat("7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1")
	require.True(t, ok, "a name with spaces and parentheses")
	assert.Equal(t, "a) b (c", comm)
	assert.Equal(t, uint64(11), ticks)
	_, _, ok = parsePidStat("garbage")
	assert.False(t, ok)

	// 2 CPUs over 1000 ticks of wall clock each: 2000 ticks, 1500 busy;
	// PgBouncer used 400 ticks, 40 % of one core.
	b := cpuSample{busy: a.busy + 1500, total: a.total + 2000, pgbouncer: 400, cpus: 2}
	busy, pgb := a.usage(b)
	assert.InDelta(t, 75.0, busy, 1e-9)
	assert.InDelta(t, 40.0, pgb, 1e-9)
	// A PgBouncer that exited between the samples: its share is unknown.
	a.pgbouncer = 500
	_, pgb = a.usage(b)
	assert.True(t, math.IsNaN(pgb))
	busy, _ = a.usage(a)
	assert.True(t, math.IsNaN(busy), "no time passed")
}
