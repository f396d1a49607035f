package judge

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/history"
)

// A clean failover: pg-1 acknowledges 1..3, pg-2 takes over for 4..5; every
// node holds the same rows, each written by its acknowledger.
func cleanInput() HistoryInput {
	rows := []history.Row{{ID: 1, Origin: "pg-1"}, {ID: 2, Origin: "pg-1"}, {ID: 3, Origin: "pg-1"}, {ID: 4, Origin: "pg-2"}, {ID: 5, Origin: "pg-2"}}
	return HistoryInput{
		Acked: []Ack{
			{ID: 1, Node: "pg-1", Start: at(0), End: at(5)},
			{ID: 2, Node: "pg-1", Start: at(50), End: at(55)},
			{ID: 3, Node: "pg-1", Start: at(100), End: at(105)},
			{ID: 4, Node: "pg-2", Start: at(9000), End: at(9005)},
			{ID: 5, Node: "pg-2", Start: at(9050), End: at(9055)},
		},
		FinalLeader: "pg-2",
		Rows:        map[string][]history.Row{"pg-1": rows, "pg-2": rows, "pg-3": rows},
		Rounds:      []history.Round{{At: at(0), Primaries: []string{"pg-1"}}, {At: at(8900), Primaries: []string{"pg-2"}}},
	}
}

func TestCheckHistoryCleanFailover(t *testing.T) {
	h := CheckHistory(cleanInput())
	require.True(t, h.OK(), h.Problems())
}

func TestCheckHistoryCatchesLostAck(t *testing.T) {
	in := cleanInput()
	// The old leader's last ack never reached the new leader (async loss, or a
	// branch thrown away by pg_rewind).
	in.Rows["pg-2"] = []history.Row{{ID: 1, Origin: "pg-1"}, {ID: 2, Origin: "pg-1"}, {ID: 4, Origin: "pg-2"}, {ID: 5, Origin: "pg-2"}}
	in.Rows["pg-1"], in.Rows["pg-3"] = in.Rows["pg-2"], in.Rows["pg-2"]
	h := CheckHistory(in)
	require.Equal(t, []int64{3}, h.Missing)
	require.Contains(t, h.Problems()[0], "1 acknowledged writes are not on the final leader (ids 3)")
}

func TestCheckHistoryCatchesForeignRow(t *testing.T) {
	in := cleanInput()
	rows := []history.Row{{ID: 1, Origin: "pg-1"}, {ID: 2, Origin: "pg-1"}, {ID: 3, Origin: "pg-2"}, {ID: 4, Origin: "pg-2"}, {ID: 5, Origin: "pg-2"}}
	in.Rows = map[string][]history.Row{"pg-1": rows, "pg-2": rows, "pg-3": rows}
	h := CheckHistory(in)
	require.Len(t, h.Foreign, 1)
	require.Contains(t, h.Foreign[0], "id 3 was acknowledged by pg-1 but the surviving row was written by pg-2")
}

func TestCheckHistoryCatchesDivergentAndBehindNodes(t *testing.T) {
	in := cleanInput()
	// pg-1 kept a row of its own branch (never rewound); pg-3 stopped early.
	in.Rows["pg-1"] = append(append([]history.Row(nil), in.Rows["pg-1"]...), history.Row{ID: 6, Origin: "pg-1"})
	in.Rows["pg-3"] = in.Rows["pg-3"][:3]
	h := CheckHistory(in)
	require.Equal(t, map[string][]int64{"pg-1": {6}}, h.Divergent)
	require.Equal(t, map[string][]string{"pg-1": {"pg-1"}}, h.DivergentOrigin, "the second history's primary is named")
	require.Equal(t, map[string][]int64{"pg-3": {4, 5}}, h.Behind)
	p := h.Problems()
	require.Len(t, p, 2)
	require.Contains(t, p[0], "pg-1 holds 1 rows the final leader never had (ids 6, written by pg-1): a second history")
	require.Contains(t, p[1], "pg-3 lacks 2 rows of the final leader (ids 4, 5)")
}

func TestCheckHistoryCatchesInterleavedPrimaries(t *testing.T) {
	in := cleanInput()
	// pg-1 acknowledges id 6 after pg-2 took over, with no re-election of
	// pg-1 in between: both were taking writes. Even if the row survived
	// (here it does, everywhere), the acknowledgements interleave.
	in.Acked = append(in.Acked, Ack{ID: 6, Node: "pg-1", Start: at(9100), End: at(9105)})
	for n, rows := range in.Rows {
		in.Rows[n] = append(append([]history.Row(nil), rows...), history.Row{ID: 6, Origin: "pg-1"})
	}
	h := CheckHistory(in)
	require.Len(t, h.Interleaved, 1, h.Problems())
	require.Contains(t, h.Interleaved[0], "id 6 was acknowledged by pg-1 after pg-2 had taken over")
}

func TestCheckHistoryAllowsReelection(t *testing.T) {
	in := cleanInput()
	// Two failovers: pg-1 → pg-2 → pg-1, with pg-1 seen as the only primary
	// again before it acknowledges.
	in.Acked = append(in.Acked, Ack{ID: 6, Node: "pg-1", Start: at(20000), End: at(20005)})
	in.Rounds = append(in.Rounds, history.Round{At: at(19900), Primaries: []string{"pg-1"}})
	in.FinalLeader = "pg-1"
	for n, rows := range in.Rows {
		in.Rows[n] = append(append([]history.Row(nil), rows...), history.Row{ID: 6, Origin: "pg-1"})
	}
	h := CheckHistory(in)
	require.True(t, h.OK(), h.Problems())

	// Without that poll, the same acknowledgements are a violation.
	in.Rounds = in.Rounds[:2]
	require.False(t, CheckHistory(in).OK())
}
