package main

import (
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/validate/internal/report"
)

// snapshot turns a formation into a report table.
func snapshot(f probe.Formation) *report.Snapshot {
	s := &report.Snapshot{At: f.At}
	if len(f.Cluster.Members) == 0 && len(f.Problems) > 0 {
		s.Error = f.Problem()
	}
	for _, m := range f.Cluster.Members {
		row := report.Member{Name: m.Name, Host: m.Host, Role: m.Role, State: m.State, Timeline: m.Timeline, LagBytes: m.LagBytes()}
		if tl, ok := f.Timelines[m.Name]; ok {
			row.Timeline = tl
		}
		if r, ok := f.Repl[m.Name]; ok {
			row.Streaming = r.State + "/" + r.SyncState
		}
		s.Members = append(s.Members, row)
	}
	return s
}
