package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/judge"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// savedReport writes a report whose one destructive check was judged live,
// as validate writes it, and returns the directory.
func savedReport(t *testing.T, tamper func(*report.Timeline)) string {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tl := &report.Timeline{Check: "switchover", Start: t0, End: ms(4000), FaultAt: ms(1000), Planned: true,
		SynchronousMode: true, FinalLeader: "pg-2", Servers: map[string]string{"10.0.0.1": "pg-1", "10.0.0.2": "pg-2"},
		Events: []report.Event{{At: ms(1000), Kind: "switchover", Node: "pg-1"}, {At: ms(2000), Kind: "promotion", Node: "pg-2"}},
		Rows:   map[string][]history.Row{}}
	var rows []history.Row
	for i := 0; i < 40; i++ {
		server, origin := "10.0.0.1", "pg-1"
		if i >= 20 {
			server, origin = "10.0.0.2", "pg-2"
		}
		ok := i < 10 || i >= 20
		op := history.Op{Start: ms(i * 100), End: ms(i*100 + 5), OK: ok}
		if ok {
			op.ID, op.Server = int64(i+1), server
			rows = append(rows, history.Row{ID: op.ID, Origin: origin})
		}
		tl.Writes = append(tl.Writes, op)
		tl.Reads = append(tl.Reads, history.Op{Start: ms(i * 100), End: ms(i*100 + 5), OK: true, Server: "10.0.0.3"})
		p := []string{"pg-1"}
		if i >= 15 {
			p = []string{"pg-2"}
		}
		tl.Rounds = append(tl.Rounds, history.Round{At: ms(i * 100), Primaries: p, Writable: p})
	}
	tl.Rows["pg-1"], tl.Rows["pg-2"], tl.Rows["pg-3"] = rows, rows, rows
	c := report.Check{Name: "switchover", Timeline: tl}
	scenario.Apply(&c, judge.Judge(*tl))
	c.Verdict = report.Pass
	require.Empty(t, c.Problems)
	if tamper != nil {
		tamper(tl)
	}
	r := report.Report{Started: t0, Checks: []report.Check{{Name: "etcd", Verdict: report.Pass}, c}}
	dir := t.TempDir()
	require.NoError(t, r.WriteDir(dir))
	return dir
}

func judgeRun(args ...string) (string, int) {
	var out bytes.Buffer
	code := runJudge(context.Background(), args, &out, &out)
	return out.String(), code
}

func TestJudgeAgreesWithTheRecord(t *testing.T) {
	out, code := judgeRun(savedReport(t, nil))
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "switchover (recorded PASS)")
	require.Contains(t, out, judge.NoAckedWriteLost)
	require.Contains(t, out, "RESULT: 1 checks judged again from their evidence: the same verdicts")
	// The file itself works as well as its directory.
	_, code = judgeRun(filepath.Join(savedReport(t, nil), "report.json"))
	require.Equal(t, 0, code)
}

// A record that no longer supports its verdict is caught: here a replica's
// rows were edited away after the run.
func TestJudgeFindsAnEditedRecord(t *testing.T) {
	dir := savedReport(t, func(tl *report.Timeline) { tl.Rows["pg-3"] = tl.Rows["pg-3"][:5] })
	out, code := judgeRun(dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "VIOLATED: pg-3 lacks 25 rows of the final leader")
	require.Contains(t, out, "DIFFERS: properties")
	require.Contains(t, out, "RESULT: 1 of 1 checks judged differently")
}

func TestJudgeBadInput(t *testing.T) {
	out, code := judgeRun()
	require.Equal(t, 2, code, out)
	_, code = judgeRun(filepath.Join(t.TempDir(), "nothing.json"))
	require.Equal(t, 2, code)
	f := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, os.WriteFile(f, []byte("not json"), 0o644))
	out, code = judgeRun(f)
	require.Equal(t, 2, code)
	require.Contains(t, out, "is not a validate report.json")
	b, _ := json.Marshal(report.Report{Checks: []report.Check{{Name: "etcd"}}})
	require.NoError(t, os.WriteFile(f, b, 0o644))
	out, code = judgeRun(f)
	require.Equal(t, 2, code)
	require.Contains(t, out, "holds no check with a timeline")
}
