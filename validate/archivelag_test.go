package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seg16 = 16 << 20

func TestSegmentEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		end  int64
		ok   bool
	}{
		{"000000010000000000000004", 5 * seg16, true},
		{"0000000200000001000000FF", (256 + 255 + 1) * seg16, true}, // 256 segments of 16 MB per 4 GB
		{"000000010000000000000003.00000028.backup", 3 * seg16, true},
		{"000000020000000000000007.partial", 7 * seg16, true},
		{"00000002.history", 0, false},
		{"", 0, false},
		{"zz0000010000000000000004", 0, false},
	} {
		end, ok := segmentEnd(c.name, seg16)
		assert.Equal(t, c.ok, ok, c.name)
		assert.Equal(t, c.end, end, c.name)
	}
	// 1 GB segments: 4 per 4 GB.
	end, ok := segmentEnd("000000010000000100000002", 1<<30)
	require.True(t, ok)
	assert.Equal(t, int64(4+2+1)<<30, end)
}

func walName(segno int64) string {
	return fmt.Sprintf("00000001%08X%08X", segno/256, segno%256)
}

// samples builds polls every 250 ms from t0: the WAL position advances by
// rate bytes a poll from start, and the archive holds the segments whose
// end the position passed before the poll `delay` polls earlier. A segment
// is archived only once full (no archive_timeout), so the lag grows until
// the position crosses into the next segment and falls once that is pushed.
func samples(t0 time.Time, n int, start, rate int64, delay int) []archiveSample {
	var out []archiveSample
	for i := 0; i < n; i++ {
		lsn := start + int64(i)*rate
		s := archiveSample{At: t0.Add(time.Duration(i) * 250 * time.Millisecond), LSN: lsn}
		if k := i - delay; k >= 0 {
			done := (start+int64(k)*rate)/seg16 - 1 // the newest complete segment then
			s.Archived = walName(done)
		} else {
			s.Archived = walName(start/seg16 - 1)
		}
		out = append(out, s)
	}
	return out
}

func TestComputeArchiveLagSawtooth(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	// A segment fills in 16 polls (4 s), and is archived 2 polls (0.5 s)
	// after it is complete.
	s := samples(t0, 80, 10*seg16, seg16/16, 2)
	r := computeArchiveLag(s, seg16)
	require.Len(t, r.Points, 80)
	assert.Zero(t, r.Bounds, "the first poll sits exactly at a segment start, which is archived")
	assert.Equal(t, time.Duration(0), r.Points[0].Lag)
	// Right before a switch-over into segment 12 is archived (poll 33),
	// the newest archived data is the end of segment 10, reached at poll
	// 16: 17 polls old.
	assert.Equal(t, 17*250*time.Millisecond, r.Points[33].Lag)
	// Once segment 11 is archived (poll 34: its end passed at 32), the lag
	// drops to 2 polls.
	assert.Equal(t, 2*250*time.Millisecond, r.Points[34].Lag)
	assert.Equal(t, 17*250*time.Millisecond, r.Max, "fill time plus push")
	assert.Greater(t, r.P50, 2*250*time.Millisecond)
	assert.Less(t, r.P50, r.P99)
	assert.LessOrEqual(t, r.P99, r.Max)
	assert.Zero(t, r.Failures)
	assert.False(t, r.failing())
	assert.Contains(t, r.state(), "kept up")
}

func TestComputeArchiveLagBoundsAndFailures(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	// The repository is gone: nothing is archived after segment 9, the
	// window starts in segment 10 and failures mount.
	var s []archiveSample
	for i := 0; i < 41; i++ {
		s = append(s, archiveSample{
			At: t0.Add(time.Duration(i) * 250 * time.Millisecond), LSN: 10*seg16 + 100 + int64(i)*seg16/8,
			Archived: walName(9), Failed: 3 + int64(i/10), LastFailed: walName(10), FailedAfterArchived: i >= 10,
		})
	}
	r := computeArchiveLag(s, seg16)
	assert.Equal(t, 41, r.Bounds, "nothing of the window ever reached the archive")
	assert.Equal(t, 10*time.Second, r.Max, "a lower bound: the window's length")
	assert.True(t, r.Points[40].Bound)
	assert.Equal(t, int64(4), r.Failures)
	assert.True(t, r.failing())
	assert.Equal(t, int64(100+40*seg16/8), r.MaxBehind)
	st := r.state()
	assert.Contains(t, st, "FAILING: the last failure ("+walName(10)+") is newer than the last success ("+walName(9)+"), 4 failures in the window")
	assert.Contains(t, st, "10.0 s old at least")
	assert.Contains(t, st, "80.0 MiB of WAL")

	// Failures, then a success: reported, not failing.
	s[40].FailedAfterArchived = false
	r = computeArchiveLag(s, seg16)
	assert.False(t, r.failing())
	assert.Contains(t, r.state(), "failed 4 times in the window (last "+walName(10)+") and recovered")

	// A failure before the window and none since the last success: not
	// failing. A failure newer than the last success: failing, even with
	// failed_count unchanged in the window.
	s2 := []archiveSample{{At: t0, LSN: 10 * seg16, Archived: walName(9), Failed: 7}, {At: t0.Add(time.Second), LSN: 10 * seg16, Archived: walName(9), Failed: 7}}
	assert.False(t, computeArchiveLag(s2, seg16).failing())
	s2[1].FailedAfterArchived = true
	r2 := computeArchiveLag(s2, seg16)
	assert.True(t, r2.failing())
	assert.Contains(t, r2.state(), "0 failures in the window")
}

func TestComputeArchiveLagArchiveTimeout(t *testing.T) {
	// A light writer: a few hundred bytes a poll, and archive_timeout
	// closes the segment every 8 s (32 polls), which is pushed 1 s later.
	// The lag rises to about 9 s and drops to 1 s, every 8 s.
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var s []archiveSample
	lsn := int64(20 * seg16)
	archived := walName(19)
	for i := 0; i <= 160; i++ {
		if i > 0 && i%32 == 0 {
			lsn = (lsn/seg16 + 1) * seg16 // the switch
		}
		if i > 4 && (i-4)%32 == 0 {
			archived = walName(lsn/seg16 - 1)
		}
		s = append(s, archiveSample{At: t0.Add(time.Duration(i) * 250 * time.Millisecond), LSN: lsn, Archived: archived})
		lsn += 300
	}
	r := computeArchiveLag(s, seg16)
	assert.Zero(t, r.Bounds)
	// Just before the first push (poll 35) the archive ends where the
	// first poll stood: everything since is in the segment being pushed,
	// so the newest archived data is 35 polls old. Once it is pushed
	// (poll 36) it ends at the switch, seen by poll 32: 4 polls old.
	assert.Equal(t, 35*250*time.Millisecond, r.Points[35].Lag)
	assert.Equal(t, 4*250*time.Millisecond, r.Points[36].Lag)
	assert.Equal(t, 35*250*time.Millisecond, r.Max, "archive_timeout (32 polls) plus the push (4 polls), less the poll between the last write and the switch")
	assert.InDelta(t, (5 * time.Second).Seconds(), r.P50.Seconds(), 0.3, "the middle of the sawtooth")
}

func TestNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	assert.Equal(t, 50*time.Second, nearestRank(ds, 0.5))
	assert.Equal(t, 99*time.Second, nearestRank(ds, 0.99))
	assert.Equal(t, 100*time.Second, nearestRank(ds, 1))
	assert.Equal(t, time.Duration(0), nearestRank(nil, 0.5))
	assert.Equal(t, 3*time.Second, nearestRank([]time.Duration{3 * time.Second}, 0.99))
}

func TestArchiveLagSeries(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	r := computeArchiveLag(samples(t0, 20, 10*seg16, seg16/16, 2), seg16)
	s := r.series("backup", t0, t0.Add(5*time.Second), time.Minute)
	require.Len(t, s.Points, 20)
	require.Len(t, s.Refs, 1)
	assert.Equal(t, 60.0, s.Refs[0].Value)
	assert.Equal(t, "archive_timeout 60 s", s.Refs[0].Label)
	assert.Equal(t, r.Points[19].Lag.Seconds(), s.Points[19].Value)
}
