// Package history judges what the traffic recorded. It knows nothing about
// PostgreSQL: it takes the operations the writer and reader saw, plus the rows
// that survive on each node, and answers the questions the checks ask: was an
// acknowledged write lost, how long were writes down, how available were
// reads.
//
// The rule is the one Patroni's Jepsen suite uses: an insert whose COMMIT was
// acknowledged must still be there afterwards. Inserts that failed or timed out
// are ambiguous and may or may not survive; they never count as lost.
package history

import (
	"errors"
	"sort"
	"time"
)

// Op is one operation as the client saw it.
type Op struct {
	ID     int64     `json:"id,omitempty"` // insert id; 0 when nothing was sent (connect failed)
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	OK     bool      `json:"ok"`
	Server string    `json:"server,omitempty"` // inet_server_addr() of the connection
	Err    string    `json:"err,omitempty"`
}

// Acked returns the ids of acknowledged inserts, in ack order.
func Acked(ops []Op) []int64 {
	var ids []int64
	for _, o := range ops {
		if o.OK && o.ID != 0 {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// LastErr is the newest error among ops, for messages about why traffic
// fails.
func LastErr(ops []Op) string {
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].Err != "" {
			return ops[i].Err
		}
	}
	return "no operation failed"
}

// LossReport is the verdict on data loss.
type LossReport struct {
	Acked int `json:"acked"`
	// Lost are acknowledged ids missing on a node, by node name. A node that
	// misses nothing is present with an empty list, so the report shows it was
	// checked.
	Lost map[string][]int64 `json:"lost"`
	// LostAnywhere is the union: acknowledged ids missing on at least one node.
	LostAnywhere []int64 `json:"lostAnywhere"`
	// Unacked counts ids that survive although the client never saw the ack
	// (the commit happened but the reply was lost). Not an error; reported
	// because it shows in-flight writes at the fault.
	Unacked int `json:"unacked"`
}

// OK reports whether every acknowledged insert survived everywhere.
func (r LossReport) OK() bool { return len(r.LostAnywhere) == 0 }

// CheckLoss compares the acknowledged ids with the ids that survive on each
// node. survivors maps node name to the ids found there.
func CheckLoss(acked []int64, survivors map[string][]int64) LossReport {
	r := LossReport{Acked: len(acked), Lost: map[string][]int64{}}
	ackSet := make(map[int64]bool, len(acked))
	for _, id := range acked {
		ackSet[id] = true
	}
	anywhere := map[int64]bool{}
	unacked := map[int64]bool{}
	for node, ids := range survivors {
		have := make(map[int64]bool, len(ids))
		for _, id := range ids {
			have[id] = true
			if !ackSet[id] {
				unacked[id] = true
			}
		}
		lost := []int64{}
		for id := range ackSet {
			if !have[id] {
				lost = append(lost, id)
				anywhere[id] = true
			}
		}
		sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
		r.Lost[node] = lost
	}
	for id := range anywhere {
		r.LostAnywhere = append(r.LostAnywhere, id)
	}
	sort.Slice(r.LostAnywhere, func(i, j int) bool { return r.LostAnywhere[i] < r.LostAnywhere[j] })
	r.Unacked = len(unacked)
	return r
}

// Gap is a stretch without acknowledged operations.
type Gap struct {
	From     time.Time     `json:"from"` // last ack before the gap (or the window start)
	To       time.Time     `json:"to"`   // first ack after it
	Duration time.Duration `json:"duration"`
}

// ErrNoRecovery means no operation succeeded after the event.
var ErrNoRecovery = errors.New("no acknowledged operation after the event")

// ackTimes returns the completion times of successful ops, sorted.
func ackTimes(ops []Op) []time.Time {
	var ts []time.Time
	for _, o := range ops {
		if o.OK {
			ts = append(ts, o.End)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// Outage is the longest stretch between two consecutive acknowledged
// operations that ends after event: the downtime an event caused. It is
// measured between acks, so a write that was already in flight when the event
// happened and still succeeded does not hide the outage that follows it.
// With no ack before the event, the gap starts at the event.
func Outage(ops []Op, event time.Time) (Gap, error) {
	ts := ackTimes(ops)
	prev := event
	// The ack just before the event, if any, starts the first candidate gap.
	i := sort.Search(len(ts), func(i int) bool { return ts[i].After(event) })
	if i > 0 {
		prev = ts[i-1]
	}
	if i == len(ts) {
		return Gap{}, ErrNoRecovery
	}
	var best Gap
	for ; i < len(ts); i++ {
		if d := ts[i].Sub(prev); d > best.Duration || best.To.IsZero() {
			best = Gap{From: prev, To: ts[i], Duration: d}
		}
		prev = ts[i]
	}
	return best, nil
}

// RTO is the time from the fault until the first acknowledged operation after
// the outage the fault caused.
func RTO(ops []Op, fault time.Time) (time.Duration, Gap, error) {
	g, err := Outage(ops, fault)
	if err != nil {
		return 0, Gap{}, err
	}
	return g.To.Sub(fault), g, nil
}

// ReadStats summarises read availability over a window.
type ReadStats struct {
	Total        int           `json:"total"`
	Failed       int           `json:"failed"`
	Availability float64       `json:"availability"` // succeeded / total, 0..1
	Longest      time.Duration `json:"longestOutage"`
	// Servers counts successful reads per server address.
	Servers map[string]int `json:"servers"`
}

// Reads summarises the ops that started within [from, to). A zero bound is
// open.
func Reads(ops []Op, from, to time.Time) ReadStats {
	s := ReadStats{Servers: map[string]int{}}
	var in []Op
	for _, o := range ops {
		if !from.IsZero() && o.Start.Before(from) {
			continue
		}
		if !to.IsZero() && !o.Start.Before(to) {
			continue
		}
		in = append(in, o)
		s.Total++
		if o.OK {
			s.Servers[o.Server]++
		} else {
			s.Failed++
		}
	}
	if s.Total > 0 {
		s.Availability = float64(s.Total-s.Failed) / float64(s.Total)
	}
	// Longest run of failures, from the first failed start to the next success.
	var runStart time.Time
	for _, o := range in {
		if !o.OK {
			if runStart.IsZero() {
				runStart = o.Start
			}
			continue
		}
		if !runStart.IsZero() {
			if d := o.End.Sub(runStart); d > s.Longest {
				s.Longest = d
			}
			runStart = time.Time{}
		}
	}
	if !runStart.IsZero() && len(in) > 0 {
		if d := in[len(in)-1].End.Sub(runStart); d > s.Longest {
			s.Longest = d
		}
	}
	return s
}

// Servers returns, in order of first appearance, the distinct servers that
// acknowledged operations at or after since. validate uses it to see that
// 5000 followed the new leader and that no write was acknowledged by the old
// one after it was demoted.
func Servers(ops []Op, since time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range ops {
		if !o.OK || o.End.Before(since) || seen[o.Server] {
			continue
		}
		seen[o.Server] = true
		out = append(out, o.Server)
	}
	return out
}

// Round is one poll of every Patroni node, the requests sent together.
// Patroni answers GET /primary with 200 only on the member that holds the
// leader role; it is the check HAProxy routes writes by. /primary is
// Patroni's belief, though: a cut-off leader's PostgreSQL keeps taking
// writes until Patroni has demoted it, so each round also asks PostgreSQL.
type Round struct {
	At          time.Time `json:"at"`
	Primaries   []string  `json:"primaries,omitempty"`   // answered 200
	Unreachable []string  `json:"unreachable,omitempty"` // no answer within the timeout
	// Writable are the nodes whose PostgreSQL accepted a connection and is
	// not in recovery: a write sent there would be taken.
	Writable []string `json:"writable,omitempty"`
}

// Row is one row of the writer's table that survives on a node: its id
// and the node that wrote it (each row records its primary's address).
type Row struct {
	ID     int64  `json:"id"`
	Origin string `json:"origin"`
}
