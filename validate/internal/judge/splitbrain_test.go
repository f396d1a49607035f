package judge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/history"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestDetectSplitBrainCatchesTwoPrimaries(t *testing.T) {
	rounds := []history.Round{
		{At: at(0), Primaries: []string{"pg-1"}},
		{At: at(150)},                                      // failover window: nobody
		{At: at(300), Primaries: []string{"pg-1", "pg-2"}}, // split brain
		{At: at(450), Primaries: []string{"pg-2"}, Unreachable: []string{"pg-1"}},
	}
	sb := DetectSplitBrain(rounds)
	require.Equal(t, 4, sb.Rounds)
	require.Len(t, sb.Instants, 1)
	require.Equal(t, []string{"pg-1", "pg-2"}, sb.Instants[0].Primaries)
	require.Equal(t, 1, sb.NoPrimary)
	require.Equal(t, 1, sb.Blind)
	require.Contains(t, sb.Problem(t0), "two primaries at once in 1 of 4 polls")
	require.Contains(t, sb.Problem(t0), "+0.300s: pg-1 and pg-2")
	require.Empty(t, sb.WritableProblem(t0))
}

// /primary can say one leader while the cut-off old leader's PostgreSQL
// still takes writes: that is a split brain too.
func TestDetectSplitBrainCatchesTwoWritableServers(t *testing.T) {
	sb := DetectSplitBrain([]history.Round{
		{At: at(0), Primaries: []string{"pg-1"}, Writable: []string{"pg-1"}},
		{At: at(150), Primaries: []string{"pg-2"}, Writable: []string{"pg-1", "pg-2"}},
		{At: at(300), Primaries: []string{"pg-2"}, Writable: []string{"pg-2"}},
	})
	require.Empty(t, sb.Instants)
	require.Len(t, sb.WritableInstants, 1)
	require.Empty(t, sb.Problem(t0))
	require.Equal(t, "two writable PostgreSQL servers at once in 1 of 3 polls, +0.150s to +0.150s: pg-1 and pg-2", sb.WritableProblem(t0))
}

func TestDetectSplitBrainCleanFailover(t *testing.T) {
	sb := DetectSplitBrain([]history.Round{
		{At: at(0), Primaries: []string{"pg-1"}},
		{At: at(150), Unreachable: []string{"pg-1"}},
		{At: at(300), Primaries: []string{"pg-2"}, Unreachable: []string{"pg-1"}},
	})
	require.Empty(t, sb.Instants)
	require.Empty(t, sb.Problem(t0))
}
