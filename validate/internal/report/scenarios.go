package report

import (
	"fmt"
	"strings"
)

// ScenarioPrefix marks the checks that are resilience scenarios.
const ScenarioPrefix = "scenario:"

// scenarioTable writes one row per resilience scenario with the figures
// every scenario is judged by, so the matrix reads at a glance.
func scenarioTable(b *strings.Builder, r *Report) {
	var rows []Check
	for _, c := range r.Checks {
		if strings.HasPrefix(c.Name, ScenarioPrefix) {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Resilience scenarios\n\n")
	b.WriteString("| scenario | verdict | RTO | write gap | writes failed | reads failed | acked writes | lost | split-brain polls | history violations | back to 1+2 after |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range rows {
		fig := func(key string) string {
			if f, ok := c.Figure(key); ok {
				return f.String()
			}
			return "–"
		}
		reads := fig("reads_failed")
		if t := fig("reads_total"); t != "–" {
			reads += " / " + t
		}
		fmt.Fprintf(b, "| %s | **%s** | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			strings.TrimPrefix(c.Name, ScenarioPrefix), c.Verdict, fig("rto_s"), fig("write_gap_s"), fig("writes_failed"),
			reads, fig("acked_writes"), fig("lost_writes"), fig("split_brain_instants"), fig("history_problems"), fig("recovered_s"))
	}
	b.WriteString("\nRTO is shown only where writes were down for a second or more. Reads failed is failed / attempted through the read endpoint from the fault on.\n\n")
}
