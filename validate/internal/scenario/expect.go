package scenario

import (
	"context"
	"slices"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/userdata"
	"github.com/pgha/pgha/validate/internal/report"
)

// Helpers the stories share: what "a failover happened" and "nothing
// changed" mean, asserted the same way everywhere.

// expectFailover waits for a leader other than old (asking only the other
// nodes) and for a write acknowledged by it through the write endpoint.
func (r *Run) expectFailover(ctx context.Context, old string, skip ...string) (patroni.Member, bool) {
	st := r.Env.Settings()
	skip = append(skip, old)
	nl, ok := r.WaitLeader(ctx, st.FailoverBound, func(l patroni.Member) bool { return l.Name != old && !slices.Contains(skip, l.Name) }, skip...)
	if ctx.Err() != nil {
		return nl, false
	}
	if !ok {
		r.Failf("no new leader was elected within %s after %s was lost", st.FailoverBound, old)
		return nl, false
	}
	at := r.Event("promotion", nl.Name, nl.Name+" holds the leader key")
	r.Seconds("election_s", "fault → new leader seen", at.Sub(r.FaultAt))
	if !r.WaitWritesOn(ctx, nl.Host, r.FaultAt, st.FailoverBound) {
		r.Failf("no write was acknowledged by the new leader %s within %s (last error: %s)", nl.Name, st.FailoverBound, r.LastErr())
		return nl, false
	}
	return nl, true
}

// expectSameLeader asserts that Patroni's leader is still want, and that it
// acknowledged writes after since.
func (r *Run) expectSameLeader(ctx context.Context, want patroni.Member, since time.Time, skip ...string) bool {
	cl, err := r.Cluster(ctx, skip...)
	if err != nil {
		r.Failf("%v", err)
		return false
	}
	l, one := cl.Leader()
	if !one || l.Name != want.Name {
		r.Failf("the leader changed: %s led before, now %q", want.Name, l.Name)
		return false
	}
	if !r.WaitWritesOn(ctx, want.Host, since, 5*time.Second) {
		r.Failf("the leader %s acknowledged no write after the fault (last error: %s)", want.Name, r.LastErr())
		return false
	}
	return true
}

// ttl is the leader lock lifetime of the stack's profile: holding a fault
// longer than it proves the fault outlived a leader key.
func (r *Run) ttl() time.Duration {
	p, err := userdata.LookupProfile(r.Env.Stack().Profile)
	if err != nil || p.TTL <= 0 {
		return 30 * time.Second
	}
	return time.Duration(p.TTL) * time.Second
}

// undoNow runs an undo and records a failure.
func (r *Run) undoNow(u func() error) {
	if u == nil {
		return
	}
	if err := u(); err != nil {
		r.Failf("%v", err)
	}
}

func eventAt(at time.Time, kind, detail string) report.Event {
	return report.Event{At: at, Kind: kind, Detail: detail}
}
