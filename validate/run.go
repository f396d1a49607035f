package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/validate/internal/report"
)

// runChecks is `validate [flags]`: the checks in runbook order, then the
// report. Exit status: 0 all passed, 1 a check failed, 2 bad input,
// 130 interrupted.
func runChecks(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if isUserError(err) {
			fmt.Fprintf(stderr, "validate: %v\n", err)
		}
		return 2
	}
	s, err := loadStack(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "validate: %v\n", err)
		return 2
	}
	dial, err := dialerFor(s)
	if err != nil {
		fmt.Fprintf(stderr, "validate: %v\n", err)
		return 2
	}
	e := newEnv(s, o, dial, stdout)
	dir := o.reportDir
	if dir == "" {
		dir = filepath.Join("report", e.start.UTC().Format("20060102-150405"))
	}
	r := &report.Report{
		Started: e.start, Target: s.Target, ClusterName: s.ClusterName, Profile: s.Profile,
		SynchronousMode: s.SynchronousMode, Access: s.Access.Kind,
		WriteEndpoint: s.WriteEndpoint.String(), ReadEndpoint: s.ReadEndpoint.String(),
		Command:   "validate " + strings.Join(args, " "),
		Reproduce: reproduce(o, s),
	}
	e.logf("validating %s cluster %q (profile %s, synchronous mode %v) via %s access; checks: %s",
		s.Target, s.ClusterName, s.Profile, s.SynchronousMode, s.Access.Kind, strings.Join(o.selected, ", "))

	// Whatever happens below, put back what was broken.
	restored := false
	restoreAll := func() {
		if restored {
			return
		}
		restored = true
		for _, msg := range e.restore.all() {
			fmt.Fprintf(stderr, "validate: %s\n", msg)
			r.Checks = append(r.Checks, report.Check{Name: "restore", Verdict: report.Fail, Summary: msg, Problems: []string{msg}})
		}
	}
	defer restoreAll()

	r.Before = snapshot(e.probe.Formation(ctx))
	interrupted := false
	for _, name := range o.selected {
		ch, _ := checkByName(name)
		if ctx.Err() != nil {
			interrupted = true
			r.Checks = append(r.Checks, report.Check{Name: name, Verdict: report.Skip, Summary: "not run: interrupted"})
			continue
		}
		e.logf("== %s: %s", ch.name, ch.title)
		cr := &checkRun{Check: report.Check{Name: ch.name, Started: time.Now()}, e: e}
		func() {
			// A panic in one check must not skip the restores.
			defer func() {
				if p := recover(); p != nil {
					cr.failf("internal error: %v", p)
				}
			}()
			ch.run(ctx, e, cr)
		}()
		if ctx.Err() != nil {
			interrupted = true
			cr.Problems = append(cr.Problems, "interrupted (Ctrl-C)")
		}
		cr.Seconds = time.Since(cr.Started).Seconds()
		cr.Verdict = report.Pass
		if len(cr.Problems) > 0 {
			cr.Verdict = report.Fail
			if cr.Summary == "" {
				cr.Summary = cr.Problems[0]
			}
		}
		e.logf("== %s: %s (%.1fs) %s", ch.name, cr.Verdict, cr.Seconds, cr.Summary)
		r.Checks = append(r.Checks, cr.Check)
	}
	restoreAll()
	e.followAlerts(ctx, r.Checks)

	// The cluster as it was left, read with a fresh context so an
	// interrupted run still records it.
	actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.After = snapshot(e.probe.Formation(actx))
	r.Finish(time.Now())

	fmt.Fprintln(stdout)
	r.Console(stdout)
	if err := r.WriteDir(dir); err != nil {
		fmt.Fprintf(stderr, "validate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(dir, "report.md"))
	switch {
	case interrupted:
		return 130
	case !r.Passed:
		return 1
	}
	return 0
}

// reproduce gives the commands that rerun this validation.
func reproduce(o *options, s outputs.Stack) []string {
	src := "--stack " + orDefault(o.stack, "<stack>")
	if o.outputsFile != "" {
		src = "--outputs " + o.outputsFile
	}
	var cmds []string
	if s.Target == outputs.TargetLab && o.outputsFile != "" {
		up := "go run ./lab up --name " + filepath.Base(filepath.Dir(o.outputsFile))
		if s.Profile != "" {
			up += " --profile " + s.Profile
		}
		if s.SynchronousMode {
			up += " --sync"
		}
		cmds = append(cmds, up+"    # if it is not up")
	}
	full := "go run ./validate " + src
	if o.fault != "kill" {
		full += " --fault " + o.fault
	}
	if len(o.selected) != len(checks) {
		full += " --only " + strings.Join(o.selected, ",")
	}
	cmds = append(cmds, full)
	for _, c := range o.selected {
		cmds = append(cmds, fmt.Sprintf("go run ./validate %s --only %s", src, c))
	}
	return cmds
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
