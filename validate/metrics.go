package main

import (
	"context"
	"time"

	"github.com/pgha/pgha/validate/internal/promgraph"
	"github.com/pgha/pgha/validate/internal/report"
)

// Around a check's fault, how much of Prometheus's record to graph.
const (
	metricsBefore = 5 * time.Second
	metricsAfter  = 3 * time.Second
)

// graphMetrics adds to a destructive check what the cluster's Prometheus
// recorded during it. Metrics are evidence, not a check: whatever goes
// wrong here is one line in the report, never a problem.
func (e *env) graphMetrics(ctx context.Context, c *report.Check) {
	tl := c.Timeline
	if tl == nil || tl.End.IsZero() {
		return
	}
	if e.stack.PrometheusEndpoint == "" {
		c.Metrics = &report.Metrics{Note: "the stack has no prometheusEndpoint: monitoring is off"}
		return
	}
	if ctx.Err() != nil {
		c.Metrics = &report.Metrics{Prometheus: e.stack.PrometheusEndpoint, Note: "not collected: interrupted"}
		return
	}
	from := tl.Start
	if !tl.FaultAt.IsZero() && tl.FaultAt.Add(-metricsBefore).Before(from) {
		from = tl.FaultAt.Add(-metricsBefore)
	}
	nodes := map[string]string{}
	for _, n := range e.stack.Nodes {
		nodes[n.PrivateIP] = n.Name
	}
	c.Metrics = promgraph.Collect(ctx, e.prometheus(), promgraph.Request{From: from, To: tl.End.Add(metricsAfter), Step: time.Second,
		Database: e.stack.Credentials.AppDatabase, Nodes: nodes})
	if c.Metrics.HasData() {
		e.logf("  metrics: %d panels from %s", len(c.Metrics.Panels), e.stack.PrometheusEndpoint)
	} else {
		e.logf("  metrics: none: %s", c.Metrics.Note)
	}
}
