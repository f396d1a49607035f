package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/history"
)

// 9. Two failovers in a row: the leader is killed, and once its successor
// leads (with a sync standby, in synchronous mode) the successor is killed
// too, before the first comes back. The last member must take over, and
// after both return the cluster is one leader and two streaming replicas.
var doubleFailover = Scenario{
	Name:   "double-failover",
	Title:  "two failovers in a row (the leader, then its successor, killed)",
	Proves: "the cluster survives losing two leaders back to back and heals to 1+2",
	Story:  doubleFailoverStory,
}

func doubleFailoverStory(ctx context.Context, r *Run) {
	first := r.Before.Leader
	if _, err := r.Inject(ctx, fault.Kill, first.Name); err != nil {
		r.Failf("%v", err)
		return
	}
	second, ok := r.expectFailover(ctx, first.Name)
	if !ok || ctx.Err() != nil {
		return
	}
	if r.Env.Stack().SynchronousMode {
		// Only a sync standby may be promoted in synchronous mode: wait until
		// the new leader has one before taking it away.
		if !wait.Poll(ctx, r.Env.Settings().FailoverBound, 200*time.Millisecond, func() bool {
			cl, err := r.Cluster(ctx, first.Name)
			if err != nil {
				return false
			}
			for _, m := range cl.Members {
				if m.IsSyncStandby() && m.Name != first.Name {
					return true
				}
			}
			return false
		}) {
			r.Failf("%s got no sync standby within %s", second.Name, r.Env.Settings().FailoverBound)
			return
		}
	}
	secondAt := time.Now()
	var before []history.Op
	for _, o := range r.Writes() {
		if o.Start.Before(secondAt) {
			before = append(before, o)
		}
	}
	if rto, _, err := history.RTO(before, r.FaultAt); err == nil {
		r.Seconds("first_rto_s", "first failover: fault → first acknowledged write", rto)
	}
	if _, err := r.Inject(ctx, fault.Kill, second.Name); err != nil {
		r.Failf("%v", err)
		return
	}
	st := r.Env.Settings()
	third, ok := r.WaitLeader(ctx, st.FailoverBound, func(l patroni.Member) bool {
		return l.Name != first.Name && l.Name != second.Name
	}, first.Name, second.Name)
	if ctx.Err() != nil {
		return
	}
	if !ok {
		r.Failf("no third leader within %s of killing %s", st.FailoverBound, second.Name)
		return
	}
	at := r.Event("promotion", third.Name, third.Name+" holds the leader key")
	r.Seconds("second_election_s", "second fault → third leader seen", at.Sub(secondAt))
	if !r.WaitWritesOn(ctx, third.Host, secondAt, st.FailoverBound) {
		r.Failf("no write was acknowledged by %s after the second failover (last error: %s)", third.Name, r.LastErr())
	}
	r.Outcome = fmt.Sprintf("%s killed → %s leads → killed → %s leads", first.Name, second.Name, third.Name)
	// undoAll (in the harness) brings both back, newest first.
}
