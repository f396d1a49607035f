package history

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// writes builds a writer history: one insert every 100 ms from 0 to endMs,
// failing while the start time is inside [downFrom, downTo).
func writes(endMs, downFrom, downTo int) []Op {
	var ops []Op
	id := int64(1)
	for ms := 0; ms < endMs; ms += 100 {
		o := Op{ID: id, Start: at(ms), End: at(ms + 5), OK: true, Server: "10.0.0.1"}
		if ms >= downFrom && ms < downTo {
			o.OK, o.Err = false, "connection refused"
			o.End = at(ms + 50)
		}
		if ms >= downTo {
			o.Server = "10.0.0.2"
		}
		ops = append(ops, o)
		id++
	}
	return ops
}

func TestCheckLossAllSurvive(t *testing.T) {
	ops := writes(2000, 500, 900)
	acked := Acked(ops)
	require.Len(t, acked, 16)
	all := []int64{}
	for i := int64(1); i <= 20; i++ {
		all = append(all, i) // includes the ambiguous failed ones
	}
	r := CheckLoss(acked, map[string][]int64{"pg-1": all, "pg-2": all, "pg-3": acked})
	require.True(t, r.OK())
	require.Equal(t, 16, r.Acked)
	require.Empty(t, r.LostAnywhere)
	require.Equal(t, 4, r.Unacked, "failed inserts that committed are counted, not lost")
	require.Contains(t, r.Lost, "pg-3")
	require.Empty(t, r.Lost["pg-3"])
}

func TestCheckLossCatchesLostWrites(t *testing.T) {
	ops := writes(2000, 500, 900)
	acked := Acked(ops)
	// The new leader lacks the last acked writes of the old leader: the
	// classic async failover loss. One replica also lacks a newer row.
	leader := []int64{1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	replica := []int64{1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	r := CheckLoss(acked, map[string][]int64{"pg-2": leader, "pg-3": replica})
	require.False(t, r.OK())
	require.Equal(t, []int64{4, 5}, r.Lost["pg-2"])
	require.Equal(t, []int64{4, 5, 20}, r.Lost["pg-3"])
	require.Equal(t, []int64{4, 5, 20}, r.LostAnywhere)
}

func TestCheckLossEmptyNodeLosesEverything(t *testing.T) {
	r := CheckLoss([]int64{1, 2}, map[string][]int64{"pg-1": nil})
	require.False(t, r.OK())
	require.Equal(t, []int64{1, 2}, r.LostAnywhere)
}

func TestOutageAndRTOFromSyntheticTimeline(t *testing.T) {
	// Writes fail for starts in [5000, 8200): last ack at 4905, first after at 8205.
	ops := writes(12000, 5000, 8200)
	fault := at(4950)
	g, err := Outage(ops, fault)
	require.NoError(t, err)
	require.Equal(t, at(4905), g.From)
	require.Equal(t, at(8205), g.To)
	require.Equal(t, 3300*time.Millisecond, g.Duration)

	rto, _, err := RTO(ops, fault)
	require.NoError(t, err)
	require.Equal(t, 3255*time.Millisecond, rto)
}

func TestOutageIgnoresInFlightAckAfterFault(t *testing.T) {
	// The fault is recorded at 4902, but the write that started at 4900 was
	// acked at 4905: the outage still starts there, not at the fault.
	ops := writes(12000, 5000, 8200)
	rto, g, err := RTO(ops, at(4902))
	require.NoError(t, err)
	require.Equal(t, at(4905), g.From)
	require.Equal(t, 3303*time.Millisecond, rto)
}

func TestOutageNoRecovery(t *testing.T) {
	ops := writes(3000, 1000, 5000)
	_, err := Outage(ops, at(1000))
	require.ErrorIs(t, err, ErrNoRecovery)
}

func TestOutageWithoutDowntimeIsTheLargestNormalGap(t *testing.T) {
	ops := writes(3000, 99999, 99999)
	g, err := Outage(ops, at(1000))
	require.NoError(t, err)
	require.Equal(t, 100*time.Millisecond, g.Duration)
}

func TestReads(t *testing.T) {
	ops := writes(4000, 1000, 1500) // 5 failures
	s := Reads(ops, time.Time{}, time.Time{})
	require.Equal(t, 40, s.Total)
	require.Equal(t, 5, s.Failed)
	require.InDelta(t, 35.0/40.0, s.Availability, 1e-9)
	require.Equal(t, 505*time.Millisecond, s.Longest) // first failed start 1000 → ack at 1505
	require.Equal(t, map[string]int{"10.0.0.1": 10, "10.0.0.2": 25}, s.Servers)

	w := Reads(ops, at(1000), at(2000))
	require.Equal(t, 10, w.Total)
	require.Equal(t, 5, w.Failed)
}

func TestServers(t *testing.T) {
	ops := writes(4000, 1000, 1500)
	require.Equal(t, []string{"10.0.0.1", "10.0.0.2"}, Servers(ops, time.Time{}))
	require.Equal(t, []string{"10.0.0.2"}, Servers(ops, at(1200)))
}

func TestLastErr(t *testing.T) {
	require.Equal(t, "no operation failed", LastErr(nil))
	ops := []Op{{Err: "first"}, {OK: true}, {Err: "second"}, {OK: true}}
	require.Equal(t, "second", LastErr(ops))
}
