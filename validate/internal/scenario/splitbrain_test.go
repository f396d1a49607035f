package scenario

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestDetectSplitBrainCatchesTwoPrimaries(t *testing.T) {
	rounds := []Round{
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
	sb := DetectSplitBrain([]Round{
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
	sb := DetectSplitBrain([]Round{
		{At: at(0), Primaries: []string{"pg-1"}},
		{At: at(150), Unreachable: []string{"pg-1"}},
		{At: at(300), Primaries: []string{"pg-2"}, Unreachable: []string{"pg-1"}},
	})
	require.Empty(t, sb.Instants)
	require.Empty(t, sb.Problem(t0))
}

// The poller itself, against an Ask that plays a failover with a moment of
// two primaries: the detector must see it in the recorded rounds.
func TestPollerRecordsRounds(t *testing.T) {
	var tick atomic.Int64
	p := &Poller{Nodes: []string{"pg-1", "pg-2", "pg-3"}, Interval: 5 * time.Millisecond,
		Ask: func(ctx context.Context, node string) (bool, error) {
			n := tick.Add(1) / 3 // one "round" per three asks, roughly
			switch {
			case node == "pg-3":
				return false, errors.New("unreachable")
			case n < 10:
				return node == "pg-1", nil
			case n < 20:
				return true, nil // both pg-1 and pg-2
			default:
				return node == "pg-2", nil
			}
		},
		Writable: func(ctx context.Context, node string) (bool, error) {
			if node == "pg-3" {
				return false, errors.New("unreachable")
			}
			return node == "pg-1", nil
		}}
	p.Start(context.Background())
	require.Eventually(t, func() bool { return len(p.Rounds()) > 30 }, 5*time.Second, 5*time.Millisecond)
	rounds := p.Stop()
	sb := DetectSplitBrain(rounds)
	require.NotEmpty(t, sb.Instants, "the poller's rounds must show the two primaries")
	require.Equal(t, sb.Rounds, sb.Blind, "pg-3 never answered")
	require.Empty(t, sb.WritableInstants)
	require.Equal(t, []string{"pg-1"}, rounds[0].Writable)
	n := len(p.Rounds())
	time.Sleep(30 * time.Millisecond)
	require.Equal(t, n, len(p.Rounds()), "Stop stops polling")
}
