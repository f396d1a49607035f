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

// 5. A replica is lost (killed). The leader stays; with synchronous mode
// the lost replica is the sync standby, so Patroni must choose the other
// one; reads through 5001 go on from the remaining replica.
var replicaLost = Scenario{
	Name:   "replica-lost",
	Title:  "a replica (the sync standby, in synchronous mode) is killed",
	Proves: "losing a replica keeps the leader and writes, re-elects a sync standby, and 5001 keeps serving",
	Story:  replicaLostStory,
}

func replicaLostStory(ctx context.Context, r *Run) {
	sync := r.Env.Stack().SynchronousMode
	victim, ok := r.Before.Replica(sync)
	if !ok {
		r.Failf("no replica to lose")
		return
	}
	other, _ := r.Before.Replica(!sync)
	undo, err := r.Inject(ctx, fault.Kill, victim.Name)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	st := r.Env.Settings()
	if sync {
		// Patroni must name the remaining replica the sync standby.
		var newSync patroni.Member
		okSync := wait.Poll(ctx, st.FailoverBound, 200*time.Millisecond, func() bool {
			cl, err := r.Cluster(ctx, victim.Name)
			if err != nil {
				return false
			}
			for _, m := range cl.Members {
				if m.IsSyncStandby() && m.Name != victim.Name {
					newSync = m
					return true
				}
			}
			return false
		})
		if ctx.Err() != nil {
			return
		}
		if !okSync {
			r.Failf("no other sync standby was chosen within %s of losing %s", st.FailoverBound, victim.Name)
		} else {
			at := r.Event("sync", newSync.Name, newSync.Name+" is the sync standby")
			r.Seconds("new_sync_s", "fault → new sync standby", at.Sub(r.FaultAt))
			r.Text("new_sync_standby", "new sync standby", newSync.Name)
		}
	}
	// Keep the replica down long enough for HAProxy to notice, then judge
	// the window: same leader, writes acknowledged, reads served.
	_ = r.Hold(ctx, 6*time.Second)
	if ctx.Err() != nil {
		return
	}
	r.expectSameLeader(ctx, r.Before.Leader, r.FaultAt, victim.Name)
	tail := time.Now().Add(-3 * time.Second)
	rd := history.Reads(r.traffic.Reader.Ops(), tail, time.Time{})
	if rd.Total == 0 || rd.Failed == rd.Total {
		r.Failf("5001 served no read in the last 3 s with %s down (%d attempts)", victim.Name, rd.Total)
	} else if other.Host != "" && rd.Servers[other.Host] == 0 {
		r.Failf("reads in the last 3 s with %s down did not reach the remaining replica %s", victim.Name, other.Name)
	}
	r.undoNow(undo)
	r.Outcome = fmt.Sprintf("%s lost → %s still leads", victim.Name, r.Before.Leader.Name)
	if f, ok := r.Check.Figure("new_sync_standby"); ok {
		r.Outcome += ", sync standby " + f.Text
	}
}
