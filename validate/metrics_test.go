package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/validate/internal/report"
)

// Metrics are evidence: no endpoint, or one that does not answer, is a
// line in the report and never a problem of the check.
func TestGraphMetricsNeverFailsTheCheck(t *testing.T) {
	closed := closedAddr(t)
	now := time.Now()
	check := func() *report.Check { return pastCheck("failover", now) }
	s := outputs.Stack{Target: outputs.TargetLab, ClusterName: "t"}
	e := newEnv(s, &options{}, access.Direct(), io.Discard)
	c := check()
	e.graphMetrics(context.Background(), c)
	require.Equal(t, "the stack has no prometheusEndpoint: monitoring is off", c.Metrics.Note)
	require.Empty(t, c.Problems)

	s.PrometheusEndpoint = "https://" + closed
	e = newEnv(s, &options{}, access.Direct(), io.Discard)
	c = check()
	e.graphMetrics(context.Background(), c)
	require.True(t, strings.HasPrefix(c.Metrics.Note, "Prometheus at https://"+closed+" did not answer: "), c.Metrics.Note)
	require.Empty(t, c.Problems)
	require.Contains(t, (&report.Report{Checks: []report.Check{*c}}).Markdown(), "Metric graphs: none (Prometheus at https://"+closed)

	// A check that never got to its timeline's end has nothing to graph.
	c = &report.Check{Name: "failover", Timeline: &report.Timeline{Start: now}}
	e.graphMetrics(context.Background(), c)
	require.Nil(t, c.Metrics)
}

// The alert history is evidence too: monitoring off or a Prometheus that
// does not answer is a note, never a problem, and the expectation is not
// judged on a history that does not exist.
func TestAlertHistoryNeverFailsTheCheck(t *testing.T) {
	closed := closedAddr(t)
	now := time.Now()
	check := func() *report.Check { return pastCheck("scenario:leader-kill", now) }
	s := outputs.Stack{Target: outputs.TargetLab, ClusterName: "t"}
	e := newEnv(s, &options{}, access.Direct(), io.Discard)
	c := check()
	e.alertHistory(context.Background(), c)
	require.Equal(t, "the stack has no prometheusEndpoint: monitoring is off", c.Alerts.Note)
	require.Empty(t, c.Problems)

	s.PrometheusEndpoint = "https://" + closed
	e = newEnv(s, &options{}, access.Direct(), io.Discard)
	c = check()
	e.alertHistory(context.Background(), c)
	require.Contains(t, c.Alerts.Note, "did not answer")
	require.Empty(t, c.Alerts.Expect)
	require.Empty(t, c.Problems)
	e.followAlerts(context.Background(), []report.Check{*c})
	require.Contains(t, (&report.Report{Checks: []report.Check{*c}}).Markdown(), "No alert history: Prometheus at https://"+closed)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// pastCheck is a check whose timeline ended ten seconds before now, with
// its fault in the middle.
func pastCheck(name string, now time.Time) *report.Check {
	return &report.Check{Name: name, Timeline: &report.Timeline{Check: name, Start: now.Add(-20 * time.Second),
		End: now.Add(-10 * time.Second), FaultAt: now.Add(-15 * time.Second)}}
}
