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

// 4. PostgreSQL alone crashes on the leader; Patroni lives. Patroni
// restarts it in place, or fails over once primary_start_timeout passes
// (short in the fast profile, so either way writes are back quickly).
var postgresCrash = Scenario{
	Name:   "postgres-crash",
	Title:  "PostgreSQL alone crashes on the leader (SIGKILL of the postmaster; Patroni lives)",
	Proves: "a Postgres-only crash costs seconds, not Patroni's default 300 s primary_start_timeout",
	Story:  postgresCrashStory,
}

func postgresCrashStory(ctx context.Context, r *Run) {
	old := r.Before.Leader
	undo, err := r.Inject(ctx, fault.KillPostgres, old.Name)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	st := r.Env.Settings()
	// Writes are back when any node acknowledges one after the crash
	// (after the gap it caused: the write in flight may still succeed).
	resumed := wait.Poll(ctx, st.FailoverBound, 100*time.Millisecond, func() bool {
		g, err := history.Outage(r.Writes(), r.FaultAt)
		return err == nil && g.To.After(r.FaultAt)
	})
	if ctx.Err() != nil {
		return
	}
	if !resumed {
		r.Failf("writes did not resume within %s of the crash (last error: %s)", st.FailoverBound, r.LastErr())
	}
	l, ok := r.WaitLeader(ctx, st.FailoverBound, func(patroni.Member) bool { return true })
	r.undoNow(undo)
	if !ok {
		r.Failf("no leader after the crash")
		return
	}
	how := "restarted in place by Patroni"
	if l.Name != old.Name {
		how = "failed over to " + l.Name
	}
	r.Text("outcome", "what Patroni did", how)
	r.Outcome = fmt.Sprintf("postmaster of %s killed → %s", old.Name, how)
}
