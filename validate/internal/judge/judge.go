// Package judge decides, from what a destructive check recorded and from
// nothing else, whether the cluster kept its promises: every acknowledged
// write survived, the acknowledged writes form one history, there were
// never two primaries at one instant, writes came back after the fault, and
// the service was whole again at the end.
//
// It is pure, like the validate package of etcd's robustness tests: the
// same Timeline always gives the same Verdict, so `validate judge
// report.json` judges a saved run again without a cluster, and the unit
// tests judge synthetic histories.
package judge

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
)

// The properties, by name.
const (
	NoAckedWriteLost = "no-acknowledged-write-lost"
	SingleHistory    = "single-history"
	OnePrimary       = "one-primary-at-a-time"
	OneWritable      = "one-writable-server-at-a-time"
	DeposedSilent    = "deposed-leader-acknowledges-nothing"
	WritesResumed    = "writes-resumed"
	ServiceRestored  = "service-restored"
	// PooledNoError: a planned switchover held behind the poolers fails
	// no operation of a client of the pooler.
	PooledNoError = "pooled-clients-see-no-error"
)

// PauseEvent is the timeline's event for the poolers' PAUSE: the
// switchover that follows was held behind them.
const PauseEvent = "pause"

// OutageThreshold is the write gap from which writes count as down (and an
// RTO is reported): with a write every 50 ms, shorter gaps are a slow
// commit, not an outage.
const OutageThreshold = time.Second

// Verdict is the judge's decision on one Timeline.
type Verdict struct {
	Properties []report.Property
	Figures    []report.Figure
	// Notes are observations that are not verdicts.
	Notes []string
	// Resumed is the first acknowledged write after an outage of at least
	// OutageThreshold; zero when there was none.
	Resumed time.Time
}

// Problems are the violations that fail the check, one line each.
func (v Verdict) Problems() []string {
	var out []string
	for _, p := range v.Properties {
		if !p.Holds && !p.Tolerated {
			out = append(out, p.Detail...)
		}
	}
	return out
}

// Tolerated are the violations reported but allowed, one line each.
func (v Verdict) Tolerated() []string {
	var out []string
	for _, p := range v.Properties {
		if !p.Holds && p.Tolerated {
			out = append(out, p.Detail...)
		}
	}
	return out
}

// FigureKeys are the figures Judge computes; a re-judged report is compared
// on these (the story's own figures, such as the election time, were
// measured live and are not judged again).
var FigureKeys = []string{
	"write_gap_s", "rto_s", "writes_total", "writes_failed", "reads_total", "reads_failed",
	"read_availability_pct", "read_longest_outage_s", "primary_polls", "split_brain_instants",
	"writable_split_instants", "polls_without_primary", "acked_writes", "lost_writes", "lost_on_leader",
	"unacked_survivors", "history_problems", "longest_write_s",
	"pooled_writes_total", "pooled_writes_failed", "pooled_write_gap_s", "pooled_longest_write_s", "pooled_rto_s",
}

// verdict collects a Verdict.
type verdict struct {
	Verdict
}

func (v *verdict) figure(key, label string, value float64, unit string) {
	v.Figures = append(v.Figures, report.Figure{Key: key, Label: label, Value: value, Unit: unit})
}

func (v *verdict) seconds(key, label string, d time.Duration) { v.figure(key, label, d.Seconds(), "s") }

func (v *verdict) property(name string, holds, tolerated bool, detail ...string) {
	p := report.Property{Name: name, Holds: holds}
	if !holds {
		p.Tolerated, p.Detail = tolerated, detail
	}
	v.Properties = append(v.Properties, p)
}

// Judge applies every check a destructive run shares to its Timeline.
func Judge(tl report.Timeline) Verdict {
	tl = wallClock(tl)
	v := &verdict{}
	from := tl.FaultAt
	if from.IsZero() {
		from = tl.Start
	}
	v.outage(tl)
	w := history.Reads(tl.Writes, from, time.Time{})
	rs := history.Reads(tl.Reads, from, time.Time{})
	v.figure("writes_total", "writes attempted from the fault on", float64(w.Total), "")
	v.figure("writes_failed", "writes failed", float64(w.Failed), "")
	v.seconds("longest_write_s", "longest single write (the longest a client waited)", longest(tl.Writes, from))
	v.pooled(tl, from)
	v.figure("reads_total", "reads attempted from the fault on", float64(rs.Total), "")
	v.figure("reads_failed", "reads failed", float64(rs.Failed), "")
	v.figure("read_availability_pct", "read availability", 100*rs.Availability, "%")
	v.seconds("read_longest_outage_s", "longest read outage", rs.Longest)
	v.primaries(tl)
	v.deposed(tl)
	v.data(tl)
	v.restored(tl)
	return v.Verdict
}

// outage: how long writes were down after the fault, and the RTO from the
// fault that caused it (the latest one before the outage ended, so two
// failovers in a row are timed from the second).
func (v *verdict) outage(tl report.Timeline) {
	if tl.FaultAt.IsZero() {
		return
	}
	gap, err := history.Outage(tl.Writes, tl.FaultAt)
	if err != nil {
		v.property(WritesResumed, false, false, "writes never resumed after the fault")
		return
	}
	v.property(WritesResumed, true, false)
	v.seconds("write_gap_s", "write gap (last ack before → first ack after)", gap.Duration)
	if gap.Duration < OutageThreshold {
		v.Notes = append(v.Notes, fmt.Sprintf("no write outage: the longest gap between acknowledged writes was %.3fs (writes every %s)",
			gap.Duration.Seconds(), tl.WriteInterval))
		return
	}
	v.seconds("rto_s", "RTO (fault → first acknowledged write after the gap)", gap.To.Sub(cause(tl, gap.To)))
	v.Resumed = gap.To
}

// pooled: what a client of the pooler saw, beside the direct writer's
// figures; a planned switchover held behind the poolers must fail none of
// its operations.
func (v *verdict) pooled(tl report.Timeline, from time.Time) {
	if len(tl.PooledWrites) == 0 {
		return
	}
	w := history.Reads(tl.PooledWrites, from, time.Time{})
	v.figure("pooled_writes_total", "writes through the pooler from the fault on", float64(w.Total), "")
	v.figure("pooled_writes_failed", "writes through the pooler failed", float64(w.Failed), "")
	if gap, err := history.Outage(tl.PooledWrites, from); err == nil {
		v.seconds("pooled_write_gap_s", "write gap through the pooler", gap.Duration)
		if !tl.FaultAt.IsZero() {
			v.seconds("pooled_rto_s", "RTO through the pooler (fault → first acknowledged write after its gap)", gap.To.Sub(cause(tl, gap.To)))
		}
	}
	v.seconds("pooled_longest_write_s", "longest single write through the pooler (the longest a client was held)", longest(tl.PooledWrites, from))
	if !tl.Planned || !slices.ContainsFunc(tl.Events, func(e report.Event) bool { return e.Kind == PauseEvent }) {
		return
	}
	var failed []string
	for _, o := range tl.PooledWrites {
		if !o.OK && !o.Start.Before(from) {
			failed = append(failed, fmt.Sprintf("id %d at %s: %s", o.ID, o.Start.Format("15:04:05.000"), o.Err))
		}
	}
	if len(failed) > 3 {
		failed = append(failed[:3], fmt.Sprintf("… %d more", len(failed)-3))
	}
	if len(failed) > 0 {
		failed[0] = fmt.Sprintf("%d writes through the pooler failed during a switchover held behind it: %s", w.Failed, failed[0])
	}
	v.property(PooledNoError, len(failed) == 0, false, failed...)
}

// longest is the longest operation that started at from or later.
func longest(ops []history.Op, from time.Time) time.Duration {
	var d time.Duration
	for _, o := range ops {
		if !o.Start.Before(from) {
			d = max(d, o.End.Sub(o.Start))
		}
	}
	return d
}

// cause is the fault an outage that ended at end is timed from: the
// latest fault (or switchover request) before it, so two failovers in a
// row are timed from the second.
func cause(tl report.Timeline, end time.Time) time.Time {
	c := tl.FaultAt
	for _, ev := range tl.Events {
		if (ev.Kind == "fault" || ev.Kind == "switchover") && ev.At.Before(end) && ev.At.After(c) {
			c = ev.At
		}
	}
	return c
}

// primaries: never two primaries at one instant, by Patroni's /primary and
// by PostgreSQL itself.
func (v *verdict) primaries(tl report.Timeline) {
	sb := DetectSplitBrain(tl.Rounds)
	v.figure("primary_polls", "polls of /primary on every node", float64(sb.Rounds), "")
	v.figure("split_brain_instants", "polls with two primaries", float64(len(sb.Instants)), "")
	v.figure("writable_split_instants", "polls with two writable PostgreSQL servers", float64(len(sb.WritableInstants)), "")
	v.figure("polls_without_primary", "polls with no primary", float64(sb.NoPrimary), "")
	switch p := sb.Problem(tl.Start); {
	case sb.Rounds == 0:
		v.property(OnePrimary, false, false, "the /primary poller recorded nothing")
	case p != "":
		v.property(OnePrimary, false, false, p)
	default:
		v.property(OnePrimary, true, false)
	}
	if p := sb.WritableProblem(tl.Start); p != "" {
		if tl.SynchronousMode {
			// A cut-off old primary cannot reach its synchronous standby, so
			// it cannot acknowledge a commit; the single-history property
			// proves that none was. Reported, because it is the window in
			// which asynchronous replication would diverge.
			v.property(OneWritable, false, true, p+"; synchronous mode: the old primary could not acknowledge a commit without its standby")
		} else {
			v.property(OneWritable, false, false, p+": with asynchronous replication both could acknowledge writes")
		}
	} else {
		v.property(OneWritable, true, false)
	}
}

// deposed: once a new leader was seen promoted, no other server
// acknowledges a write that started after that, until the next promotion,
// unless that server was itself promoted again before the ack arrived.
func (v *verdict) deposed(tl report.Timeline) {
	var promotions []report.Event
	for _, ev := range tl.Events {
		if ev.Kind == "promotion" && ev.Node != "" {
			promotions = append(promotions, ev)
		}
	}
	if len(promotions) == 0 {
		return
	}
	sort.SliceStable(promotions, func(i, j int) bool { return promotions[i].At.Before(promotions[j].At) })
	var problems []string
	for i, p := range promotions {
		until := time.Time{}
		if i+1 < len(promotions) {
			until = promotions[i+1].At
		}
		var ids []int64
		var by string
		for _, o := range allWrites(tl) {
			node := name(tl, o.Server)
			if !o.OK || o.ID == 0 || node == p.Node || !o.Start.After(p.At) || (!until.IsZero() && !o.Start.Before(until)) {
				continue
			}
			// A write held while there was no leader (a pooler holds it
			// for seconds) may run on the next leader: its ack by a node
			// promoted again before the ack came back is that leader's.
			if slices.ContainsFunc(promotions[i+1:], func(q report.Event) bool { return q.Node == node && !q.At.After(o.End) }) {
				continue
			}
			ids, by = append(ids, o.ID), node
		}
		if len(ids) > 0 {
			problems = append(problems, fmt.Sprintf("%d writes were acknowledged by %s after %s had taken over (ids %s): two primaries accepted writes",
				len(ids), by, p.Node, IDs(ids)))
		}
	}
	v.property(DeposedSilent, len(problems) == 0, false, problems...)
}

// data: every acknowledged write is on the final leader, and the
// acknowledged writes form a single history on every node.
func (v *verdict) data(tl report.Timeline) {
	if tl.FinalLeader == "" {
		v.property(SingleHistory, false, false, "no final leader to judge the history against")
		return
	}
	var acked []Ack
	writes := allWrites(tl)
	for _, o := range writes {
		if o.OK && o.ID != 0 {
			acked = append(acked, Ack{ID: o.ID, Node: name(tl, o.Server), Start: o.Start, End: o.End})
		}
	}
	survivors := map[string][]int64{}
	for n, rs := range tl.Rows {
		for _, row := range rs {
			survivors[n] = append(survivors[n], row.ID)
		}
	}
	lr := history.CheckLoss(history.Acked(writes), survivors)
	h := CheckHistory(HistoryInput{Acked: acked, FinalLeader: tl.FinalLeader, Rows: tl.Rows, Rounds: tl.Rounds})
	v.figure("acked_writes", "acknowledged writes", float64(lr.Acked), "")
	v.figure("lost_writes", "acknowledged writes missing on some node", float64(len(lr.LostAnywhere)), "")
	v.figure("lost_on_leader", "acknowledged writes missing on the final leader", float64(len(h.Missing)), "")
	v.figure("unacked_survivors", "unacknowledged writes that committed anyway", float64(lr.Unacked), "")

	switch {
	case lr.Acked == 0:
		v.property(NoAckedWriteLost, false, false, "no write was acknowledged: nothing was proven")
	case len(h.Missing) == 0:
		v.property(NoAckedWriteLost, true, false)
	case tl.SynchronousMode || tl.Planned:
		v.property(NoAckedWriteLost, false, false, fmt.Sprintf("%d acknowledged writes are not on the final leader (ids %s)", len(h.Missing), IDs(h.Missing)))
	default:
		// Without synchronous replication a failover may lose the last
		// acknowledged writes: reported, not failed.
		v.property(NoAckedWriteLost, false, true, fmt.Sprintf("asynchronous replication: %d acknowledged writes lost (ids %s)", len(h.Missing), IDs(h.Missing)))
	}
	missing := h.Missing
	h.Missing = nil // judged above
	probs := h.Problems()
	v.property(SingleHistory, len(probs) == 0, false, probs...)
	count := len(probs)
	if len(missing) > 0 && (tl.SynchronousMode || tl.Planned) {
		count++
	}
	v.figure("history_problems", "single-history violations", float64(count), "")
}

// restored: once the cluster was whole again (the "healthy" event), writes
// are acknowledged and reads served.
func (v *verdict) restored(tl report.Timeline) {
	var healthy time.Time
	for _, ev := range tl.Events {
		if ev.Kind == "healthy" {
			healthy = ev.At
		}
	}
	if healthy.IsZero() {
		return
	}
	var problems []string
	for _, k := range []struct {
		what string
		ops  []history.Op
	}{{"write", tl.Writes}, {"pooled write", tl.PooledWrites}, {"read", tl.Reads}} {
		s := history.Reads(k.ops, healthy, time.Time{})
		if s.Total > 0 && s.Failed == s.Total {
			problems = append(problems, fmt.Sprintf("no %s succeeded once the cluster was back to one leader and two streaming replicas (%d tried)", k.what, s.Total))
		}
	}
	v.property(ServiceRestored, len(problems) == 0, false, problems...)
}

// wallClock copies tl with every time reduced to its wall-clock reading. A
// live timeline's times also carry the monotonic clock, which durations
// prefer and JSON drops; judging wall clock only is what makes a saved
// report judge to exactly the same figures.
func wallClock(tl report.Timeline) report.Timeline {
	tl.Start, tl.End, tl.FaultAt = tl.Start.Round(0), tl.End.Round(0), tl.FaultAt.Round(0)
	ops := func(in []history.Op) []history.Op {
		out := make([]history.Op, len(in))
		for i, o := range in {
			o.Start, o.End = o.Start.Round(0), o.End.Round(0)
			out[i] = o
		}
		return out
	}
	tl.Writes, tl.Reads, tl.PooledWrites = ops(tl.Writes), ops(tl.Reads), ops(tl.PooledWrites)
	rounds := make([]history.Round, len(tl.Rounds))
	for i, r := range tl.Rounds {
		r.At = r.At.Round(0)
		rounds[i] = r
	}
	tl.Rounds = rounds
	events := make([]report.Event, len(tl.Events))
	for i, e := range tl.Events {
		e.At = e.At.Round(0)
		events[i] = e
	}
	tl.Events = events
	return tl
}

// allWrites are the direct writer's and the pooled writer's: every
// acknowledged one must survive, on one history.
func allWrites(tl report.Timeline) []history.Op {
	return append(append([]history.Op(nil), tl.Writes...), tl.PooledWrites...)
}

// name is the node behind a server address, or the address.
func name(tl report.Timeline, addr string) string {
	if n, ok := tl.Servers[addr]; ok {
		return n
	}
	return addr
}

// IDs lists ids for a message, the first ten and a count of the rest.
func IDs(v []int64) string {
	var parts []string
	for i, id := range v {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… %d more", len(v)-10))
			break
		}
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ", ")
}
