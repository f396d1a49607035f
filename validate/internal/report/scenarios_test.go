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
