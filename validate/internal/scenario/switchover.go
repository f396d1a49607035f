package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/switchover"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
)

// Switchover is validate's switchover check: the operator asks Patroni to
// hand leadership to candidate (default: the sync standby, else the
// streaming replica with the least lag) under traffic. The new leader takes
// writes, the old one and the other replica stream from it on the next
// timeline, and, planned as it is, no acknowledged write may be lost even
// with asynchronous replication.
func Switchover(candidate string) Scenario {
	return Scenario{
		Name:    "switchover",
		Title:   "controlled switchover under traffic",
		Proves:  "a planned switchover moves the leader to the next timeline with a short write gap and nothing lost",
		Planned: true,
		Story:   func(ctx context.Context, r *Run) { switchoverStory(ctx, r, candidate) },
	}
}

// ErrCandidate is a --candidate that cannot take over.
type ErrCandidate struct{ msg string }

func (e ErrCandidate) Error() string { return e.msg }

// ChooseCandidate picks the member to switch over to: the one asked for,
// or the sync standby (Patroni refuses any other in synchronous mode), or
// the streaming replica with the least lag.
func ChooseCandidate(f probe.Formation, asked string) (patroni.Member, error) {
	if asked != "" {
		m, ok := f.Cluster.Member(asked)
		if !ok {
			var names []string
			for _, m := range f.Cluster.Members {
				names = append(names, m.Name)
			}
			return m, ErrCandidate{fmt.Sprintf("--candidate %q is not a member; members are %v", asked, names)}
		}
		if m.IsLeader() {
			return m, ErrCandidate{fmt.Sprintf("--candidate %q is already the leader", asked)}
		}
		// Patroni would refuse (HTTP 412), but only after the poolers had
		// paused for nothing.
		for _, o := range f.Cluster.Members {
			if o.IsSyncStandby() && o.Name != asked {
				return m, ErrCandidate{fmt.Sprintf("--candidate %q is not the synchronous standby: in synchronous mode Patroni hands over only to %s; name it, or leave --candidate out", asked, o.Name)}
			}
		}
		return m, nil
	}
	var best patroni.Member
	bestLag := int64(-1)
	for _, r := range f.Replicas {
		if r.Name == f.Sync {
			return r, nil
		}
		row := f.Repl[r.Name]
		if row.State != "streaming" {
			continue
		}
		if bestLag < 0 || row.LagBytes < bestLag {
			best, bestLag = r, row.LagBytes
		}
	}
	if best.Name == "" {
		return best, fmt.Errorf("no streaming replica to switch over to")
	}
	return best, nil
}

func switchoverStory(ctx context.Context, r *Run, asked string) {
	f := r.Before
	old := f.Leader
	cand, err := ChooseCandidate(f, asked)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	r.Text("old_leader", "old leader", old.Name)
	r.Text("candidate", "candidate", cand.Name)
	r.Figure("timeline_before", "timeline before", float64(f.Timeline), "")

	// In synchronous mode Patroni accepts only the current sync standby, and
	// that can move while the traffic warms up: choose again just before
	// asking, and once more if Patroni still says the standby moved.
	var at time.Time
	var msg string
	for attempt := 1; ; attempt++ {
		if asked == "" {
			if now := r.Env.Probe().Formation(ctx); now.OK() && now.Leader.Name == old.Name {
				if again, err := ChooseCandidate(now, ""); err == nil && again.Name != cand.Name {
					r.Notef("the sync standby moved to %s before the switchover; switching over to it instead of %s", again.Name, cand.Name)
					cand = again
					r.setText("candidate", cand.Name)
				}
			}
		}
		var res switchover.Result
		res, at, err = r.PlannedSwitchover(ctx, old, cand)
		msg = res.Answer
		if err == nil {
			break
		}
		if attempt < 2 && asked == "" && strings.Contains(err.Error(), "sync_standby") {
			r.Notef("Patroni refused %s (%v); choosing the candidate again", cand.Name, err)
			if err := wait.Sleep(ctx, time.Second); err != nil {
				return
			}
			continue
		}
		r.Failf("%v", err)
		return
	}
	r.Notef("Patroni answered: %s", msg)
	r.Seconds("api_seconds", "POST /switchover → the switchover done (behind poolers: they resumed)", time.Since(at))

	st := r.Env.Settings()
	if _, ok := r.WaitLeader(ctx, st.FailoverBound, func(l patroni.Member) bool { return l.Name == cand.Name }); !ok {
		if ctx.Err() == nil {
			r.Failf("%s did not become the leader within %s", cand.Name, st.FailoverBound)
		}
		return
	}
	r.Event("promotion", cand.Name, cand.Name+" holds the leader key")
	if !r.WaitWritesOn(ctx, cand.Host, at, st.FailoverBound) {
		r.Failf("no write was acknowledged by the new leader %s within %s (last error: %s)", cand.Name, st.FailoverBound, r.LastErr())
	}
	if ctx.Err() != nil {
		return
	}
	nf, ok := r.Env.Probe().WaitFormation(ctx, st.RejoinBound, func(nf probe.Formation) string {
		if nf.Leader.Name != cand.Name {
			return fmt.Sprintf("leader is %s, want %s", nf.Leader.Name, cand.Name)
		}
		if nf.Timeline != f.Timeline+1 {
			return fmt.Sprintf("timeline is %d; want exactly %d (one more than before)", nf.Timeline, f.Timeline+1)
		}
		return ""
	}, r.Env.Logf)
	if ctx.Err() != nil {
		return
	}
	if ok {
		rj := r.Event("rejoin", old.Name, fmt.Sprintf("%s and the other replica stream from %s on timeline %d", old.Name, cand.Name, nf.Timeline))
		r.Seconds("rejoin_s", "switchover → every replica streaming on the new timeline", rj.Sub(at))
	} else {
		r.Failf("after the switchover: %s", nf.Problem())
	}
	r.Figure("timeline_after", "timeline after", float64(nf.Timeline), "")
	r.Outcome = fmt.Sprintf("%s → %s, timeline %d → %d", old.Name, cand.Name, f.Timeline, nf.Timeline)
}

// PlannedSwitchover asks for the switchover from old to cand the way pgha
// performs it (package switchover): behind the stack's poolers when it has
// any, so that their clients are held, not failed. The pause and the
// request go on the timeline (the first is when the run's fault begins);
// at is when Patroni was asked.
func (r *Run) PlannedSwitchover(ctx context.Context, old, cand patroni.Member) (res switchover.Result, at time.Time, err error) {
	mark := func(t time.Time) {
		if r.FaultAt.IsZero() {
			r.FaultAt = t
		}
	}
	res, err = switchover.Run(ctx, r.Env.Probe(), old, cand, switchover.Options{
		Ask: func(ctx context.Context) (string, error) {
			at = r.Event("switchover", old.Name, fmt.Sprintf("POST /switchover leader=%s candidate=%s", old.Name, cand.Name))
			mark(at)
			return r.Env.Switchover(ctx, old.Host, old.Name, cand.Name)
		},
		OnPause: func() {
			mark(r.Event(judge.PauseEvent, "", "PAUSE on every pooler: new transactions wait in PgBouncer"))
		},
		Logf: r.Env.Logf,
	})
	if res.Pooled {
		if !res.Pooler.ResumedAt.IsZero() {
			r.mu.Lock()
			r.Check.Timeline.Events = append(r.Check.Timeline.Events,
				report.Event{At: res.Pooler.ResumedAt, Kind: "resume", Detail: "every pooler resumed"})
			r.mu.Unlock()
		}
		r.Seconds("pooler_stall_s", "poolers paused (PAUSE → RESUME): the longest a pooled client was held", res.Pooler.Stall)
		r.Text("pooler_steps", "pooled switchover steps", switchover.Describe(res.Pooler))
	}
	if res.SessionPooled {
		r.Notef("the poolers pool sessions (pgha:poolMode session): the switchover was not held behind them, and their clients see the write gap as direct clients do")
	}
	if at.IsZero() {
		at = time.Now()
	}
	return res, at, err
}
