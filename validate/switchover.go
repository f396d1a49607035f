package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
)

// ---- 5. controlled switchover ----

// chooseCandidate picks the member to switch over to: the one asked for, or
// the sync standby (Patroni refuses any other in synchronous mode), or the
// streaming replica with the least lag.
func (e *env) chooseCandidate(f probe.Formation) (patroni.Member, error) {
	if name := e.opts.candidate; name != "" {
		m, ok := f.Cluster.Member(name)
		if !ok {
			return m, userErrorf("--candidate %q is not a member; members are %v", name, memberNames(f.Cluster))
		}
		if m.IsLeader() {
			return m, userErrorf("--candidate %q is already the leader", name)
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

// syncStandbyMoved chooses the candidate again, unless --candidate names
// it, and reports whether the choice changed while old still leads.
func (e *env) syncStandbyMoved(ctx context.Context, old, cand patroni.Member) (patroni.Member, bool) {
	if e.opts.candidate != "" {
		return cand, false
	}
	now := e.probe.Formation(ctx)
	if !now.OK() || now.Leader.Name != old.Name {
		return cand, false
	}
	again, err := e.chooseCandidate(now)
	if err != nil || again.Name == cand.Name {
		return cand, false
	}
	return again, true
}

func checkSwitchover(ctx context.Context, e *env, c *checkRun) {
	f, err := e.gate(ctx)
	if err != nil {
		c.failf("%v", err)
		c.Summary = "refused: cluster unhealthy"
		return
	}
	old := f.Leader
	cand, err := e.chooseCandidate(f)
	if err != nil {
		c.failf("%v", err)
		return
	}
	c.text("old_leader", "old leader", old.Name)
	c.text("candidate", "candidate", cand.Name)
	c.figure("timeline_before", "timeline before", float64(f.Timeline), "")
	if err := e.announce(ctx, fmt.Sprintf("switching over: leader %s (%s) hands over to %s (%s)", old.Name, old.Host, cand.Name, cand.Host)); err != nil {
		c.failf("interrupted before the switchover: %v", err)
		return
	}
	s, stop, err := e.trafficUnderway(ctx, c)
	if err != nil {
		c.failf("%v", err)
		return
	}
	defer stop()

	// In synchronous mode Patroni accepts only the current sync standby, and
	// that can move while the traffic warms up: choose again just before
	// asking, and once more if Patroni still says the standby moved.
	var ev report.Event
	var msg string
	for attempt := 1; ; attempt++ {
		if again, moved := e.syncStandbyMoved(ctx, old, cand); moved {
			c.notef("the sync standby moved to %s before the switchover; switching over to it instead of %s", again.Name, cand.Name)
			cand = again
			c.setText("candidate", cand.Name)
		}
		ev = c.event("switchover", fmt.Sprintf("POST /switchover leader=%s candidate=%s", old.Name, cand.Name))
		msg, err = e.slowPat.Switchover(ctx, old.Host, old.Name, cand.Name)
		if err == nil {
			break
		}
		if attempt < 2 && e.opts.candidate == "" && strings.Contains(err.Error(), "sync_standby") {
			c.notef("Patroni refused %s (%v); choosing the candidate again", cand.Name, err)
			if err := wait.Sleep(ctx, time.Second); err != nil {
				return
			}
			continue
		}
		c.failf("%v", err)
		return
	}
	c.notef("Patroni answered: %s", msg)
	c.seconds("api_seconds", "POST /switchover took", time.Since(ev.At))

	var promotedAt time.Time
	_, ok := e.probe.WaitLeader(ctx, e.opts.failoverBound, func(l patroni.Member) bool { return l.Name == cand.Name })
	if ctx.Err() != nil {
		return
	}
	if ok {
		promotedAt = c.event("promotion", cand.Name+" holds the leader key").At
	} else {
		c.failf("%s did not become the leader within %s", cand.Name, e.opts.failoverBound)
	}
	if !waitWritesOn(ctx, s, cand.Host, ev.At, e.opts.failoverBound) {
		c.failf("no write was acknowledged by the new leader %s through %s within %s (last error: %s)",
			cand.Name, e.stack.WriteEndpoint, e.opts.failoverBound, history.LastErr(s.Writer.Ops()))
	}
	if ctx.Err() != nil {
		return
	}
	nf, ok := e.waitFormation(ctx, e.opts.rejoinBound, func(nf probe.Formation) string {
		if nf.Leader.Name != cand.Name {
			return fmt.Sprintf("leader is %s, want %s", nf.Leader.Name, cand.Name)
		}
		if nf.Timeline != f.Timeline+1 {
			return fmt.Sprintf("timeline is %d; want exactly %d (one more than before)", nf.Timeline, f.Timeline+1)
		}
		return ""
	})
	if ctx.Err() != nil {
		return
	}
	if ok {
		rj := c.event("rejoin", fmt.Sprintf("%s and the other replica stream from %s on timeline %d", old.Name, cand.Name, nf.Timeline))
		c.seconds("rejoin_s", "switchover → every replica streaming on the new timeline", rj.At.Sub(ev.At))
	} else {
		c.failf("after the switchover: %s", nf.Problem())
	}
	c.figure("timeline_after", "timeline after", float64(nf.Timeline), "")
	// A little traffic after the rejoin, so the timeline shows steady state.
	_ = wait.Sleep(ctx, time.Second)
	stop()

	gap, err := history.Outage(c.Timeline.Writes, ev.At)
	if err != nil {
		c.failf("writes never resumed after the switchover")
	} else {
		c.seconds("write_gap_s", "write gap (last ack before → first ack after)", gap.Duration)
		c.Timeline.Events = append(c.Timeline.Events, eventAt(gap.To, "resumed", "first write acknowledged after the gap"))
	}
	trafficFigures(c, ev.At)
	e.splitBrain(c, old.Host, promotedAt)
	lr := e.checkLoss(ctx, c, true)

	r := e.probe.WaitRouting(ctx, e.opts.routingBound, cand.Host, hostsExcept(f, cand.Name))
	routingFigures(e, c, r)
	for _, p := range r.Problems {
		c.failf("after the switchover: %s", p)
	}
	if len(c.Problems) == 0 {
		c.Summary = fmt.Sprintf("%s → %s, timeline %d → %d, write gap %.2fs, %d acked writes lost",
			old.Name, cand.Name, f.Timeline, nf.Timeline, gap.Duration.Seconds(), len(lr.LostAnywhere))
	} else {
		c.Summary = c.Problems[0]
	}
}

// hostsExcept lists the hosts of the Patroni members other than name.
func hostsExcept(f probe.Formation, name string) []string {
	var out []string
	for _, m := range f.Cluster.Members {
		if m.Name != name {
			out = append(out, m.Host)
		}
	}
	return out
}

func memberNames(cl patroni.Cluster) []string {
	var out []string
	for _, m := range cl.Members {
		out = append(out, m.Name)
	}
	return out
}
