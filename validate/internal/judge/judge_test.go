package judge

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
)

// failoverTimeline is a clean failover in synchronous mode: pg-1 (10.0.0.1)
// acknowledges writes every 100 ms until it is killed at 2 s; pg-2
// (10.0.0.2) is seen promoted at 5 s and acknowledges from 5.5 s; the
// cluster is healthy again at 8 s; every node holds every acknowledged row.
func failoverTimeline() report.Timeline {
	tl := report.Timeline{
		Check: "failover", Start: at(0), End: at(10000), FaultAt: at(2000),
		SynchronousMode: true, WriteInterval: 100 * time.Millisecond, FinalLeader: "pg-2",
		Servers: map[string]string{"10.0.0.1": "pg-1", "10.0.0.2": "pg-2", "10.0.0.3": "pg-3"},
		Events: []report.Event{
			{At: at(2000), Kind: "fault", Node: "pg-1"},
			{At: at(5000), Kind: "promotion", Node: "pg-2"},
			{At: at(6000), Kind: "restore", Node: "pg-1"},
			{At: at(8000), Kind: "healthy", Node: "pg-2"},
		},
		Rows: map[string][]history.Row{},
	}
	var rows []history.Row
	id := int64(0)
	for ms := 0; ms < 10000; ms += 100 {
		op := history.Op{Start: at(ms), End: at(ms + 10)}
		switch {
		case ms < 2000:
			id++
			op.ID, op.OK, op.Server = id, true, "10.0.0.1"
			rows = append(rows, history.Row{ID: id, Origin: "pg-1"})
		case ms < 5500:
			op.Err = "connection refused"
		default:
			id++
			op.ID, op.OK, op.Server = id, true, "10.0.0.2"
			rows = append(rows, history.Row{ID: id, Origin: "pg-2"})
		}
		tl.Writes = append(tl.Writes, op)
		tl.Reads = append(tl.Reads, history.Op{Start: at(ms), End: at(ms + 5), OK: ms < 2000 || ms >= 4000, Server: "10.0.0.3"})
		primary := "pg-1"
		if ms >= 5000 {
			primary = "pg-2"
		}
		var ps []string
		if ms < 2000 || ms >= 5000 {
			ps = []string{primary}
		}
		tl.Rounds = append(tl.Rounds, history.Round{At: at(ms + 50), Primaries: ps, Writable: ps})
	}
	for _, n := range []string{"pg-1", "pg-2", "pg-3"} {
		tl.Rows[n] = rows
	}
	return tl
}

func property(t *testing.T, v Verdict, name string) report.Property {
	t.Helper()
	for _, p := range v.Properties {
		if p.Name == name {
			return p
		}
	}
	require.Failf(t, "no property", "%s not judged: %v", name, v.Properties)
	return report.Property{}
}

func figure(t *testing.T, v Verdict, key string) float64 {
	t.Helper()
	for _, f := range v.Figures {
		if f.Key == key {
			return f.Value
		}
	}
	require.Failf(t, "no figure", "%s not computed", key)
	return 0
}

func TestCleanFailoverKeepsEveryPromise(t *testing.T) {
	v := Judge(failoverTimeline())
	require.Empty(t, v.Problems())
	require.Empty(t, v.Tolerated())
	for _, name := range []string{WritesResumed, OnePrimary, OneWritable, DeposedSilent, NoAckedWriteLost, SingleHistory, ServiceRestored} {
		assert.True(t, property(t, v, name).Holds, name)
	}
	assert.InDelta(t, 3.6, figure(t, v, "write_gap_s"), 0.001, "last ack 1.91 s → first ack 5.51 s")
	assert.InDelta(t, 3.51, figure(t, v, "rto_s"), 0.001, "fault at 2 s → first ack 5.51 s")
	assert.Equal(t, at(5510), v.Resumed)
	assert.Equal(t, 65.0, figure(t, v, "acked_writes"))
	assert.Equal(t, 0.0, figure(t, v, "lost_on_leader"))
	assert.Equal(t, 100.0, figure(t, v, "primary_polls"))
	assert.Equal(t, 30.0, figure(t, v, "polls_without_primary"))
	assert.Equal(t, 20.0, figure(t, v, "reads_failed"))
	for _, f := range v.Figures {
		assert.Contains(t, FigureKeys, f.Key, "every judged figure is compared by validate judge")
	}
}

// A lost acknowledged write fails in synchronous mode and on a planned
// switchover, and is reported but tolerated on an asynchronous failover.
func TestLostWrite(t *testing.T) {
	tl := failoverTimeline()
	for n, rows := range tl.Rows {
		tl.Rows[n] = rows[:len(rows)-1]
	}
	p := property(t, Judge(tl), NoAckedWriteLost)
	require.False(t, p.Holds)
	require.False(t, p.Tolerated)
	require.Contains(t, p.Detail[0], "1 acknowledged writes are not on the final leader (ids 65)")

	tl.SynchronousMode = false
	v := Judge(tl)
	p = property(t, v, NoAckedWriteLost)
	require.True(t, p.Tolerated)
	require.Empty(t, v.Problems())
	require.Contains(t, v.Tolerated()[0], "asynchronous replication: 1 acknowledged writes lost")

	tl.Planned = true
	require.False(t, property(t, Judge(tl), NoAckedWriteLost).Tolerated, "a planned switchover may never lose one")
}

func TestTwoPrimaries(t *testing.T) {
	tl := failoverTimeline()
	tl.Rounds[60].Primaries = []string{"pg-1", "pg-2"}
	v := Judge(tl)
	require.False(t, property(t, v, OnePrimary).Holds)
	require.Contains(t, v.Problems()[0], "two primaries at once in 1 of 100 polls")

	tl = failoverTimeline()
	tl.Rounds[60].Writable = []string{"pg-1", "pg-2"}
	p := property(t, Judge(tl), OneWritable)
	require.True(t, p.Tolerated, "synchronous mode: the old primary could not acknowledge")
	tl.SynchronousMode = false
	require.False(t, property(t, Judge(tl), OneWritable).Tolerated)

	tl.Rounds = nil
	require.Contains(t, property(t, Judge(tl), OnePrimary).Detail, "the /primary poller recorded nothing")
}

func TestDeposedLeaderAcknowledging(t *testing.T) {
	tl := failoverTimeline()
	// pg-1 acknowledges a write that started after pg-2 was seen promoted.
	tl.Writes = append(tl.Writes, history.Op{ID: 999, Start: at(5200), End: at(5210), OK: true, Server: "10.0.0.1"})
	for n, rows := range tl.Rows {
		tl.Rows[n] = append(rows, history.Row{ID: 999, Origin: "pg-1"})
	}
	p := property(t, Judge(tl), DeposedSilent)
	require.False(t, p.Holds)
	require.Contains(t, p.Detail[0], "1 writes were acknowledged by pg-1 after pg-2 had taken over (ids 999)")
}

// Two failovers in a row, pg-1 → pg-2 → pg-1: a pooled write held while
// pg-2 was gone runs on pg-1 once it leads again. Started while pg-2 led,
// acknowledged by pg-1 after pg-1's promotion: pg-1's as leader. The same
// ack arriving before that promotion was seen is a deposed leader's.
func TestHeldWriteAcknowledgedByTheNextLeader(t *testing.T) {
	held := func(end int) report.Timeline {
		tl := failoverTimeline()
		tl.Events = append(tl.Events, report.Event{At: at(9950), Kind: "promotion", Node: "pg-1"})
		tl.PooledWrites = []history.Op{{ID: 1_000_000_001, Start: at(9500), End: at(end), OK: true, Server: "10.0.0.1"}}
		for n, rows := range tl.Rows {
			tl.Rows[n] = append(rows, history.Row{ID: 1_000_000_001, Origin: "pg-1"})
		}
		return tl
	}
	assert.True(t, property(t, Judge(held(9990)), DeposedSilent).Holds)
	p := property(t, Judge(held(9940)), DeposedSilent)
	require.False(t, p.Holds)
	assert.Contains(t, p.Detail[0], "1 writes were acknowledged by pg-1 after pg-2 had taken over (ids 1000000001)")
}

func TestDivergentNodeAndNoRecovery(t *testing.T) {
	tl := failoverTimeline()
	tl.Rows["pg-1"] = append(tl.Rows["pg-1"], history.Row{ID: 1000, Origin: "pg-1"})
	p := property(t, Judge(tl), SingleHistory)
	require.False(t, p.Holds)
	require.Contains(t, p.Detail[0], "pg-1 holds 1 rows the final leader never had")

	tl = failoverTimeline()
	for i := range tl.Writes {
		if tl.Writes[i].Start.After(at(2000)) {
			tl.Writes[i].OK, tl.Writes[i].Err = false, "refused"
		}
	}
	v := Judge(tl)
	require.Contains(t, property(t, v, WritesResumed).Detail, "writes never resumed after the fault")
	require.Contains(t, property(t, v, ServiceRestored).Detail[0], "no write succeeded once the cluster was back")

	tl.FinalLeader = ""
	require.Contains(t, property(t, Judge(tl), SingleHistory).Detail, "no final leader to judge the history against")
}

// The judge is pure: judging the JSON form of a timeline (what report.json
// keeps) gives exactly the verdict of the live one.
func TestJudgeIsPureAndReRunnableFromJSON(t *testing.T) {
	tl := failoverTimeline()
	tl.Rows["pg-3"] = tl.Rows["pg-3"][:10] // something to find
	live := Judge(tl)
	b, err := json.Marshal(tl)
	require.NoError(t, err)
	var saved report.Timeline
	require.NoError(t, json.Unmarshal(b, &saved))
	require.Equal(t, live, Judge(saved))
	require.Equal(t, live, Judge(tl), "judging twice changes nothing")
}

// pooledSwitchover is failoverTimeline turned into a switchover held
// behind the poolers: a pooled writer beside the direct one, held from
// the pause (2 s) to the resume (5.6 s) and acknowledged by pg-2 after.
func pooledSwitchover(failAt ...int) report.Timeline {
	tl := failoverTimeline()
	tl.Planned = true
	tl.Events = append(tl.Events, report.Event{At: at(1900), Kind: PauseEvent})
	id := int64(1_000_000_000)
	for ms := 0; ms < 10000; ms += 100 {
		if ms > 2000 && ms < 5600 {
			continue // held: the write started at 2 s ends at 5.6 s
		}
		id++
		op := history.Op{ID: id, Start: at(ms), End: at(ms + 10), OK: true, Server: "10.0.0.1"}
		origin := "pg-1"
		if ms == 2000 {
			op.End = at(5600)
		}
		if ms >= 2000 {
			op.Server, origin = "10.0.0.2", "pg-2"
		}
		if slices.Contains(failAt, ms) {
			op.OK, op.Err, op.Server = false, "server closed the connection unexpectedly", ""
		}
		tl.PooledWrites = append(tl.PooledWrites, op)
		if op.OK {
			for n := range tl.Rows {
				tl.Rows[n] = append(tl.Rows[n], history.Row{ID: id, Origin: origin})
			}
		}
	}
	return tl
}

func TestPooledWritesSideBySide(t *testing.T) {
	v := Judge(pooledSwitchover())
	assert.Empty(t, v.Problems())
	assert.True(t, property(t, v, PooledNoError).Holds)
	assert.Equal(t, 0.0, figure(t, v, "pooled_writes_failed"))
	assert.InDelta(t, 3.6, figure(t, v, "pooled_longest_write_s"), 1e-9, "the held write is the longest stall")
	assert.InDelta(t, 3.69, figure(t, v, "pooled_write_gap_s"), 1e-9, "last pooled ack before the pause → the held write's")
	assert.Greater(t, figure(t, v, "writes_failed"), 0.0, "the direct writer saw the gap as errors")
	assert.InDelta(t, 0.01, figure(t, v, "longest_write_s"), 1e-9)
	// Both writers' acknowledged writes count.
	assert.Equal(t, float64(len(history.Acked(failoverTimeline().Writes))+65), figure(t, v, "acked_writes"))
}

func TestPooledErrorFailsAPlannedSwitchover(t *testing.T) {
	v := Judge(pooledSwitchover(5600))
	p := property(t, v, PooledNoError)
	require.False(t, p.Holds)
	assert.False(t, p.Tolerated)
	assert.Contains(t, p.Detail[0], "1 writes through the pooler failed during a switchover held behind it")
	assert.Equal(t, 1.0, figure(t, v, "pooled_writes_failed"))

	// Not held behind the poolers (no pause), or a failover: reported, not judged.
	tl := pooledSwitchover(5600)
	tl.Events = tl.Events[:len(tl.Events)-1]
	v = Judge(tl)
	assert.NotContains(t, propertyNames(v), PooledNoError)
	assert.Equal(t, 1.0, figure(t, v, "pooled_writes_failed"))
	tl = pooledSwitchover(5600)
	tl.Planned = false
	assert.NotContains(t, propertyNames(Judge(tl)), PooledNoError)
}

func TestLostPooledWriteIsLost(t *testing.T) {
	tl := pooledSwitchover()
	for n, rows := range tl.Rows {
		tl.Rows[n] = rows[:len(rows)-1] // the last pooled row is gone
	}
	v := Judge(tl)
	assert.False(t, property(t, v, NoAckedWriteLost).Holds)
	assert.Equal(t, 1.0, figure(t, v, "lost_on_leader"))
}

func propertyNames(v Verdict) []string {
	var out []string
	for _, p := range v.Properties {
		out = append(out, p.Name)
	}
	return out
}
