package scenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// PollInterval is how often every node is asked GET /primary.
const PollInterval = 150 * time.Millisecond

// Execute runs one story under traffic and judges it. c is filled with the
// problems, the figures, the properties and the timeline (the evidence);
// the caller decides the verdict from c.Problems. Whatever the story broke
// is put back before Execute returns, or (on Ctrl-C) by the Env's restorer.
func Execute(ctx context.Context, env Env, sc Scenario, c *report.Check) {
	s, st := env.Stack(), env.Settings()
	r := &Run{Env: env, Check: c}
	c.Timeline = &report.Timeline{Check: c.Name, Start: time.Now(), SynchronousMode: s.SynchronousMode,
		Planned: sc.Planned, WriteInterval: st.WriteInterval, Servers: servers(s)}
	f, err := r.healthy(ctx, 30*time.Second)
	if err != nil {
		r.Failf("refused: the cluster is unhealthy before %s: %v", c.Name, err)
		c.Summary = "refused: cluster unhealthy"
		return
	}
	r.Before = f
	if err := env.Announce(ctx, fmt.Sprintf("%s (leader %s)", sc.Title, f.Leader.Name)); err != nil {
		r.Failf("interrupted before anything was broken: %v", err)
		return
	}
	if err := setupTable(ctx, AppTarget(s, env.Dial(), true, 3*time.Second), s.Credentials.MonitorName); err != nil {
		r.Failf("%v", err)
		return
	}
	dialers, how := nodeDialers(s, env.Dial())
	var pgs []string
	for _, n := range s.ByRole(topology.RolePatroni) {
		pgs = append(pgs, n.Name)
	}
	r.poller = &Poller{Nodes: pgs, Interval: PollInterval,
		Ask:      primaryAsker(s, dialers, env.Probe().Patroni, 500*time.Millisecond),
		Writable: writableAsker(env.Probe(), dialers, 500*time.Millisecond)}
	r.poller.Start(ctx)
	w := &traffic.Writer{Target: AppTarget(s, env.Dial(), true, st.OpTimeout),
		RunID: env.RunID() + "-" + c.Name, Interval: st.WriteInterval, OpTimeout: st.OpTimeout}
	rd := &traffic.Reader{Target: AppTarget(s, env.Dial(), false, st.OpTimeout), Interval: st.ReadInterval, OpTimeout: st.OpTimeout}
	var pw *traffic.Writer
	if pt, ok := PoolerTarget(s, env.Dial(), st.OpTimeout); ok {
		// A client of the pooler waits as long as PgBouncer holds it
		// (query_wait_timeout, twice the failover bound): its longest
		// write is the stall it saw, not a timeout of ours.
		pw = &traffic.Writer{Target: pt, RunID: w.RunID, Interval: st.WriteInterval, OpTimeout: 2 * st.FailoverBound,
			FirstID: PooledFirstID, ServerPerWrite: true}
	}
	r.traffic = traffic.Start(ctx, w, rd, pw)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := r.traffic.Stop(); err != nil {
				r.Failf("traffic: %v", err)
			}
			c.Timeline.Rounds = r.poller.Stop()
			c.Timeline.End = time.Now()
			c.Timeline.Writes = r.traffic.Writer.Ops()
			c.Timeline.Reads = r.traffic.Reader.Ops()
			if pw != nil {
				c.Timeline.PooledWrites = pw.Ops()
			}
		})
	}
	defer stop()
	if err := r.traffic.Baseline(ctx, time.Second); err != nil {
		r.Failf("%v", err)
		return
	}

	func() {
		defer func() {
			if p := recover(); p != nil {
				r.Failf("internal error in the story: %v", p)
			}
		}()
		sc.Story(ctx, r)
	}()
	if ctx.Err() != nil {
		return // validate's restorer puts things back; half a figure would mislead
	}
	r.undoAll()

	// Back to one leader and two streaming replicas, whatever happened,
	// timed from the last restore (or the story's end).
	back := time.Now()
	for _, ev := range c.Timeline.Events {
		if ev.Kind == "restore" {
			back = ev.At
		}
	}
	final, err := r.healthy(ctx, st.RejoinBound)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		r.Failf("the cluster is not back to 1 leader + 2 streaming replicas within %s: %v", st.RejoinBound, err)
	} else {
		r.Event("healthy", final.Leader.Name, fmt.Sprintf("1+2 again: %s leads, %s stream", final.Leader.Name, memberNames(final.Replicas)))
		r.Seconds("recovered_s", "restore → 1 leader + 2 streaming replicas", time.Since(back))
		r.routed(ctx, final)
	}
	_ = wait.Sleep(ctx, time.Second) // a little steady state on the timeline
	stop()

	c.Timeline.FaultAt = r.FaultAt
	c.Timeline.FinalLeader = final.Leader.Name
	if final.Leader.Name != "" {
		rows, err := readRows(ctx, r, final.Leader.Name)
		if err != nil {
			r.Failf("%v", err)
		}
		c.Timeline.Rows = rows
	}
	v := judge.Judge(*c.Timeline)
	Apply(c, v)
	r.Notef("/primary and pg_is_in_recovery() were polled every %s on every Patroni node %s; %d polls could not reach some node's REST API",
		PollInterval, how, judge.DetectSplitBrain(c.Timeline.Rounds).Blind)
	for _, p := range c.Properties {
		r.Env.Logf("  %s: %s", p.Name, holdsText(p))
	}
	summarize(r, final)
}

// Apply records a verdict on a check: its properties and figures, its
// violations as problems (or notes, where tolerated), and the end of the
// write outage on the timeline.
func Apply(c *report.Check, v judge.Verdict) {
	c.Properties = v.Properties
	c.Figures = append(c.Figures, v.Figures...)
	c.Problems = append(c.Problems, v.Problems()...)
	c.Notes = append(c.Notes, v.Notes...)
	c.Notes = append(c.Notes, v.Tolerated()...)
	if !v.Resumed.IsZero() && c.Timeline != nil {
		c.Timeline.Events = append(c.Timeline.Events, report.Event{At: v.Resumed, Kind: "resumed", Detail: "first write acknowledged after the gap"})
	}
}

func holdsText(p report.Property) string {
	switch {
	case p.Holds:
		return "holds"
	case p.Tolerated:
		return "broken, tolerated: " + strings.Join(p.Detail, "; ")
	}
	return "VIOLATED: " + strings.Join(p.Detail, "; ")
}

// healthy waits up to bound for etcd with 3 healthy members and one leader,
// and Patroni with 1 leader + 2 streaming replicas on one timeline (with a
// sync standby in synchronous mode).
func (r *Run) healthy(ctx context.Context, bound time.Duration) (probe.Formation, error) {
	p := r.Env.Probe()
	f, ok := p.WaitFormation(ctx, bound, func(probe.Formation) string {
		if es := p.Etcd(ctx); !es.OK() {
			return "etcd: " + strings.Join(es.Problems, "; ")
		}
		return ""
	}, r.Env.Logf)
	if !ok {
		if ctx.Err() != nil {
			return probe.Formation{}, ctx.Err()
		}
		return f, errors.New(f.Problem())
	}
	return f, nil
}

// routed checks that HAProxy sends fresh sessions to the final leader on
// the write port and to the replicas on the read port.
func (r *Run) routed(ctx context.Context, final probe.Formation) {
	p := r.Env.Probe()
	rt := p.WaitRouting(ctx, r.Env.Settings().RoutingBound, final.Leader.Host, final.HostsExcept(final.Leader.Name))
	for _, kv := range []struct {
		kind string
		m    map[string]map[string]int
	}{{"write", rt.Writes}, {"read", rt.Reads}} {
		var eps []string
		for ep := range kv.m {
			eps = append(eps, ep)
		}
		sort.Strings(eps)
		for _, ep := range eps {
			r.Text(kv.kind+"_route_"+ep, kv.kind+" "+ep+" reached", p.Distribution(kv.m[ep]))
		}
	}
	for _, pr := range rt.Problems {
		r.Failf("after %s: %s", r.Check.Name, pr)
	}
}

// servers names the node behind each private address of the stack.
func servers(s outputs.Stack) map[string]string {
	m := map[string]string{}
	for _, n := range s.Nodes {
		m[n.PrivateIP] = n.Name
	}
	return m
}

// readRows reads the run's rows on every Patroni node, as the monitor
// role (traffic.Setup let it read the table). Replicas get a
// while to catch up with the final leader first, so a row that is merely
// late is not taken for a second history.
func readRows(ctx context.Context, r *Run, leader string) (map[string][]history.Row, error) {
	s := r.Env.Stack()
	run := r.traffic.Writer.RunID
	read := func(host string) ([]history.Row, error) {
		cn, err := r.Env.Probe().Monitor(host).Connect(ctx)
		if err != nil {
			return nil, err
		}
		defer cn.Close(context.Background())
		q, err := cn.Query(ctx, `SELECT id, coalesce(origin, '') FROM `+traffic.Table+` WHERE run = $1`, run)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		var out []history.Row
		for q.Next() {
			var row history.Row
			if err := q.Scan(&row.ID, &row.Origin); err != nil {
				return nil, err
			}
			if n, ok := s.NodeByIP(row.Origin); ok {
				row.Origin = n.Name
			}
			out = append(out, row)
		}
		return out, q.Err()
	}
	ln, err := node(s, leader)
	if err != nil {
		return nil, err
	}
	lrows, err := read(ln.PrivateIP)
	if err != nil {
		return nil, fmt.Errorf("reading the rows on the final leader %s: %w", leader, err)
	}
	out := map[string][]history.Row{leader: lrows}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, n := range s.ByRole(topology.RolePatroni) {
		if n.Name == leader {
			continue
		}
		wg.Go(func() {
			var got []history.Row
			var lastErr error
			wait.Poll(ctx, 15*time.Second, 300*time.Millisecond, func() bool {
				got, lastErr = read(n.PrivateIP)
				return lastErr == nil && len(got) == len(lrows)
			})
			mu.Lock()
			defer mu.Unlock()
			if got == nil && lastErr != nil {
				errs = append(errs, fmt.Errorf("reading the rows on %s: %w", n.Name, lastErr))
				return
			}
			out[n.Name] = got
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// setupTable creates the writer's table and adds the column that records
// which server wrote each row (its default is evaluated on the primary at
// insert time and replicated with the row).
func setupTable(ctx context.Context, t pg.Target, reader string) error {
	if err := traffic.Setup(ctx, t, reader); err != nil {
		return err
	}
	cn, err := t.Connect(ctx)
	if err != nil {
		return err
	}
	defer cn.Close(context.Background())
	if _, err := cn.Exec(ctx, `ALTER TABLE `+traffic.Table+` ADD COLUMN IF NOT EXISTS origin text DEFAULT host(inet_server_addr())`); err != nil {
		return fmt.Errorf("adding the origin column to %s: %w", traffic.Table, err)
	}
	return nil
}

func summarize(r *Run, final probe.Formation) {
	c := r.Check
	var parts []string
	if r.Outcome != "" {
		parts = append(parts, r.Outcome)
	}
	fig := func(key string) string {
		if f, ok := c.Figure(key); ok {
			return f.String()
		}
		return "?"
	}
	if _, ok := c.Figure("rto_s"); ok {
		parts = append(parts, "RTO "+fig("rto_s"))
	}
	if _, ok := c.Figure("write_gap_s"); ok {
		parts = append(parts, "write gap "+fig("write_gap_s"))
	}
	parts = append(parts,
		fmt.Sprintf("writes failed %s, reads failed %s/%s", fig("writes_failed"), fig("reads_failed"), fig("reads_total")))
	if _, ok := c.Figure("pooled_writes_failed"); ok {
		parts = append(parts, fmt.Sprintf("through the pooler: writes failed %s, longest write %s", fig("pooled_writes_failed"), fig("pooled_longest_write_s")))
	}
	parts = append(parts,
		fmt.Sprintf("lost %s of %s acked", fig("lost_writes"), fig("acked_writes")),
		"split-brain polls "+fig("split_brain_instants"))
	if final.Leader.Name != "" {
		parts = append(parts, "ends "+final.Leader.Name+"+2")
	}
	c.Summary = strings.Join(parts, "; ")
	if len(c.Problems) > 0 {
		c.Summary = c.Problems[0]
	}
}
