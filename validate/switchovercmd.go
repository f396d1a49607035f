package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/switchover"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// runSwitchover is `validate switchover`: the operator's planned
// switchover, held behind the poolers, on a whole cluster.
func runSwitchover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate switchover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var noPooler, resume bool
	var bound time.Duration
	fs.StringVar(&o.outputsFile, "outputs", "", "read the stack outputs from this JSON `file` (the lab writes one)")
	fs.StringVar(&o.stack, "stack", "", "read the outputs of this Pulumi `stack` (default: the selected stack)")
	fs.StringVar(&o.candidate, "candidate", "", "hand leadership to this member (default: the sync standby, else the replica with the least lag)")
	fs.BoolVar(&noPooler, "no-pooler", false, "switch over without pausing the poolers: their clients then see the errors direct clients see")
	fs.BoolVar(&resume, "resume", false, "switch nothing: resume every pooler that is paused (after a switchover that printed POOLERS LEFT PAUSED)")
	fs.DurationVar(&bound, "bound", 90*time.Second, "the cluster must be whole again on the next timeline within this")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate switchover [--candidate MEMBER] [--outputs FILE | --stack STACK] [--no-pooler]")
		fmt.Fprintln(stderr, "Hands the leader role to a replica, holding the poolers' clients meanwhile: they see a stall of a few seconds, not an error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "validate switchover: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	s, err := loadStack(ctx, &o)
	if err != nil {
		fmt.Fprintf(stderr, "validate switchover: %v\n", err)
		return 2
	}
	p, closeProbe, err := connectProbe(s)
	if err != nil {
		fmt.Fprintf(stderr, "validate switchover: reaching the cluster: %v\n", err)
		return 1
	}
	defer closeProbe()
	if resume {
		if err := resumeAll(ctx, s, p, stdout); err != nil {
			fmt.Fprintf(stderr, "validate switchover --resume: %v\n", err)
			return 1
		}
		return 0
	}
	if err := planned(ctx, p, s, o.candidate, noPooler, bound, stdout); err != nil {
		fmt.Fprintf(stderr, "validate switchover: %v\n", err)
		var ce scenario.ErrCandidate
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}

// planned performs the switchover on a whole cluster and waits until it
// is whole again around the new leader, one timeline on.
func planned(ctx context.Context, p *probe.Probe, s outputs.Stack, asked string, noPooler bool, bound time.Duration, out io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(out, "  "+format+"\n", a...) }
	f := p.Formation(ctx)
	if err := f.Err(); err != nil {
		return fmt.Errorf("not switching over: the cluster is not whole: %w", err)
	}
	cand, err := scenario.ChooseCandidate(f, asked)
	if err != nil {
		return err
	}
	poolers := switchover.Poolers(s, p.Dial)
	how := fmt.Sprintf("behind %d poolers (their clients are held, not failed)", len(poolers))
	switch {
	case noPooler:
		how = "without pausing the poolers (--no-pooler)"
	case len(poolers) == 0:
		how = "without poolers (the outputs name none, or no admin console credentials)"
	case switchover.SessionPooled(ctx, poolers):
		how = fmt.Sprintf("beside %d poolers that pool sessions (not held behind them)", len(poolers))
	}
	fmt.Fprintf(out, "switchover %s → %s on timeline %d, %s\n", f.Leader.Name, cand.Name, f.Timeline, how)
	start := time.Now()
	res, err := switchover.Run(ctx, p, f.Leader, cand, switchover.Options{NoPooler: noPooler, Logf: logf})
	if err != nil {
		return err
	}
	if res.Answer != "" {
		logf("Patroni: %s", res.Answer)
	}
	if res.Pooled {
		fmt.Fprintf(out, "poolers resumed: their clients were held at most %s (%s)\n",
			res.Pooler.Stall.Round(time.Millisecond), switchover.Describe(res.Pooler))
	}
	nf, ok := p.WaitFormation(ctx, bound, func(nf probe.Formation) string {
		if nf.Leader.Name != cand.Name {
			return fmt.Sprintf("the leader is %s, want %s", nf.Leader.Name, cand.Name)
		}
		if nf.Timeline != f.Timeline+1 {
			return fmt.Sprintf("timeline %d, want %d", nf.Timeline, f.Timeline+1)
		}
		return ""
	}, nil)
	if !ok {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while waiting for the cluster to be whole around %s: %w", cand.Name, ctx.Err())
		}
		return fmt.Errorf("%s leads, but the cluster is not whole on timeline %d within %s: %s", cand.Name, f.Timeline+1, bound, nf.Problem())
	}
	fmt.Fprintf(out, "done in %s: %s leads on timeline %d, %s stream from it\n",
		time.Since(start).Round(100*time.Millisecond), nf.Leader.Name, nf.Timeline, strings.Join(replicaNames(nf), " and "))
	return nil
}

// resumeAll resumes every pooler and reads each back: nothing paused.
func resumeAll(ctx context.Context, s outputs.Stack, p *probe.Probe, out io.Writer) error {
	poolers := switchover.Poolers(s, p.Dial)
	if len(poolers) == 0 {
		return errors.New("the outputs name no pooler, or no admin console credentials")
	}
	var errs []error
	for _, a := range poolers {
		if err := a.Resume(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "%s: nothing paused\n", a.Name())
	}
	return errors.Join(errs...)
}
