package bench

import (
	"encoding/json"
	"math"
	"time"
)

// trialJSON is Trial on disk. JSON has no NaN, so a figure a trial could
// not measure is written as null and read back as NaN.
type trialJSON struct {
	Profile         string    `json:"profile"`
	Kind            string    `json:"kind"`
	Run             int       `json:"run"`
	At              time.Time `json:"at"`
	Load1           float64   `json:"load1"`
	Problems        []string  `json:"problems,omitempty"`
	Outage          *float64  `json:"outage_s"`
	WriteGap        *float64  `json:"write_gap_s"`
	ReadsFailed     *float64  `json:"reads_failed"`
	ReadsTotal      *float64  `json:"reads_total"`
	Rejoin          *float64  `json:"rejoin_s"`
	Acked           *float64  `json:"acked_writes"`
	Lost            *float64  `json:"lost_writes"`
	LostOnLeader    *float64  `json:"lost_on_leader"`
	SplitBrain      int       `json:"split_brain_instants"`
	SplitBrainPolls int       `json:"split_brain_polls"`

	WritesFailed       *float64 `json:"writes_failed"`
	LongestWrite       *float64 `json:"longest_write_s"`
	PooledWrites       *float64 `json:"pooled_writes_total"`
	PooledWritesFailed *float64 `json:"pooled_writes_failed"`
	PooledWriteGap     *float64 `json:"pooled_write_gap_s"`
	PooledOutage       *float64 `json:"pooled_outage_s"`
	PooledLongestWrite *float64 `json:"pooled_longest_write_s"`
	PoolerStall        *float64 `json:"pooler_stall_s"`
}

func toPtr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func fromPtr(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// MarshalJSON writes unmeasured (NaN) figures as null.
func (t Trial) MarshalJSON() ([]byte, error) {
	return json.Marshal(trialJSON{
		Profile: t.Profile, Kind: t.Kind, Run: t.Run, At: t.At, Load1: t.Load1, Problems: t.Problems,
		Outage: toPtr(t.Outage), WriteGap: toPtr(t.WriteGap), ReadsFailed: toPtr(t.ReadsFailed),
		ReadsTotal: toPtr(t.ReadsTotal), Rejoin: toPtr(t.Rejoin), Acked: toPtr(t.Acked), Lost: toPtr(t.Lost),
		LostOnLeader: toPtr(t.LostOnLeader), SplitBrain: t.SplitBrain, SplitBrainPolls: t.SplitBrainPolls,
		WritesFailed: toPtr(t.WritesFailed), LongestWrite: toPtr(t.LongestWrite), PooledWrites: toPtr(t.PooledWrites),
		PooledWritesFailed: toPtr(t.PooledWritesFailed), PooledWriteGap: toPtr(t.PooledWriteGap),
		PooledOutage: toPtr(t.PooledOutage), PooledLongestWrite: toPtr(t.PooledLongestWrite), PoolerStall: toPtr(t.PoolerStall),
	})
}

// UnmarshalJSON reads null or a missing figure as NaN (not measured).
func (t *Trial) UnmarshalJSON(b []byte) error {
	var j trialJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = Trial{
		Profile: j.Profile, Kind: j.Kind, Run: j.Run, At: j.At, Load1: j.Load1, Problems: j.Problems,
		Outage: fromPtr(j.Outage), WriteGap: fromPtr(j.WriteGap), ReadsFailed: fromPtr(j.ReadsFailed),
		ReadsTotal: fromPtr(j.ReadsTotal), Rejoin: fromPtr(j.Rejoin), Acked: fromPtr(j.Acked), Lost: fromPtr(j.Lost),
		LostOnLeader: fromPtr(j.LostOnLeader), SplitBrain: j.SplitBrain, SplitBrainPolls: j.SplitBrainPolls,
		WritesFailed: fromPtr(j.WritesFailed), LongestWrite: fromPtr(j.LongestWrite), PooledWrites: fromPtr(j.PooledWrites),
		PooledWritesFailed: fromPtr(j.PooledWritesFailed), PooledWriteGap: fromPtr(j.PooledWriteGap),
		PooledOutage: fromPtr(j.PooledOutage), PooledLongestWrite: fromPtr(j.PooledLongestWrite), PoolerStall: fromPtr(j.PoolerStall),
	}
	return nil
}
