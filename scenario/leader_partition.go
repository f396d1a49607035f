package scenario

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgha/pgha/fault"
	"github.com/pgha/pgha/internal/wait"
)

// 3. The leader is cut off from everything (its link is down; it keeps
// running). It must demote itself (it can reach neither etcd nor, for
// failsafe mode, the other members), a replica takes over once the leader
// key expires, and no write may be acknowledged by two primaries.
func init() {
	Register(Scenario{
		Name:   "leader-partition",
		Title:  "the leader is partitioned from everything",
		Proves: "a cut-off leader demotes itself before another is promoted: never two primaries",
		Story:  leaderPartition,
	})
}

func leaderPartition(ctx context.Context, r *Run) {
	old := r.Before.Leader
	undo, err := r.Inject(ctx, fault.Partition, old.Name)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	nl, ok := r.expectFailover(ctx, old.Name)
	if ctx.Err() != nil {
		return
	}
	// While still cut off, the old leader must have stopped answering
	// /primary with 200. The poller asks it from inside its own namespace
	// where the target allows it; otherwise it cannot be seen.
	var demoted time.Time
	blind := true
	wait.Poll(ctx, 2*r.ttl(), 200*time.Millisecond, func() bool {
		for _, rd := range r.poller.Rounds() {
			if rd.At.Before(r.FaultAt) || slices.Contains(rd.Unreachable, old.Name) {
				continue
			}
			blind = false
			if !slices.Contains(rd.Primaries, old.Name) {
				demoted = rd.At
				return true
			}
		}
		return false
	})
	if ctx.Err() != nil {
		return
	}
	switch {
	case !demoted.IsZero():
		r.Check.Timeline.Events = append(r.Check.Timeline.Events, eventAt(demoted, "demoted", old.Name+" no longer answers /primary with 200"))
		r.Seconds("demote_s", "partition → old leader no longer primary", demoted.Sub(r.FaultAt))
		if p, ok := r.Check.Figure("election_s"); ok && demoted.Sub(r.FaultAt).Seconds() > p.Value {
			r.Failf("%s was still primary %.1fs after the partition, after %s was promoted", old.Name, demoted.Sub(r.FaultAt).Seconds(), nl.Name)
		}
	case blind:
		r.Notef("%s could not be observed while partitioned on this target; the single-history check speaks for it", old.Name)
	default:
		r.Failf("%s did not demote itself within %s of being partitioned", old.Name, 2*r.ttl())
	}
	r.undoNow(undo)
	if ok {
		r.Outcome = fmt.Sprintf("%s partitioned → demoted itself, %s leads", old.Name, nl.Name)
	}
}
