package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// OutageThreshold is the write gap from which writes count as down (and an
// RTO is reported): with a write every 50 ms, shorter gaps are a slow
// commit, not an outage.
const OutageThreshold = time.Second

// PollInterval is how often every node is asked GET /primary.
const PollInterval = 150 * time.Millisecond

// Execute runs one scenario under traffic and judges it. c is filled with
// the verdict's problems, the figures and the timeline; the caller decides
// the verdict from c.Problems. Whatever the story broke is put back before
// Execute returns, or (on Ctrl-C) by the Env's restorer.
func Execute(ctx context.Context, env Env, sc Scenario, c *report.Check) {
	r := &Run{Env: env, Check: c}
	c.Timeline = &report.Timeline{Check: c.Name, Start: time.Now()}
	st := env.Settings()
	f, err := env.Healthy(ctx, 30*time.Second)
	if err != nil {
		r.Failf("refused: the cluster is unhealthy before the scenario: %v", err)
		c.Summary = "refused: cluster unhealthy"
		return
	}
	r.Before = f
	if err := env.Announce(ctx, sc.Title); err != nil {
		r.Failf("interrupted before anything was broken: %v", err)
		return
	}
	s := env.Stack()
	if err := setupTable(ctx, appTarget(s, env.Dial(), s.WriteEndpoint, 3*time.Second)); err != nil {
		r.Failf("%v", err)
		return
	}
	dialers, how := nodeDialers(s, env.Dial())
	var pgs []string
	for _, n := range s.ByRole("patroni") {
		pgs = append(pgs, n.Name)
	}
	r.poller = &Poller{Nodes: pgs, Interval: PollInterval,
		Ask:      primaryAsker(s, dialers, env.Patroni(), 500*time.Millisecond),
		Writable: writableAsker(s, dialers, 500*time.Millisecond)}
	r.poller.Start(ctx)
	w := &traffic.Writer{Target: appTarget(s, env.Dial(), s.WriteEndpoint, st.OpTimeout),
		RunID: env.RunID() + "-" + sc.Name, Interval: st.WriteInterval, OpTimeout: st.OpTimeout}
	rd := &traffic.Reader{Target: appTarget(s, env.Dial(), s.ReadEndpoint, st.OpTimeout), Interval: st.ReadInterval, OpTimeout: st.OpTimeout}
	r.traffic = traffic.Start(ctx, w, rd)
	var once sync.Once
	var rounds []Round
	stop := func() {
		once.Do(func() {
			if err := r.traffic.Stop(); err != nil {
				r.Failf("traffic: %v", err)
			}
			rounds = r.poller.Stop()
			c.Timeline.End = time.Now()
			c.Timeline.Writes = r.traffic.Writer.Ops()
			c.Timeline.Reads = r.traffic.Reader.Ops()
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

	// Back to one leader and two streaming replicas, whatever happened.
	back := time.Now()
	final, err := env.Healthy(ctx, st.RejoinBound)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		r.Failf("the cluster is not back to 1 leader + 2 streaming replicas within %s: %v", st.RejoinBound, err)
	} else {
		r.Event("healthy", fmt.Sprintf("1+2 again: %s leads, %s stream", final.Leader.Name, memberNames(final.Replicas)))
		r.Seconds("recovered_s", "restore → 1 leader + 2 streaming replicas", time.Since(back))
	}
	_ = wait.Sleep(ctx, time.Second) // a little steady state on the timeline
	stop()

	judge(ctx, r, final, rounds, how)
	summarize(r, final)
}

// judge applies the checks every scenario shares.
func judge(ctx context.Context, r *Run, final Formation, rounds []Round, how string) {
	c := r.Check
	s := r.Env.Stack()
	writes, reads := c.Timeline.Writes, c.Timeline.Reads
	from := r.FaultAt
	if from.IsZero() {
		from = c.Timeline.Start
	}
	// Downtime as clients saw it: the longest write gap after the fault, and
	// the RTO from the fault that caused it (the latest one before it
	// ended, so two failovers in a row are timed from the second).
	if !r.FaultAt.IsZero() {
		if gap, err := history.Outage(writes, r.FaultAt); err != nil {
			r.Failf("writes never resumed after the fault")
		} else {
			r.Seconds("write_gap_s", "write gap (last ack before → first ack after)", gap.Duration)
			if gap.Duration >= OutageThreshold {
				cause := r.FaultAt
				for _, ev := range c.Timeline.Events {
					if (ev.Kind == "fault" || ev.Kind == "switchover") && ev.At.Before(gap.To) && ev.At.After(cause) {
						cause = ev.At
					}
				}
				r.Seconds("rto_s", "RTO (fault → first acknowledged write after the gap)", gap.To.Sub(cause))
				c.Timeline.Events = append(c.Timeline.Events, report.Event{At: gap.To, Kind: "resumed", Detail: "first write acknowledged after the gap"})
			} else {
				r.Notef("no write outage: the longest gap between acknowledged writes was %.3fs (writes every %s)", gap.Duration.Seconds(), r.Env.Settings().WriteInterval)
			}
		}
	}
	w := history.Reads(writes, from, time.Time{})
	rs := history.Reads(reads, from, time.Time{})
	r.Figure("writes_total", "writes attempted from the fault on", float64(w.Total), "")
	r.Figure("writes_failed", "writes failed", float64(w.Failed), "")
	r.Figure("reads_total", "reads attempted from the fault on", float64(rs.Total), "")
	r.Figure("reads_failed", "reads failed", float64(rs.Failed), "")
	r.Figure("read_availability_pct", "read availability", 100*rs.Availability, "%")
	r.Seconds("read_longest_outage_s", "longest read outage", rs.Longest)

	// Never two primaries at one instant.
	sb := DetectSplitBrain(rounds)
	r.Figure("primary_polls", "polls of /primary on every node", float64(sb.Rounds), "")
	r.Figure("split_brain_instants", "polls with two primaries", float64(len(sb.Instants)), "")
	r.Figure("writable_split_instants", "polls with two writable PostgreSQL servers", float64(len(sb.WritableInstants)), "")
	r.Figure("polls_without_primary", "polls with no primary", float64(sb.NoPrimary), "")
	r.Notef("/primary and pg_is_in_recovery() were polled every %s on every Patroni node %s; %d polls could not reach some node's REST API", PollInterval, how, sb.Blind)
	if p := sb.Problem(c.Timeline.Start); p != "" {
		r.Failf("%s", p)
	}
	if p := sb.WritableProblem(c.Timeline.Start); p != "" {
		if s.SynchronousMode {
			// A cut-off old primary cannot reach its synchronous standby, so
			// it cannot acknowledge a commit; the single-history check below
			// proves that none was. Reported, because it is the window in
			// which asynchronous replication would diverge.
			r.Notef("%s; synchronous mode: the old primary could not acknowledge a commit without its standby", p)
		} else {
			r.Failf("%s: with asynchronous replication both could acknowledge writes", p)
		}
	}
	if sb.Rounds == 0 {
		r.Failf("the /primary poller recorded nothing")
	}

	// Nothing acknowledged lost, and one history.
	if final.Leader.Name == "" {
		r.Failf("no final leader to judge the history against")
		return
	}
	rows, err := readRows(ctx, r, final.Leader.Name)
	if err != nil {
		r.Failf("%v", err)
		return
	}
	var acked []Ack
	for _, o := range writes {
		if o.OK && o.ID != 0 {
			name := o.Server
			if n, ok := s.NodeByIP(o.Server); ok {
				name = n.Name
			}
			acked = append(acked, Ack{ID: o.ID, Node: name, Start: o.Start, End: o.End})
		}
	}
	survivors := map[string][]int64{}
	for n, rs := range rows {
		for _, row := range rs {
			survivors[n] = append(survivors[n], row.ID)
		}
	}
	lr := history.CheckLoss(history.Acked(writes), survivors)
	r.Figure("acked_writes", "acknowledged writes", float64(lr.Acked), "")
	r.Figure("lost_writes", "acknowledged writes lost", float64(len(lr.LostAnywhere)), "")
	r.Figure("unacked_survivors", "unacknowledged writes that committed anyway", float64(lr.Unacked), "")
	if lr.Acked == 0 {
		r.Failf("no write was acknowledged: nothing was proven")
	}
	h := CheckHistory(HistoryInput{Acked: acked, FinalLeader: final.Leader.Name, Rows: rows, Rounds: rounds})
	if !s.SynchronousMode && len(h.Missing) > 0 {
		// Without synchronous replication a failover may lose the last
		// acknowledged writes: reported, not failed (the rule).
		r.Notef("asynchronous replication: %d acknowledged writes lost (ids %s)", len(h.Missing), ids(h.Missing))
		h.Missing = nil
	}
	probs := h.Problems()
	r.Figure("history_problems", "single-history violations", float64(len(probs)), "")
	for _, p := range probs {
		r.Failf("%s", p)
	}
}

// readRows reads the run's rows on every Patroni node. Replicas get a
// while to catch up with the final leader first, so a row that is merely
// late is not taken for a second history.
func readRows(ctx context.Context, r *Run, leader string) (map[string][]Row, error) {
	s := r.Env.Stack()
	run := r.traffic.Writer.RunID
	read := func(host string) ([]Row, error) {
		cn, err := superTarget(s, r.Env.Dial(), host).Connect(ctx)
		if err != nil {
			return nil, err
		}
		defer cn.Close(context.Background())
		q, err := cn.Query(ctx, `SELECT id, coalesce(origin, '') FROM `+traffic.Table+` WHERE run = $1`, run)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		var out []Row
		for q.Next() {
			var row Row
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
	out := map[string][]Row{leader: lrows}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, n := range s.ByRole("patroni") {
		if n.Name == leader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []Row
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
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// setupTable creates the writer's table and adds the column that records
// which server wrote each row (its default is evaluated on the primary at
// insert time and replicated with the row).
func setupTable(ctx context.Context, t pg.Target) error {
	if err := traffic.Setup(ctx, t); err != nil {
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

func summarize(r *Run, final Formation) {
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
		fmt.Sprintf("writes failed %s, reads failed %s/%s", fig("writes_failed"), fig("reads_failed"), fig("reads_total")),
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

func memberNames(ms []patroni.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, " and ")
}
