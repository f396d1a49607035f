package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
)

// ---- 6. automatic failover ----

func checkFailover(ctx context.Context, e *env, c *checkRun) {
	set, err := e.faultSet()
	if err != nil {
		c.failf("%v", err)
		return
	}
	flt, err := set.Get(e.opts.fault)
	if err != nil {
		c.failf("%v", err)
		return
	}
	f, err := e.gate(ctx)
	if err != nil {
		c.failf("%v", err)
		c.Summary = "refused: cluster unhealthy"
		return
	}
	old := f.Leader
	oldNode, ok := e.nodeByName(old.Name)
	if !ok {
		c.failf("leader %s is not a node of the stack outputs", old.Name)
		return
	}
	c.text("fault", "fault", flt.Name())
	c.text("old_leader", "old leader", old.Name)
	c.figure("timeline_before", "timeline before", float64(f.Timeline), "")
	if err := e.announce(ctx, fmt.Sprintf("failing the leader: %s fault on %s (%s)", flt.Name(), old.Name, oldNode.PrivateIP)); err != nil {
		c.failf("interrupted before the fault: %v", err)
		return
	}
	s, stop, err := e.trafficUnderway(ctx, c)
	if err != nil {
		c.failf("%v", err)
		return
	}
	defer stop()

	// Register the restore before breaking anything: from here on, an error
	// or Ctrl-C still brings the node back.
	restore := e.restore.push(fmt.Sprintf("%s of %s", flt.Name(), old.Name), func(rctx context.Context) error {
		return flt.Restore(rctx, oldNode)
	})
	fev := c.event("fault", fmt.Sprintf("%s %s", flt.Name(), old.Name))
	if err := flt.Inject(ctx, oldNode); err != nil {
		c.failf("injecting %s on %s: %v", flt.Name(), old.Name, err)
		if rerr := restore(); rerr != nil {
			c.failf("%v", rerr)
		}
		return
	}
	c.seconds("inject_seconds", "fault took effect after", time.Since(fev.At))

	// On Ctrl-C, stop here: the deferred restores put the node back, and a
	// half-measured figure would only mislead.
	var promotedAt time.Time
	newLeader, ok := e.probe.WaitLeader(ctx, e.opts.failoverBound, func(l patroni.Member) bool { return l.Name != old.Name }, old.Name)
	if ctx.Err() != nil {
		return
	}
	if ok {
		promotedAt = c.event("promotion", newLeader.Name+" holds the leader key").At
		c.text("new_leader", "new leader", newLeader.Name)
		c.seconds("election_s", "fault → new leader seen", promotedAt.Sub(fev.At))
	} else {
		c.failf("no new leader was elected within %s of the %s of %s", e.opts.failoverBound, flt.Name(), old.Name)
	}
	if newLeader.Name != "" && !waitWritesOn(ctx, s, newLeader.Host, fev.At, e.opts.failoverBound) {
		c.failf("no write was acknowledged by the new leader %s through %s within %s (last error: %s)",
			newLeader.Name, e.stack.WriteEndpoint, e.opts.failoverBound, history.LastErr(s.Writer.Ops()))
	}

	if ctx.Err() != nil {
		return
	}
	rev := c.event("restore", fmt.Sprintf("undo %s of %s", flt.Name(), old.Name))
	if err := restore(); err != nil {
		c.failf("%v", err)
	}
	nf, ok := e.waitFormation(ctx, e.opts.rejoinBound, func(nf probe.Formation) string {
		if newLeader.Name != "" && nf.Leader.Name != newLeader.Name {
			return fmt.Sprintf("leader is %s, want %s", nf.Leader.Name, newLeader.Name)
		}
		return ""
	})
	if ctx.Err() != nil {
		return
	}
	if ok {
		rj := c.event("rejoin", fmt.Sprintf("%s streams from %s on timeline %d", old.Name, nf.Leader.Name, nf.Timeline))
		c.seconds("rejoin_s", "restore → old leader streaming again", rj.At.Sub(rev.At))
	} else {
		c.failf("%s did not rejoin as a streaming replica within %s: %s", old.Name, e.opts.rejoinBound, nf.Problem())
	}
	c.figure("timeline_after", "timeline after", float64(nf.Timeline), "")
	_ = wait.Sleep(ctx, time.Second)
	stop()

	rto, gap, err := history.RTO(c.Timeline.Writes, fev.At)
	if err != nil {
		c.failf("writes never resumed after the fault")
	} else {
		c.seconds("rto_s", "RTO (fault → first acknowledged write)", rto)
		c.seconds("write_gap_s", "write gap (last ack before → first ack after)", gap.Duration)
		c.Timeline.Events = append(c.Timeline.Events, eventAt(gap.To, "resumed", "first write acknowledged after the fault"))
	}
	trafficFigures(c, fev.At)
	if rd := history.Reads(c.Timeline.Reads, rev.At, time.Time{}); rd.Total > 0 && rd.Failed == rd.Total {
		c.failf("the read endpoint %s served no read after the restore", e.stack.ReadEndpoint)
	}
	e.splitBrain(c, old.Host, promotedAt)
	lr := e.checkLoss(ctx, c, e.stack.SynchronousMode)

	if nf.Leader.Name != "" {
		r := e.probe.WaitRouting(ctx, e.opts.routingBound, nf.Leader.Host, hostsExcept(nf, nf.Leader.Name))
		routingFigures(e, c, r)
		for _, p := range r.Problems {
			c.failf("after the failover: %s", p)
		}
	}
	if len(c.Problems) == 0 {
		c.Summary = fmt.Sprintf("%s of %s → %s leads, RTO %.2fs, rejoin after restore %s, %d acked writes lost",
			flt.Name(), old.Name, newLeader.Name, rto.Seconds(), figureText(c, "rejoin_s"), len(lr.LostAnywhere))
	} else {
		c.Summary = c.Problems[0]
	}
}

func eventAt(at time.Time, kind, detail string) report.Event {
	return report.Event{At: at, Kind: kind, Detail: detail}
}

func figureText(c *checkRun, key string) string {
	if f, ok := c.Figure(key); ok {
		return f.String()
	}
	return "?"
}
