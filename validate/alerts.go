package main

import (
	"context"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/validate/internal/alertproof"
	"github.com/pgha/pgha/validate/internal/promgraph"
	"github.com/pgha/pgha/validate/internal/report"
)

// prometheus is a client of the stack's Prometheus, nil when monitoring is
// off.
func (e *env) prometheus() *promgraph.Client {
	if e.stack.PrometheusEndpoint == "" {
		return nil
	}
	return &promgraph.Client{BaseURL: e.stack.PrometheusEndpoint, HTTP: access.HTTPSClient(e.dial, 10*time.Second, e.probe.TLS)}
}

// alertHistory adds to a destructive check which alerts went pending,
// fired and cleared during it, judged against the check's expectation
// (package alertproof). Like the graphs it is evidence: nothing here is
// a problem of the check.
func (e *env) alertHistory(ctx context.Context, c *report.Check) {
	tl := c.Timeline
	if tl == nil || tl.End.IsZero() {
		return
	}
	cl := e.prometheus()
	switch {
	case cl == nil:
		c.Alerts = &report.Alerts{Note: "the stack has no prometheusEndpoint: monitoring is off"}
		return
	case ctx.Err() != nil:
		c.Alerts = &report.Alerts{Prometheus: cl.BaseURL, Note: "not collected: interrupted"}
		return
	}
	c.Alerts = promgraph.CollectAlerts(ctx, cl, promgraph.AlertRequest{From: tl.Start, To: tl.End.Add(metricsAfter),
		Origin: tl.FaultAt, Step: time.Second})
	judgeAlerts(c)
	for _, l := range c.Alerts.Lines() {
		e.logf("  alert: %s", l)
	}
	switch {
	case c.Alerts.Note != "":
		e.logf("  alerts: none: %s", c.Alerts.Note)
	case c.Alerts.Expect != "" && len(c.Alerts.Unmet) == 0:
		e.logf("  alerts: as expected (%s)", c.Alerts.Expect)
	case c.Alerts.Expect != "":
		e.logf("  alerts: NOT as expected (evidence, not a verdict): %v", c.Alerts.Unmet)
	}
}

// followAlerts reads every check's alert history again at the end of the
// run, so an alert still active when its check ended gets the time it
// cleared (often during the next check). It waits for nothing.
func (e *env) followAlerts(ctx context.Context, checks []report.Check) {
	cl := e.prometheus()
	if cl == nil || ctx.Err() != nil {
		return
	}
	now := time.Now()
	for i := range checks {
		a := checks[i].Alerts
		if a == nil || a.Note != "" {
			continue
		}
		if err := promgraph.FollowAlerts(ctx, cl, a, now); err != nil {
			e.logf("  alerts of %s: not followed to the end of the run: %v", checks[i].Name, err)
			continue
		}
		judgeAlerts(&checks[i])
	}
}

// judgeAlerts records the check's expectation and how the history differs.
func judgeAlerts(c *report.Check) {
	x, ok := alertproof.For(c.Name)
	if !ok || c.Alerts == nil || c.Alerts.Note != "" {
		return
	}
	c.Alerts.Expect = x.String()
	c.Alerts.Unmet = alertproof.Judge(x, c.Alerts, false)
}
