package scenario

import (
	"context"
	"fmt"

	"github.com/pgha/pgha/validate/internal/fault"
)

// 1. The leader crashes: SIGKILL of Patroni and the postmaster. Nothing
// releases the leader key; it expires after ttl and a replica takes over.
var leaderKill = Scenario{
	Name:   "leader-kill",
	Title:  "the leader is killed (SIGKILL of Patroni and PostgreSQL)",
	Proves: "a crashed leader is replaced within ttl plus a loop, with no acknowledged write lost",
	Story:  leaderLost(fault.Kill),
}

// 2. The leader's whole node stops (a clean shutdown in the lab, a forced
// EC2 stop on AWS): every daemon of the node goes away.
var leaderStop = Scenario{
	Name:   "leader-stop",
	Title:  "the leader's whole node is stopped",
	Proves: "losing the leader's host hands leadership to a replica, with no acknowledged write lost",
	Story:  leaderLost(fault.Stop),
}

// Failover is validate's failover check: the leader lost to the fault
// kind, the story of scenarios 1 and 2.
func Failover(kind string) Scenario {
	return Scenario{
		Name:   "failover",
		Title:  fmt.Sprintf("automatic failover under traffic (the leader lost to a %s fault)", kind),
		Proves: "a replica takes over a lost leader and the old one rejoins, with no acknowledged write lost",
		Story:  leaderLost(kind),
	}
}

// leaderLost loses the leader with a fault, sees another member lead and
// take writes, and brings the old one back.
func leaderLost(kind string) func(ctx context.Context, r *Run) {
	return func(ctx context.Context, r *Run) {
		old := r.Before.Leader
		r.Text("fault", "fault", kind)
		r.Text("old_leader", "old leader", old.Name)
		r.Figure("timeline_before", "timeline before", float64(r.Before.Timeline), "")
		undo, err := r.Inject(ctx, kind, old.Name)
		if err != nil {
			r.Failf("%v", err)
			return
		}
		nl, ok := r.expectFailover(ctx, old.Name)
		if ctx.Err() != nil {
			return
		}
		r.undoNow(undo)
		if ok {
			r.Text("new_leader", "new leader", nl.Name)
			r.Outcome = fmt.Sprintf("%s of %s → %s leads", kind, old.Name, nl.Name)
		}
	}
}
