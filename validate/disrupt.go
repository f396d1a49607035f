package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// Shared machinery of the destructive checks: the health gate, the plain
// announcement, traffic, and the loss check.

// gate refuses to break a cluster that is not healthy to begin with: the
// result would prove nothing and could make things worse.
func (e *env) gate(ctx context.Context) (probe.Formation, error) {
	es := e.probe.Etcd(ctx)
	if !es.OK() {
		return probe.Formation{}, fmt.Errorf("refused: the cluster is unhealthy, etcd: %s", strings.Join(es.Problems, "; "))
	}
	f, ok := e.waitFormation(ctx, 20*time.Second, nil)
	if !ok {
		return f, fmt.Errorf("refused: the cluster is unhealthy: %s", f.Problem())
	}
	return f, nil
}

// announce says plainly what is about to be broken. Against anything but the
// lab it also pauses, so a person can still press Ctrl-C.
func (e *env) announce(ctx context.Context, what string) error {
	if e.isLab() {
		e.logf("  %s", what)
		return nil
	}
	fmt.Fprintf(e.out, "\n*** %s cluster %q: %s ***\n", e.stack.Target, e.stack.ClusterName, what)
	if e.opts.yes {
		return nil
	}
	fmt.Fprintln(e.out, "*** starting in 10 seconds; press Ctrl-C to stop (or pass --yes) ***")
	return wait.Sleep(ctx, 10*time.Second)
}

// startTraffic begins writes through 5000 and reads through 5001 and opens
// the check's timeline.
func (e *env) startTraffic(ctx context.Context, c *checkRun) (*traffic.Session, error) {
	if err := traffic.Setup(ctx, e.writeTarget()); err != nil {
		return nil, err
	}
	// Traffic uses short timeouts: a client that waits long on a dead
	// server blurs the measured gap.
	wt, rt := e.writeTarget(), e.readTarget()
	wt.ConnectTimeout, rt.ConnectTimeout = e.opts.opTimeout, e.opts.opTimeout
	w := &traffic.Writer{Target: wt, RunID: e.runID + "-" + c.Name, Interval: e.opts.writeInterval, OpTimeout: e.opts.opTimeout}
	r := &traffic.Reader{Target: rt, Interval: e.opts.readInterval, OpTimeout: e.opts.opTimeout}
	c.Timeline = &report.Timeline{Check: c.Name, Start: time.Now()}
	return traffic.Start(ctx, w, r), nil
}

// stopTraffic ends it and keeps the history in the timeline.
func (e *env) stopTraffic(s *traffic.Session, c *checkRun) {
	if err := s.Stop(); err != nil {
		c.failf("traffic: %v", err)
	}
	c.Timeline.End = time.Now()
	c.Timeline.Writes = s.Writer.Ops()
	c.Timeline.Reads = s.Reader.Ops()
}

// trafficUnderway starts the writer and the reader and waits for their
// baseline. stop ends them once, however often it is called, so a check can
// stop them early and still defer it.
func (e *env) trafficUnderway(ctx context.Context, c *checkRun) (*traffic.Session, func(), error) {
	s, err := e.startTraffic(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { e.stopTraffic(s, c) }) }
	if err := s.Baseline(ctx, 2*time.Second); err != nil {
		stop()
		return nil, nil, err
	}
	return s, stop, nil
}

// waitWritesOn waits until the writer has an insert acknowledged by host
// that completed after since.
func waitWritesOn(ctx context.Context, s *traffic.Session, host string, since time.Time, bound time.Duration) bool {
	return wait.Poll(ctx, bound, 100*time.Millisecond, func() bool {
		for _, o := range s.Writer.Ops() {
			if o.OK && o.Server == host && o.End.After(since) {
				return true
			}
		}
		return false
	})
}

// waitLeader polls /cluster (skipping nodes under a fault) until pred holds
// for the leader.
func (e *env) waitLeader(ctx context.Context, bound time.Duration, pred func(patroni.Member) bool, skip ...string) (patroni.Member, bool) {
	var leader patroni.Member
	ok := wait.Poll(ctx, bound, 100*time.Millisecond, func() bool {
		cl, err := e.probe.Cluster(ctx, skip...)
		if err != nil {
			return false
		}
		l, one := cl.Leader()
		if one && pred(l) {
			leader = l
			return true
		}
		return false
	})
	return leader, ok
}

// checkLoss compares the writer's acknowledged inserts with what survives on
// every Patroni node. Replicas get a short while to catch up first, so a
// row that is merely late is not reported as lost.
func (e *env) checkLoss(ctx context.Context, c *checkRun, mustBeZero bool) history.LossReport {
	ops := c.Timeline.Writes
	acked := history.Acked(ops)
	run := e.runID + "-" + c.Name
	survivors := map[string][]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range e.pgNodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ids []int64
			var lastErr error
			wait.Poll(ctx, 15*time.Second, 300*time.Millisecond, func() bool {
				cn, err := e.probe.Super(n.PrivateIP).Connect(ctx)
				if err != nil {
					lastErr = err
					return false
				}
				defer cn.Close(context.Background())
				got, err := traffic.Survivors(ctx, cn, run)
				if err != nil {
					lastErr = err
					return false
				}
				lastErr, ids = nil, got
				return history.CheckLoss(acked, map[string][]int64{n.Name: ids}).OK()
			})
			mu.Lock()
			defer mu.Unlock()
			if lastErr != nil && ids == nil {
				c.failf("reading surviving rows on %s: %v", n.Name, lastErr)
				return
			}
			survivors[n.Name] = ids
		}()
	}
	wg.Wait()
	lr := history.CheckLoss(acked, survivors)
	c.figure("acked_writes", "acknowledged writes", float64(lr.Acked), "")
	c.figure("lost_writes", "acknowledged writes lost", float64(len(lr.LostAnywhere)), "")
	c.figure("unacked_survivors", "unacknowledged writes that committed anyway", float64(lr.Unacked), "")
	var nodes []string
	for n := range lr.Lost {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if ids := lr.Lost[n]; len(ids) > 0 {
			msg := fmt.Sprintf("%d acknowledged writes are missing on %s (ids %s)", len(ids), n, idList(ids))
			if mustBeZero {
				c.failf("%s", msg)
			} else {
				c.notef("asynchronous replication: %s", msg)
			}
		}
	}
	return lr
}

// splitBrain finds writes that the old leader acknowledged after the new one
// had been seen leading.
func (e *env) splitBrain(c *checkRun, oldHost string, promoted time.Time) {
	if promoted.IsZero() {
		return
	}
	var ids []int64
	for _, o := range c.Timeline.Writes {
		if o.OK && o.Server == oldHost && o.Start.After(promoted) {
			ids = append(ids, o.ID)
		}
	}
	if len(ids) > 0 {
		c.failf("%d writes were acknowledged by the old leader %s after the new leader took over (ids %s): two primaries accepted writes",
			len(ids), e.probe.Describe(oldHost), idList(ids))
	}
}

// trafficFigures reports write and read availability for the window.
func trafficFigures(c *checkRun, from time.Time) {
	w := history.Reads(c.Timeline.Writes, from, time.Time{})
	r := history.Reads(c.Timeline.Reads, from, time.Time{})
	c.figure("writes_failed", "writes failed", float64(w.Failed), "")
	c.figure("reads_total", "reads attempted", float64(r.Total), "")
	c.figure("reads_failed", "reads failed", float64(r.Failed), "")
	c.figure("read_availability_pct", "read availability", 100*r.Availability, "%")
	c.seconds("read_longest_outage_s", "longest read outage", r.Longest)
}

func idList(ids []int64) string {
	var parts []string
	for i, id := range ids {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… %d more", len(ids)-10))
			break
		}
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ", ")
}
