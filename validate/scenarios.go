package main

import (
	"context"
	"strings"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// The resilience scenarios (package scenario) run as checks named
// "scenario:NAME", selected with --scenario NAME (repeatable) or
// --all-scenarios. They share validate's dialers, health checks and
// restorer, and land in the same report.

const scenarioPrefix = "scenario:"

// story runs one story as this check, through the one engine, and graphs
// what Prometheus saw and alerted meanwhile.
func (e *env) story(ctx context.Context, sc scenario.Scenario, c *checkRun) {
	scenario.Execute(ctx, scenarioEnv{e}, sc, &c.Check)
	e.graphMetrics(ctx, &c.Check)
	e.alertHistory(ctx, &c.Check)
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// selectScenarios turns --scenario and --all-scenarios into check names.
func selectScenarios(names []string, all bool) ([]string, error) {
	if all {
		names = scenario.Names()
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimPrefix(n, scenarioPrefix)
		if _, ok := scenario.Get(n); !ok {
			return nil, userErrorf("--scenario: unknown scenario %q; the scenarios are %s", n, strings.Join(scenario.Names(), ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, scenarioPrefix+n)
		}
	}
	return out, nil
}

// scenarioEnv adapts validate's env to what a scenario needs.
type scenarioEnv struct{ e *env }

func (s scenarioEnv) Stack() outputs.Stack         { return s.e.stack }
func (s scenarioEnv) Dial() access.DialFunc        { return s.e.dial }
func (s scenarioEnv) Probe() *probe.Probe          { return s.e.probe }
func (s scenarioEnv) Faults() (fault.Set, error)   { return s.e.faultSet() }
func (s scenarioEnv) Logf(format string, a ...any) { s.e.logf(format, a...) }
func (s scenarioEnv) RunID() string                { return s.e.runID }
func (s scenarioEnv) Announce(ctx context.Context, what string) error {
	return s.e.announce(ctx, what)
}

func (s scenarioEnv) Switchover(ctx context.Context, host, leader, candidate string) (string, error) {
	return s.e.slowPat.Switchover(ctx, host, leader, candidate)
}

func (s scenarioEnv) Restore(what string, fn func(context.Context) error) func() error {
	return s.e.restore.push(what, fn)
}

func (s scenarioEnv) Settings() scenario.Settings {
	o := s.e.opts
	return scenario.Settings{WriteInterval: o.writeInterval, ReadInterval: o.readInterval, OpTimeout: o.opTimeout,
		FailoverBound: o.failoverBound, RejoinBound: o.rejoinBound, RoutingBound: o.routingBound}
}
