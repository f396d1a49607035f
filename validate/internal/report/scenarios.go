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
		fig := c.FigureText
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

// clientsTable puts what the two writers saw side by side, for every
// destructive check that had a client of the pooler beside the direct one:
// failed writes, the write gap, the RTO and the longest single write (the
// longest a client waited), and how long the poolers were paused.
func clientsTable(b *strings.Builder, r *Report) {
	var rows []Check
	for _, c := range r.Checks {
		if _, ok := c.Figure("pooled_writes_total"); ok {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## What clients saw: direct (5000) and through the pooler (6432)\n\n")
	b.WriteString("| check | writes failed | write gap | RTO | longest write | pooled writes failed | pooled write gap | pooled RTO | pooled longest write | poolers paused |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range rows {
		fig := c.FigureText
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(c.Name, ScenarioPrefix),
			fig("writes_failed"), fig("write_gap_s"), fig("rto_s"), fig("longest_write_s"),
			fig("pooled_writes_failed"), fig("pooled_write_gap_s"), fig("pooled_rto_s"), fig("pooled_longest_write_s"), fig("pooler_stall_s"))
	}
	b.WriteString("\nEach client writes once every interval over one connection, from the fault (or the pause) on. A planned switchover is held behind the poolers: their clients wait, up to the pause shown, instead of failing.\n\n")
}
