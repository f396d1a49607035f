package scenario

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/userdata"
	"github.com/pgha/pgha/validate/internal/fault"
)

// 3. The leader is cut off from everything (its link is down; it keeps
// running). It must demote itself (it can reach neither etcd nor, for
// failsafe mode, the other members), a replica takes over once the leader
// key expires, and no write may be acknowledged by two primaries.
var leaderPartition = Scenario{
	Name:   "leader-partition",
	Title:  "the leader is partitioned from everything",
	Proves: "a cut-off leader demotes itself before another is promoted: never two primaries",
	Story:  leaderPartitionStory,
}

func leaderPartitionStory(ctx context.Context, r *Run) {
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
	// /primary with 200, and its PostgreSQL must have stopped taking writes
	// (Patroni's belief and the server's state can differ for seconds). The
	// poller asks it from inside its own namespace where the target allows
	// it; otherwise it cannot be seen. Only polls from when the cut was in
	// place count: over SSH, injecting it takes a moment.
	var demoted, readOnly time.Time
	cut := r.InEffect
	blind := true
	wait.Poll(ctx, 2*r.ttl(), 200*time.Millisecond, func() bool {
		for _, rd := range r.poller.Rounds() {
			if rd.At.Before(cut) || slices.Contains(rd.Unreachable, old.Name) {
				continue
			}
			blind = false
			if demoted.IsZero() && !slices.Contains(rd.Primaries, old.Name) {
				demoted = rd.At
			}
			if readOnly.IsZero() && !slices.Contains(rd.Writable, old.Name) {
				readOnly = rd.At
			}
		}
		return !demoted.IsZero() && !readOnly.IsZero()
	})
	if ctx.Err() != nil {
		return
	}
	election, elected := r.Check.Figure("election_s")
	switch {
	case !demoted.IsZero() && !readOnly.IsZero():
		r.Check.Timeline.Events = append(r.Check.Timeline.Events,
			eventAt(demoted, "demoted", old.Name+" no longer answers /primary with 200"),
			eventAt(readOnly, "demoted", old.Name+"'s PostgreSQL no longer takes writes"))
		r.Seconds("demote_s", "partition → old leader no longer primary", demoted.Sub(r.FaultAt))
		r.Seconds("demote_writable_s", "partition → old leader's PostgreSQL no longer writable", readOnly.Sub(r.FaultAt))
		if elected && demoted.Sub(r.FaultAt).Seconds() > election.Value {
			r.Failf("%s was still primary %.1fs after the partition, after %s was promoted", old.Name, demoted.Sub(r.FaultAt).Seconds(), nl.Name)
		}
		if elected {
			over := max(0, readOnly.Sub(r.FaultAt).Seconds()-election.Value)
			r.Figure("old_writable_after_election_s", "old leader's PostgreSQL still writable after the new leader was elected", over, "s")
		}
		// Heal only once the demotion has finished (PostgreSQL back up in
		// recovery): a link that comes back while Patroni 3.0.2 is still
		// stopping the old primary lets its failsafe check pass and the
		// node claim /primary again (docs/scenarios.md).
		back := 2 * r.ttl()
		if r.Env.Stack().Backups != nil {
			// Its fast shutdown waits for the archiver's last tries to push
			// to a repository the partition cut off, and its restart as a
			// replica asks that repository first (docs/scenarios.md).
			back += userdata.UnreachableRepositoryDelay
		}
		if !wait.Poll(ctx, back, 200*time.Millisecond, func() bool {
			w, err := r.poller.Writable(ctx, old.Name)
			return err == nil && !w
		}) && ctx.Err() == nil {
			r.Failf("%s's PostgreSQL did not come back in recovery within %s of its demotion", old.Name, back)
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
