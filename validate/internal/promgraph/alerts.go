package promgraph

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/report"
)

// qAlerts is Prometheus's own series of every pending or firing alert.
const qAlerts = "ALERTS"

// AlertRequest is the window whose alerts to read.
type AlertRequest struct {
	From, To time.Time
	// Origin is the fault, which the report's times are relative to.
	Origin time.Time
	// Step between evaluations (default 1 s).
	Step time.Duration
	// MaxSettle bounds the wait for the rule evaluations that cover To
	// (default 15 s).
	MaxSettle time.Duration
}

// CollectAlerts reads which alerts went pending, fired and cleared during
// the window. It never fails: what went wrong is the Alerts' Note.
func CollectAlerts(ctx context.Context, c *Client, rq AlertRequest) *report.Alerts {
	if rq.Step <= 0 {
		rq.Step = time.Second
	}
	if rq.MaxSettle <= 0 {
		rq.MaxSettle = 15 * time.Second
	}
	a := &report.Alerts{Prometheus: c.BaseURL, Start: rq.From, End: rq.To, Origin: rq.Origin, Step: rq.Step}
	interval, err := ScrapeInterval(ctx, c)
	if err != nil {
		a.Note = fmt.Sprintf("Prometheus at %s did not answer: %v", c.BaseURL, err)
		return a
	}
	// Rules are evaluated about as often as targets are scraped; the
	// evaluation that covers To lands up to an interval later.
	if d := time.Until(rq.To.Add(interval + time.Second)); d > 0 && interval > 0 {
		if err := wait.Sleep(ctx, min(d, rq.MaxSettle)); err != nil {
			a.Note = "not collected: interrupted"
			return a
		}
	}
	rules, err := c.AlertRules(ctx)
	if err != nil {
		a.Note = fmt.Sprintf("Prometheus at %s did not list its rules: %v", c.BaseURL, err)
		return a
	}
	if len(rules) == 0 {
		a.Note = fmt.Sprintf("Prometheus at %s has no alerting rules loaded", c.BaseURL)
		return a
	}
	r, err := c.QueryRange(ctx, qAlerts, rq.From, rq.To, rq.Step)
	if err != nil {
		a.Note = err.Error()
		return a
	}
	a.Episodes = Episodes(r, rq.From, rq.To, rq.Step, rules)
	return a
}

// FollowAlerts reads a's window again up to until, so that the episodes
// that began in it and were still active at its end get their end (or
// firing); the episodes that began after a.End are left out. A failed
// query leaves a as it was.
func FollowAlerts(ctx context.Context, c *Client, a *report.Alerts, until time.Time) error {
	if a == nil || a.Note != "" || !until.After(a.End) {
		return nil
	}
	var active bool
	for _, e := range a.Episodes {
		active = active || e.Cleared.IsZero()
	}
	if !active {
		return nil
	}
	rules, err := c.AlertRules(ctx)
	if err != nil {
		return err
	}
	r, err := c.QueryRange(ctx, qAlerts, a.Start, until, a.Step)
	if err != nil {
		return err
	}
	if a.CheckEnd.IsZero() {
		a.CheckEnd = a.End
	}
	var keep []report.AlertEpisode
	for _, e := range Episodes(r, a.Start, until, a.Step, rules) {
		// Followed twice (validate, then a test), the episodes are still
		// only those that began within the check.
		if e.Pending.Before(a.CheckEnd) {
			keep = append(keep, e)
		}
	}
	a.Episodes = keep
	a.End = until
	return nil
}

// Episodes turns the ALERTS matrix into one episode per alert and label
// set and per uninterrupted run of evaluations (a gap of more than one
// step ends an episode). An episode whose first sample is the window's
// first is Before; one whose last sample is the window's last evaluation
// is still active.
func Episodes(r Result, from, to time.Time, step time.Duration, rules []AlertRule) []report.AlertEpisode {
	byName := map[string]AlertRule{}
	for _, rl := range rules {
		byName[rl.Name] = rl
	}
	type sample struct {
		at     time.Time
		firing bool
	}
	groups := map[string][]sample{}
	labels := map[string]map[string]string{}
	for _, s := range r.Series {
		ls := map[string]string{}
		for k, v := range s.Labels {
			if k != "alertstate" && k != "__name__" {
				ls[k] = v
			}
		}
		key := labelKey(ls)
		labels[key] = ls
		for _, smp := range s.Samples {
			if smp.Value == 1 {
				groups[key] = append(groups[key], sample{smp.At, s.Labels["alertstate"] == "firing"})
			}
		}
	}
	slack := step / 2
	// query_range evaluates at from + k·step: the last evaluation may be
	// almost a step before to.
	lastStep := from.Add(to.Sub(from) / step * step)
	var out []report.AlertEpisode
	for key, ss := range groups {
		sort.Slice(ss, func(i, j int) bool { return ss[i].at.Before(ss[j].at) })
		ls := labels[key]
		name := ls["alertname"]
		ep := func(first sample) report.AlertEpisode {
			e := report.AlertEpisode{Alert: name, Labels: map[string]string{}, Severity: ls["severity"],
				For: byName[name].For, Pending: first.at, Before: !first.at.After(from.Add(slack))}
			if e.Severity == "" {
				e.Severity = byName[name].Severity
			}
			for k, v := range ls {
				if k != "alertname" {
					e.Labels[k] = v
				}
			}
			return e
		}
		cur := ep(ss[0])
		last := ss[0].at
		for i, s := range ss {
			if i > 0 && s.at.Sub(last) > step+slack {
				cur.Cleared = last.Add(step)
				out = append(out, cur)
				cur = ep(s)
			}
			if s.firing && cur.Firing.IsZero() {
				cur.Firing = s.at
			}
			last = s.at
		}
		if last.Before(lastStep.Add(-slack)) {
			cur.Cleared = last.Add(step)
		}
		out = append(out, cur)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Pending.Equal(out[j].Pending) {
			return out[i].Pending.Before(out[j].Pending)
		}
		return out[i].Alert+out[i].Subject() < out[j].Alert+out[j].Subject()
	})
	return out
}

func labelKey(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, ls[k])
	}
	return b.String()
}
