package report

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Alerts is what the cluster's Prometheus alerting rules did during a
// destructive check: each alert that went pending, whether it fired, and
// when it cleared. Evidence, never a verdict.
type Alerts struct {
	Prometheus string    `json:"prometheus,omitempty"`
	Start      time.Time `json:"start"` // the window asked for
	End        time.Time `json:"end"`
	// CheckEnd is the end of the window first asked for (the check's):
	// End moves on when alerts still active then are followed, and only
	// the episodes that began before CheckEnd are the check's.
	CheckEnd time.Time `json:"checkEnd,omitzero"`
	// Origin is the fault: the times in the text are relative to it.
	Origin   time.Time      `json:"origin,omitzero"`
	Step     time.Duration  `json:"stepNs,omitempty"`
	Episodes []AlertEpisode `json:"episodes,omitempty"`
	// Expect is the check's expectation in words; Unmet says how the
	// history differs from it (empty: met).
	Expect string   `json:"expect,omitempty"`
	Unmet  []string `json:"unmet,omitempty"`
	// Note says why there is no history (monitoring off, no answer).
	Note string `json:"note,omitempty"`
}

// AlertEpisode is one alert (one label set) from pending to cleared.
type AlertEpisode struct {
	Alert    string            `json:"alert"`
	Labels   map[string]string `json:"labels,omitempty"` // without alertname and alertstate
	Severity string            `json:"severity,omitempty"`
	For      time.Duration     `json:"forNs,omitempty"` // the rule's for:
	// Pending is the first evaluation that saw the condition true (the
	// window's start when Before).
	Pending time.Time `json:"pending"`
	// Firing is when it fired; zero if it never did.
	Firing time.Time `json:"firing,omitzero"`
	// Cleared is the first evaluation without it; zero while it was still
	// active at the window's end.
	Cleared time.Time `json:"cleared,omitzero"`
	// Before: already active when the window began (raised earlier).
	Before bool `json:"before,omitempty"`
}

// Fired reports whether the episode reached firing.
func (e AlertEpisode) Fired() bool { return !e.Firing.IsZero() }

// Subject names what the alert is about: the job and node, an etcd
// member, a replica; empty for a cluster-wide alert.
func (e AlertEpisode) Subject() string {
	var parts []string
	for _, k := range []string{"job", "node", "To", "application_name", "proxy"} {
		if v := e.Labels[k]; v != "" {
			if k == "To" {
				v = "member " + v
			}
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 && e.Labels["instance"] != "" {
		parts = append(parts, e.Labels["instance"])
	}
	return strings.Join(parts, " ")
}

// Text tells the episode in one line, times relative to origin:
// "PatroniNoLeader pending +1.2 s → cleared +9.8 s (never fired; for: 30s)".
func (e AlertEpisode) Text(origin time.Time) string { return e.text(origin, e.Subject()) }

func (e AlertEpisode) text(origin time.Time, subject string) string {
	rel := func(t time.Time) string { return fmt.Sprintf("%+.1f s", t.Sub(origin).Seconds()) }
	var b strings.Builder
	b.WriteString(e.Alert)
	if subject != "" {
		fmt.Fprintf(&b, " (%s)", subject)
	}
	if e.Before {
		fmt.Fprintf(&b, " already active at %s", rel(e.Pending))
	} else {
		fmt.Fprintf(&b, " pending %s", rel(e.Pending))
	}
	if e.Fired() {
		fmt.Fprintf(&b, " → firing %s", rel(e.Firing))
	}
	if e.Cleared.IsZero() {
		b.WriteString(" → still active at the window's end")
	} else {
		fmt.Fprintf(&b, " → cleared %s", rel(e.Cleared))
	}
	var tail []string
	if !e.Fired() {
		tail = append(tail, "never fired")
	}
	if e.For > 0 {
		tail = append(tail, "for: "+ShortDuration(e.For))
	}
	if len(tail) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(tail, "; "))
	}
	return b.String()
}

// Lines tells every episode, in order of Pending. Episodes of one alert
// with the same times (one line per node of a shared disk, both HAProxy
// nodes) share a line.
func (a *Alerts) Lines() []string {
	if a == nil {
		return nil
	}
	origin := a.Origin
	if origin.IsZero() {
		origin = a.Start
	}
	eps := append([]AlertEpisode(nil), a.Episodes...)
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].Pending.Before(eps[j].Pending) })
	type line struct {
		ep       AlertEpisode
		subjects []string
	}
	var lines []*line
	same := map[string]*line{}
	for _, e := range eps {
		key := e.text(origin, "")
		if l, ok := same[key]; ok {
			l.subjects = append(l.subjects, e.Subject())
			continue
		}
		l := &line{ep: e, subjects: []string{e.Subject()}}
		same[key] = l
		lines = append(lines, l)
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.ep.text(origin, strings.Join(l.subjects, ", ")))
	}
	return out
}

// alertsSection writes a check's alert history.
func alertsSection(b *strings.Builder, c Check) {
	a := c.Alerts
	if a == nil {
		return
	}
	b.WriteString("### Alerts\n\n")
	if a.Note != "" {
		fmt.Fprintf(b, "No alert history: %s.\n\n", md(strings.TrimSuffix(a.Note, ".")))
		return
	}
	origin := "the fault"
	if a.Origin.IsZero() {
		origin = "the check's start"
	}
	fmt.Fprintf(b, "`ALERTS` on %s every %s, times relative to %s.\n\n", md(a.Prometheus), a.Step, origin)
	lines := a.Lines()
	if len(lines) == 0 {
		b.WriteString("- no alert went pending\n")
	}
	for _, l := range lines {
		fmt.Fprintf(b, "- %s\n", md(l))
	}
	b.WriteString("\n")
	if a.Expect != "" {
		fmt.Fprintf(b, "Expected: %s. ", md(a.Expect))
		if len(a.Unmet) == 0 {
			b.WriteString("Met.\n\n")
		} else {
			fmt.Fprintf(b, "**Not met** (evidence, not a verdict): %s.\n\n", md(strings.Join(a.Unmet, "; ")))
		}
	}
}

// ShortDuration is d as a rules file writes it: 30s, 1m, 1m30s, 1h.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
