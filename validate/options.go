package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgha/pgha/validate/internal/fault"
)

// options are the flags of a check run.
type options struct {
	outputsFile string
	stack       string
	dir         string // the Pulumi project's; empty: here or above
	reportDir   string
	only, skip  string
	fault       string
	candidate   string
	yes         bool

	scenarios    stringList // --scenario, repeatable
	allScenarios bool

	writeInterval    time.Duration
	opTimeout        time.Duration
	readInterval     time.Duration
	replicationBound time.Duration
	routingBound     time.Duration
	failoverBound    time.Duration
	rejoinBound      time.Duration
	archiveLagWindow time.Duration

	selected []string // check names to run, in runbook order
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.outputsFile, "outputs", "", "read the stack outputs from this JSON `file` (the lab writes one)")
	fs.StringVar(&o.stack, "stack", "", "read the outputs of this Pulumi `stack` (default: the selected stack) when --outputs is not given")
	fs.StringVar(&o.reportDir, "report-dir", "", "write report.json, report.md and timeline.svg here (default ./report/<timestamp>)")
	fs.StringVar(&o.only, "only", "", "run only these checks (comma-separated): "+strings.Join(checkNames(), ","))
	fs.StringVar(&o.skip, "skip", "", "skip these checks (comma-separated)")
	fs.StringVar(&o.fault, "fault", "kill", "fault for the failover check: kill, stop or partition (what the target supports)")
	fs.StringVar(&o.candidate, "candidate", "", "switch over to this member (default: the sync standby, else the replica with the least lag)")
	fs.Var(&o.scenarios, "scenario", "run this resilience `scenario` (repeatable; see docs/scenarios.md); alone, it replaces the runbook checks")
	fs.BoolVar(&o.allScenarios, "all-scenarios", false, "run every resilience scenario")
	fs.BoolVar(&o.yes, "yes", false, "against a non-lab target, do not pause before breaking anything")
	fs.DurationVar(&o.writeInterval, "write-interval", 50*time.Millisecond, "time between inserts of the writer")
	fs.DurationVar(&o.opTimeout, "op-timeout", time.Second, "traffic: a connect or statement slower than this counts as failed")
	fs.DurationVar(&o.readInterval, "read-interval", 100*time.Millisecond, "time between reads of the reader")
	fs.DurationVar(&o.replicationBound, "replication-bound", 10*time.Second, "a row must reach every replica within this")
	fs.DurationVar(&o.routingBound, "routing-bound", 20*time.Second, "after a leader change, HAProxy must route correctly within this")
	fs.DurationVar(&o.failoverBound, "failover-bound", 60*time.Second, "a new leader must be elected and accept writes within this")
	fs.DurationVar(&o.rejoinBound, "rejoin-bound", 90*time.Second, "a restored node must stream again within this")
	fs.DurationVar(&o.archiveLagWindow, "archive-lag-window", 30*time.Second, "backup check: run the writer this long and sample the archive lag (RPO) meanwhile (0 skips it)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate [flags]   (see also: validate help)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, userErrorf("unexpected argument %q; flags go before it, and subcommands come first", fs.Arg(0))
	}
	if o.outputsFile != "" && o.stack != "" {
		return nil, userErrorf("use either --outputs or --stack, not both")
	}
	switch o.fault {
	case fault.Kill, fault.Stop, fault.Partition:
	case fault.KillPostgres:
		return nil, userErrorf("--fault %s: Patroni restarts a crashed PostgreSQL in place, so there is no failover to check; run --scenario postgres-crash", o.fault)
	default:
		return nil, userErrorf("--fault: unknown fault %q; use %s, %s or %s", o.fault, fault.Kill, fault.Stop, fault.Partition)
	}
	for name, d := range map[string]time.Duration{
		"--write-interval": o.writeInterval, "--read-interval": o.readInterval, "--op-timeout": o.opTimeout,
		"--replication-bound": o.replicationBound, "--routing-bound": o.routingBound,
		"--failover-bound": o.failoverBound, "--rejoin-bound": o.rejoinBound,
	} {
		if d <= 0 {
			return nil, userErrorf("%s must be positive, got %s", name, d)
		}
	}
	if o.archiveLagWindow < 0 {
		return nil, userErrorf("--archive-lag-window must be 0 or more, got %s", o.archiveLagWindow)
	}
	scen, err := selectScenarios(o.scenarios, o.allScenarios)
	if err != nil {
		return nil, err
	}
	if len(scen) > 0 && o.only == "" && o.skip == "" {
		o.selected = scen
		return o, nil
	}
	sel, err := selectChecks(o.only, o.skip)
	if err != nil {
		return nil, err
	}
	o.selected = append(sel, scen...)
	return o, nil
}

// selectChecks applies --only and --skip to the runbook order.
func selectChecks(only, skip string) ([]string, error) {
	parse := func(flagName, v string) (map[string]bool, error) {
		set := map[string]bool{}
		if strings.TrimSpace(v) == "" {
			return set, nil
		}
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if _, ok := checkByName(n); !ok {
				return nil, userErrorf("%s: unknown check %q; the checks are %s", flagName, n, strings.Join(checkNames(), ", "))
			}
			set[n] = true
		}
		return set, nil
	}
	o, err := parse("--only", only)
	if err != nil {
		return nil, err
	}
	s, err := parse("--skip", skip)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range checkNames() {
		if (len(o) == 0 || o[n]) && !s[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, userErrorf("--only/--skip leave no check to run")
	}
	return out, nil
}
