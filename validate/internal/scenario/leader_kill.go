package scenario

import (
	"context"
	"fmt"

	"github.com/pgha/pgha/validate/internal/fault"
)

// 1. The leader crashes: SIGKILL of Patroni and the postmaster. Nothing
// releases the leader key; it expires after ttl and a replica takes over.
func init() {
	Register(Scenario{
		Name:   "leader-kill",
		Title:  "the leader is killed (SIGKILL of Patroni and PostgreSQL)",
		Proves: "a crashed leader is replaced within ttl plus a loop, with no acknowledged write lost",
		Story:  leaderLost(fault.Kill, "killed"),
	})
}

// leaderLost is the story of scenarios 1 and 2: lose the leader with a
// fault, see another member lead and take writes, bring the old one back.
func leaderLost(kind, verb string) func(ctx context.Context, r *Run) {
	return func(ctx context.Context, r *Run) {
		old := r.Before.Leader
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
			r.Outcome = fmt.Sprintf("%s %s → %s leads", old.Name, verb, nl.Name)
		}
	}
}
