package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/history"
)

// Markdown renders report.md: the evidence of the run.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	p("# pgha validate: %s\n\n", verdict)
	p("| | |\n|---|---|\n")
	p("| cluster | `%s` (%s) |\n", md(r.ClusterName), md(r.Target))
	p("| profile | `%s`, synchronous mode %v |\n", md(r.Profile), r.SynchronousMode)
	p("| access | %s |\n", md(r.Access))
	p("| endpoints | write `%s`, read `%s` |\n", md(r.WriteEndpoint), md(r.ReadEndpoint))
	p("| started | %s |\n", r.Started.UTC().Format(time.RFC3339))
	p("| duration | %.1f s |\n\n", r.Finished.Sub(r.Started).Seconds())

	p("## Checks\n\n| check | verdict | time | summary |\n|---|---|---|---|\n")
	for _, c := range r.Checks {
		p("| %s | **%s** | %.1f s | %s |\n", c.Name, c.Verdict, c.Seconds, md(c.Summary))
	}
	p("\n")
	scenarioTable(&b, r)
	clientsTable(&b, r)

	p("## Cluster before\n\n")
	snapshot(&b, r.Before)
	p("## Cluster after\n\n")
	snapshot(&b, r.After)

	for _, c := range r.Checks {
		p("## %s: %s\n\n", c.Name, c.Verdict)
		if c.Summary != "" {
			p("%s\n\n", md(c.Summary))
		}
		if len(c.Problems) > 0 {
			p("Problems:\n\n")
			for _, pr := range c.Problems {
				p("- %s\n", md(pr))
			}
			p("\n")
		}
		if len(c.Figures) > 0 {
			p("| figure | value |\n|---|---|\n")
			for _, f := range c.Figures {
				p("| %s | %s |\n", md(f.Label), md(f.String()))
			}
			p("\n")
		}
		for _, n := range c.Notes {
			p("- %s\n", md(n))
		}
		if len(c.Notes) > 0 {
			p("\n")
		}
		if len(c.Properties) > 0 {
			p("| property (judged from the timeline) | verdict | detail |\n|---|---|---|\n")
			for _, pr := range c.Properties {
				v := "holds"
				switch {
				case pr.Holds:
				case pr.Tolerated:
					v = "broken, tolerated"
				default:
					v = "**violated**"
				}
				p("| %s | %s | %s |\n", md(pr.Name), v, md(strings.Join(pr.Detail, "; ")))
			}
			p("\n")
		}
		if tl := c.Timeline; tl != nil {
			timeline(&b, tl)
		}
		for _, s := range c.Series {
			seriesSummary(&b, s)
		}
		metricsSection(&b, c)
		alertsSection(&b, c)
	}

	if len(r.Timelines()) > 0 {
		p("## Timeline chart\n\n![write and read success over time](timeline.svg)\n\n")
		p("Every verdict on data and primaries above rests on the timelines in report.json alone; `go run ./validate judge <this directory>` judges them again without a cluster.\n\n")
	} else if len(r.AllSeries()) > 0 {
		p("## Chart\n\n![sampled over time](timeline.svg)\n\n")
	}
	p("## Reproduce\n\n```sh\n")
	for _, c := range r.Reproduce {
		p("%s\n", c)
	}
	p("```\n")
	return b.String()
}

func snapshot(b *strings.Builder, s *Snapshot) {
	if s == nil {
		b.WriteString("(not taken)\n\n")
		return
	}
	if s.Error != "" {
		fmt.Fprintf(b, "Could not read the cluster: %s\n\n", md(s.Error))
	}
	if len(s.Members) == 0 {
		return
	}
	fmt.Fprintf(b, "At %s.\n\n", s.At.UTC().Format("15:04:05.000"))
	b.WriteString("| member | host | role | state | timeline | lag (bytes) | replication on leader |\n|---|---|---|---|---|---|---|\n")
	for _, m := range s.Members {
		lag := fmt.Sprint(m.LagBytes)
		if m.LagBytes < 0 {
			lag = "unknown"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %d | %s | %s |\n", md(m.Name), md(m.Host), md(m.Role), md(m.State), m.Timeline, lag, md(m.Streaming))
	}
	b.WriteString("\n")
}

func timeline(b *strings.Builder, tl *Timeline) {
	rel := func(t time.Time) string { return fmt.Sprintf("+%.3f s", t.Sub(tl.Start).Seconds()) }
	fmt.Fprintf(b, "### Timeline\n\nStarted %s (times below are relative to it).\n\n", tl.Start.UTC().Format("15:04:05.000"))
	b.WriteString("| time | event | detail |\n|---|---|---|\n")
	evs := append([]Event(nil), tl.Events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	for _, e := range evs {
		fmt.Fprintf(b, "| %s | %s | %s |\n", rel(e.At), md(e.Kind), md(e.Detail))
	}
	b.WriteString("\n")
	w := history.Reads(tl.Writes, time.Time{}, time.Time{})
	rd := history.Reads(tl.Reads, time.Time{}, time.Time{})
	fmt.Fprintf(b, "Writes: %d attempted, %d failed. Reads: %d attempted, %d failed (availability %.1f%%).\n\n",
		w.Total, w.Failed, rd.Total, rd.Failed, 100*rd.Availability)
	servers := func(title string, m map[string]int) {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
		}
		fmt.Fprintf(b, "%s by server: %s.\n\n", title, strings.Join(parts, ", "))
	}
	servers("Acknowledged writes", w.Servers)
	servers("Successful reads", rd.Servers)
	// Error runs, compressed: the first occurrence of each message.
	errs := map[string]int{}
	var order []string
	for _, ops := range [][]history.Op{tl.Writes, tl.Reads} {
		for _, o := range ops {
			if o.Err == "" {
				continue
			}
			if errs[o.Err] == 0 {
				order = append(order, o.Err)
			}
			errs[o.Err]++
		}
	}
	if len(order) > 0 {
		b.WriteString("Client errors seen (count × message):\n\n")
		for i, e := range order {
			if i == 12 {
				fmt.Fprintf(b, "- … %d more kinds\n", len(order)-12)
				break
			}
			fmt.Fprintf(b, "- %d × `%s`\n", errs[e], strings.ReplaceAll(e, "`", "'"))
		}
		b.WriteString("\n")
	}
}

// md keeps a value from breaking a table row.
func md(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// seriesSummary says in one paragraph what a series' chart shows.
func seriesSummary(b *strings.Builder, s *Series) {
	bounds := 0
	for _, p := range s.Points {
		if p.Bound {
			bounds++
		}
	}
	fmt.Fprintf(b, "### %s\n\n%d samples from %s over %.1f s, drawn in timeline.svg", md(s.Title), len(s.Points),
		s.Start.UTC().Format("15:04:05.000"), s.End.Sub(s.Start).Seconds())
	for _, r := range s.Refs {
		fmt.Fprintf(b, "; reference line: %s", md(r.Label))
	}
	b.WriteString(".")
	if bounds > 0 && s.BoundNote != "" {
		fmt.Fprintf(b, " %d of them are lower bounds: %s.", bounds, md(s.BoundNote))
	}
	b.WriteString("\n\n")
}
