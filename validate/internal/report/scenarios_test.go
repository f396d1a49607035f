package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScenarioTable(t *testing.T) {
	r := &Report{Checks: []Check{
		{Name: "etcd", Verdict: Pass},
		{Name: "scenario:leader-kill", Verdict: Pass, Figures: []Figure{
			{Key: "rto_s", Value: 9.5, Unit: "s"}, {Key: "write_gap_s", Value: 9.4, Unit: "s"},
			{Key: "reads_failed", Value: 1}, {Key: "reads_total", Value: 150}, {Key: "lost_writes", Value: 0},
			{Key: "split_brain_instants", Value: 0}}},
		{Name: "scenario:haproxy-lost", Verdict: Fail},
	}}
	md := r.Markdown()
	require.Contains(t, md, "## Resilience scenarios")
	require.Contains(t, md, "| leader-kill | **PASS** | 9.5 s | 9.4 s | – | 1 / 150 | – | 0 | 0 | – | – |")
	require.Contains(t, md, "| haproxy-lost | **FAIL** |")
	require.NotContains(t, md[strings.Index(md, "## Resilience scenarios"):strings.Index(md, "## Cluster before")], "| etcd |")

	plain := (&Report{Checks: []Check{{Name: "etcd", Verdict: Pass}}}).Markdown()
	require.NotContains(t, plain, "Resilience scenarios", "no table without scenarios")
}

func TestClientsTable(t *testing.T) {
	r := &Report{Checks: []Check{
		{Name: "etcd", Verdict: Pass},
		{Name: "switchover", Verdict: Pass, Figures: []Figure{
			{Key: "writes_failed", Value: 2}, {Key: "write_gap_s", Value: 2.1, Unit: "s"}, {Key: "rto_s", Value: 2.4, Unit: "s"},
			{Key: "longest_write_s", Value: 0.02, Unit: "s"}, {Key: "pooled_writes_total", Value: 300},
			{Key: "pooled_writes_failed", Value: 0}, {Key: "pooled_write_gap_s", Value: 2.3, Unit: "s"},
			{Key: "pooled_longest_write_s", Value: 2.2, Unit: "s"}, {Key: "pooler_stall_s", Value: 2.27, Unit: "s"}}},
		{Name: "failover", Verdict: Pass, Figures: []Figure{{Key: "writes_failed", Value: 159}}},
	}}
	md := r.Markdown()
	require.Contains(t, md, "## What clients saw: direct (5000) and through the pooler (6432)")
	require.Contains(t, md, "| switchover | 2 | 2.1 s | 2.4 s | 0.02 s | 0 | 2.3 s | – | 2.2 s | 2.27 s |")
	require.NotContains(t, md, "| failover | 159", "a check without a pooled client has no row")
	require.NotContains(t, (&Report{Checks: []Check{{Name: "etcd", Verdict: Pass}}}).Markdown(), "What clients saw")
}
