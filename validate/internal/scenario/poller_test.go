package scenario

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/judge"
)

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
	sb := judge.DetectSplitBrain(rounds)
	require.NotEmpty(t, sb.Instants, "the poller's rounds must show the two primaries")
	require.Equal(t, sb.Rounds, sb.Blind, "pg-3 never answered")
	require.Empty(t, sb.WritableInstants)
	require.Equal(t, []string{"pg-1"}, rounds[0].Writable)
	n := len(p.Rounds())
	time.Sleep(30 * time.Millisecond)
	require.Equal(t, n, len(p.Rounds()), "Stop stops polling")
}
