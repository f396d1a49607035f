package judge

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
)

// The single-history check.
//
// The writer inserts rows with ids that are never reused, one at a time,
// and records for every acknowledged insert the server that acknowledged it
// (inet_server_addr() of its connection). Each row also records the server
// that wrote it (a column whose default is the primary's own address). If
// two primaries had accepted writes, the two histories could not both
// survive: PostgreSQL keeps one WAL history and pg_rewind throws the other
// branch away. So the acknowledged writes form a single history when:
//
//  1. every acknowledged id is on the final leader (nothing acknowledged was
//     on a branch that was thrown away);
//  2. each surviving row was written by the server that acknowledged it (the
//     row that survives is the acknowledged one, not a namesake from another
//     branch);
//  3. every node holds exactly the final leader's rows of the run: no node
//     keeps rows the leader never had (a second branch still alive), none
//     misses any (it did not rejoin the history);
//  4. in acknowledgement order, a server that was replaced as the
//     acknowledging primary acknowledges again only after the /primary
//     poller saw it as the sole primary once more (a real re-election, as
//     in two failovers in a row), never interleaved with its successor.

// Ack is one acknowledged insert, with the node that acknowledged it.
type Ack struct {
	ID    int64
	Node  string
	Start time.Time
	End   time.Time
}

// HistoryInput is what the checker judges.
type HistoryInput struct {
	Acked       []Ack
	FinalLeader string
	// Rows are the run's rows on each node, read after the replicas had
	// time to catch up.
	Rows   map[string][]history.Row
	Rounds []history.Round
}

// HistoryReport lists every way the history is not single.
type HistoryReport struct {
	Missing   []int64            `json:"missing,omitempty"`   // acknowledged, not on the final leader
	Foreign   []string           `json:"foreign,omitempty"`   // surviving row written by another server than the one that acked it
	Divergent map[string][]int64 `json:"divergent,omitempty"` // rows on a node that the final leader lacks
	// DivergentOrigin names, per node, the servers that wrote its
	// divergent rows (the rows' own origin column): which primary the
	// second history came from.
	DivergentOrigin map[string][]string `json:"divergentOrigin,omitempty"`
	Behind          map[string][]int64  `json:"behind,omitempty"`      // final leader's rows a node lacks
	Interleaved     []string            `json:"interleaved,omitempty"` // a replaced primary acknowledged again without re-election
}

// OK reports a single history.
func (h HistoryReport) OK() bool { return len(h.Problems()) == 0 }

// Problems says what is wrong, one line each.
func (h HistoryReport) Problems() []string {
	var out []string
	if len(h.Missing) > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged writes are not on the final leader (ids %s)", len(h.Missing), IDs(h.Missing)))
	}
	out = append(out, h.Foreign...)
	for _, n := range sortedKeys(h.Divergent) {
		from := ""
		if o := h.DivergentOrigin[n]; len(o) > 0 {
			from = ", written by " + strings.Join(o, " and ")
		}
		out = append(out, fmt.Sprintf("%s holds %d rows the final leader never had (ids %s%s): a second history", n, len(h.Divergent[n]), IDs(h.Divergent[n]), from))
	}
	for _, n := range sortedKeys(h.Behind) {
		out = append(out, fmt.Sprintf("%s lacks %d rows of the final leader (ids %s): it did not rejoin the history", n, len(h.Behind[n]), IDs(h.Behind[n])))
	}
	return append(out, h.Interleaved...)
}

// CheckHistory applies the four rules above.
func CheckHistory(in HistoryInput) HistoryReport {
	var h HistoryReport
	leaderRows := map[int64]string{}
	for _, r := range in.Rows[in.FinalLeader] {
		leaderRows[r.ID] = r.Origin
	}
	acked := append([]Ack(nil), in.Acked...)
	sort.SliceStable(acked, func(i, j int) bool { return acked[i].End.Before(acked[j].End) })
	for _, a := range acked {
		origin, ok := leaderRows[a.ID]
		switch {
		case !ok:
			h.Missing = append(h.Missing, a.ID)
		case origin != a.Node:
			h.Foreign = append(h.Foreign, fmt.Sprintf("id %d was acknowledged by %s but the surviving row was written by %s: two histories", a.ID, a.Node, origin))
		}
	}
	sort.Slice(h.Missing, func(i, j int) bool { return h.Missing[i] < h.Missing[j] })

	for node, rows := range in.Rows {
		if node == in.FinalLeader {
			continue
		}
		have := map[int64]bool{}
		for _, r := range rows {
			have[r.ID] = true
			if _, ok := leaderRows[r.ID]; !ok {
				if h.Divergent == nil {
					h.Divergent = map[string][]int64{}
				}
				h.Divergent[node] = append(h.Divergent[node], r.ID)
				if r.Origin != "" && !slices.Contains(h.DivergentOrigin[node], r.Origin) {
					if h.DivergentOrigin == nil {
						h.DivergentOrigin = map[string][]string{}
					}
					h.DivergentOrigin[node] = append(h.DivergentOrigin[node], r.Origin)
				}
			}
		}
		for id := range leaderRows {
			if !have[id] {
				if h.Behind == nil {
					h.Behind = map[string][]int64{}
				}
				h.Behind[node] = append(h.Behind[node], id)
			}
		}
	}
	for _, m := range []map[string][]int64{h.Divergent, h.Behind} {
		for _, v := range m {
			sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		}
	}

	// Rule 4: walk the acknowledgements in order.
	current := ""
	replaced := map[string]time.Time{} // node → when its successor first acknowledged
	for _, a := range acked {
		if a.Node == current {
			continue
		}
		if since, ok := replaced[a.Node]; ok && !soleprimary(in.Rounds, a.Node, since, a.Start) {
			h.Interleaved = append(h.Interleaved, fmt.Sprintf(
				"id %d was acknowledged by %s after %s had taken over (at %s), and %s was never seen as the only primary in between: two primaries acknowledged writes",
				a.ID, a.Node, current, since.UTC().Format("15:04:05.000"), a.Node))
		}
		if current != "" {
			replaced[current] = a.End
		}
		delete(replaced, a.Node)
		current = a.Node
	}
	return h
}

// soleprimary reports whether some poll in (from, to) saw node as the only
// primary.
func soleprimary(rounds []history.Round, node string, from, to time.Time) bool {
	for _, r := range rounds {
		if r.At.After(from) && r.At.Before(to) && len(r.Primaries) == 1 && r.Primaries[0] == node {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string][]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
