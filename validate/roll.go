package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/roll"
	"github.com/pgha/pgha/internal/switchover"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/validate/internal/stackout"
)

// `validate roll` is the runbook's image roll of an AWS stack as one
// command. A plain `pulumi up` after a new image (or new user data) would
// replace all eight instances at once; Pulumi has no way to replace them
// one at a time with a health check between them. So this command runs
// `pulumi up --target <instance> --target-dependents` node by node, in
// roll.Order (the lab's `lab roll` walks the same order with the same
// gates), and between nodes waits for the cluster to be whole: etcd 3/3
// healthy, one Patroni leader, every replica streaming. Before the former
// leader it switches over through Patroni's REST API (roll.HandOver).
//
// It drives the pulumi CLI (`stack export`, `preview --json`, `up`), as
// the rest of validate does through internal/pulumicli, rather than
// Pulumi's Automation API: that API runs the same CLI underneath and would
// add some 700 packages to validate.

// rollOptions are the flags of `validate roll`.
type rollOptions struct {
	stack, dir  string
	dryRun, yes bool
	gate        time.Duration
}

func parseRollOptions(args []string, stderr io.Writer) (*rollOptions, error) {
	o := &rollOptions{}
	fs := flag.NewFlagSet("validate roll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.stack, "stack", "", "roll this Pulumi `stack` (default: the selected stack)")
	fs.StringVar(&o.dir, "dir", "", "run pulumi in this `dir`ectory, which holds Pulumi.yaml (default: here or above)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the steps and the exact pulumi commands; change nothing")
	fs.DurationVar(&o.gate, "gate", 10*time.Minute, "after each step the cluster must be whole again within this")
	fs.BoolVar(&o.yes, "yes", false, "start without asking (needed when stdin is not a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: validate roll [--stack NAME] [--dir DIR] [--dry-run] [--gate 10m] [--yes]")
		fmt.Fprintln(stderr, "Replaces the instances that `pulumi preview` would replace, one node at a time, the cluster whole between nodes.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, userErrorf("unexpected argument %q", fs.Arg(0))
	}
	if o.gate <= 0 {
		return nil, userErrorf("--gate must be positive, got %s", o.gate)
	}
	return o, nil
}

// rollPulumi is what the roll asks of the pulumi CLI.
type rollPulumi interface {
	// Output runs a command that only reads, and returns what it printed.
	Output(ctx context.Context, args ...string) ([]byte, error)
	// Update runs a command that changes the stack, its output going to the
	// user. An interrupt is passed on to it once, and it is waited for.
	Update(ctx context.Context, args ...string) error
}

// clusterView is how the roll looks at the cluster and switches over:
// a probe built from the stack outputs, switching over behind the
// poolers (switchover.Switcher).
type clusterView interface {
	roll.Switcher
	Etcd(ctx context.Context) probe.EtcdState
}

// roller is one run of `validate roll`.
type roller struct {
	stack, dir string
	cli        rollPulumi
	load       func(ctx context.Context) (outputs.Stack, error)
	connect    func(s outputs.Stack) (clusterView, func(), error)
	out, err   io.Writer
	// interactive says stdin is a terminal; confirmations are read from in.
	interactive bool
	in          io.Reader
	switchBound time.Duration

	plan      topology.Plan
	view      clusterView
	closeView func()
}

func runRoll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseRollOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if isUserError(err) {
			fmt.Fprintf(stderr, "validate roll: %v\n", err)
		}
		return 2
	}
	pdir, err := stackout.ProjectDir(o.dir)
	if err == nil && o.stack == "" {
		o.stack, err = stackout.CurrentStack(ctx, pdir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "validate roll: %v\n", err)
		return 2
	}
	r := &roller{
		stack: o.stack, dir: o.dir,
		cli: pulumiExec{dir: pdir, stdout: stdout, stderr: stderr},
		load: func(ctx context.Context) (outputs.Stack, error) {
			return loadStack(ctx, &options{stack: o.stack, dir: pdir})
		},
		connect:     connectCluster,
		out:         stdout,
		err:         stderr,
		interactive: isTerminal(os.Stdin),
		in:          os.Stdin,
		switchBound: 2 * time.Minute,
	}
	return r.run(ctx, o)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// connectCluster is validate's own way to the cluster (connectProbe), as
// the roll looks at it: its hand-over held behind the poolers.
func connectCluster(s outputs.Stack) (clusterView, func(), error) {
	p, closeProbe, err := connectProbe(s)
	if err != nil {
		return nil, nil, err
	}
	return switchover.Switcher{Probe: p}, closeProbe, nil
}

// connectProbe is validate's own way to the cluster: SSH through the
// jump host, etcd through a hop on each member, host keys pinned from the
// outputs.
func connectProbe(s outputs.Stack) (*probe.Probe, func(), error) {
	if s.Access.Kind != outputs.AccessSSH {
		dial, err := dialerFor(s)
		if err != nil {
			return nil, nil, err
		}
		return newEnv(s, &options{}, dial, io.Discard).probe, func() {}, nil
	}
	cfg, err := access.SSHConfigFromStack(s)
	if err != nil {
		return nil, nil, err
	}
	j, err := access.NewJump(cfg)
	if err != nil {
		return nil, nil, err
	}
	e := newEnv(s, &options{}, j.DialContext, io.Discard)
	return e.probe, func() { e.closeHops(); _ = j.Close() }, nil
}

// upArgs replace one node: its instance, with what depends on it (its
// Elastic IP, its readiness commands, the cluster check).
func upArgs(stack, urn string) []string {
	return []string{"up", "--stack", stack, "--target", urn, "--target-dependents", "--yes", "--skip-preview"}
}

func (r *roller) logf(format string, a ...any) { fmt.Fprintf(r.out, format+"\n", a...) }

// reconnect looks at the cluster the outputs describe, from now on.
func (r *roller) reconnect(s outputs.Stack) error {
	v, closeView, err := r.connect(s)
	if err != nil {
		return err
	}
	if r.closeView != nil {
		r.closeView()
	}
	r.view, r.closeView = v, closeView
	return nil
}

// reload reads the stack outputs again: a replaced instance has new SSH
// host keys, which validate pins.
func (r *roller) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s, err := r.load(ctx)
	if err != nil {
		return fmt.Errorf("reading the stack outputs again: %w", err)
	}
	return r.reconnect(s)
}

// survey is the cluster now: its formation and etcd, and whether whole.
func (r *roller) survey(ctx context.Context) (probe.Formation, probe.EtcdState, error) {
	e := r.view.Etcd(ctx)
	f := r.view.Formation(ctx)
	problems := append(append([]string(nil), e.Problems...), f.Problems...)
	if len(problems) > 0 {
		return f, e, errors.New(strings.Join(problems, "; "))
	}
	return f, e, nil
}

func describe(f probe.Formation, e probe.EtcdState) string {
	var reps []string
	for _, m := range f.Replicas {
		st := f.Repl[m.Name].State
		if st == "" {
			st = "not streaming"
		}
		reps = append(reps, m.Name+" "+st)
	}
	healthy := 0
	for _, m := range e.Members {
		if m.Healthy {
			healthy++
		}
	}
	s := fmt.Sprintf("leader %s", orNone(f.Leader.Name))
	if f.Sync != "" {
		s += ", synchronous standby " + f.Sync
	}
	return s + fmt.Sprintf(", replicas: %s; etcd %d/%d healthy, leader %s",
		orNone(strings.Join(reps, ", ")), healthy, len(e.Members), orNone(e.Leader))
}

// resume is the command that takes the roll up again.
func (r *roller) resume(o *rollOptions) string {
	cmd := "go run ./validate roll --stack " + shellQuote(r.stack)
	if r.dir != "" {
		cmd += " --dir " + shellQuote(r.dir)
	}
	if o.gate != 10*time.Minute {
		cmd += " --gate " + o.gate.String()
	}
	return cmd
}

func (r *roller) run(ctx context.Context, o *rollOptions) int {
	start := time.Now()
	if !o.yes && !o.dryRun && !r.interactive {
		fmt.Fprintln(r.err, "validate roll: stdin is not a terminal, so no one can confirm the roll: pass --yes (or --dry-run to see the plan)")
		return 2
	}
	// Until the first step starts nothing has changed, whatever goes wrong.
	before := func(code int, format string, a ...any) int {
		fmt.Fprintf(r.err, "validate roll: %s\n", fmt.Sprintf(format, a...))
		if ctx.Err() != nil {
			fmt.Fprintln(r.err, "validate roll: interrupted before the roll started; nothing was changed")
			return 130
		}
		fmt.Fprintln(r.err, "validate roll: nothing was changed")
		return code
	}
	s, err := r.load(ctx)
	if err != nil {
		return before(2, "%v", err)
	}
	if s.Target != outputs.TargetAWS {
		return before(2, "stack %q is a %s cluster: validate roll replaces EC2 instances through pulumi (a booted lab rolls with `go run ./lab roll`)", r.stack, s.Target)
	}
	if r.plan, err = topology.New(s.VPCCIDR); err != nil {
		return before(2, "output %q: %v", outputs.KeyVPCCIDR, err)
	}
	if err := r.reconnect(s); err != nil {
		return before(2, "%v", err)
	}
	defer func() { r.closeView() }()

	f, e, err := r.survey(ctx)
	r.logf("stack %s, cluster %q: %s", r.stack, s.ClusterName, describe(f, e))
	if err != nil {
		return before(1, "refusing to start: the cluster is not whole (%v). A roll takes one node away at a time and needs the rest healthy; mend the cluster first (docs/runbook.md, \"Replace a node\"), then run this again", err)
	}
	steps, err := roll.Order(r.plan, f.Leader.Name, f.Sync)
	if err != nil {
		return before(1, "%v", err)
	}

	exported, err := r.cli.Output(ctx, "stack", "export", "--stack", r.stack)
	if err != nil {
		return before(1, "reading the stack's state: %v", err)
	}
	state, err := parseExport(exported)
	if err != nil {
		return before(1, "%v", err)
	}
	urns, err := instanceURNs(state, r.plan)
	if err != nil {
		return before(1, "stack %s: %v", r.stack, err)
	}
	r.logf("previewing the update: pulumi preview --stack %s --json", shellQuote(r.stack))
	pv, err := r.cli.Output(ctx, "preview", "--stack", r.stack, "--json")
	if err != nil {
		if d, perr := parsePreview(pv); perr == nil && len(d.errors()) > 0 {
			err = errors.New(strings.Join(d.errors(), "; "))
		}
		return before(1, "pulumi preview failed: %v", err)
	}
	digest, err := parsePreview(pv)
	if err != nil {
		return before(1, "%v", err)
	}
	pp := classify(digest, state, urns, r.plan)
	if len(pp.Foreign) > 0 {
		var lines, targets []string
		for _, c := range pp.Foreign {
			lines = append(lines, "  "+c.String())
			targets = append(targets, "--target "+shellQuote(c.URN))
		}
		return before(1, "the update would also change what is not a node:\n%s\n"+
			"A roll changes nodes only. Apply these first, alone (without --target-dependents, which would take instances along):\n"+
			"  pulumi up --stack %s %s\nthen run this again.",
			strings.Join(lines, "\n"), shellQuote(r.stack), strings.Join(targets, " "))
	}
	nodes := pp.Rolled(r.plan)
	if len(nodes) == 0 {
		r.logf("the nodes are up to date: the update would replace no instance. Nothing to roll.")
		return 0
	}
	steps = rollSteps(steps, pp)
	r.printPlan(steps, pp, urns, o)
	if o.dryRun {
		r.logf("dry run: nothing was run or changed")
		return 0
	}
	if !o.yes {
		ok, err := r.confirm(ctx)
		if err != nil || !ok {
			if ctx.Err() != nil {
				return before(130, "interrupted")
			}
			return before(1, "not confirmed")
		}
	}

	c := &awsCluster{r: r, urns: urns, changes: pp.Nodes}
	done, err := roll.Run(ctx, c, steps, o.gate, r.out)
	return r.report(ctx, o, steps, done, err, urns, time.Since(start))
}

// rollSteps keeps of the full order the nodes the update changes, and the
// switchover only when the leader's instance is replaced.
func rollSteps(all []roll.Step, pp previewPlan) []roll.Step {
	var out []roll.Step
	for _, s := range all {
		_, replaced := pp.Nodes[s.Node]
		if replaced || (s.Kind == roll.Replace && pp.Finish[s.Node]) {
			out = append(out, s)
		}
	}
	return out
}

func (r *roller) stepLine(i, n int, s roll.Step, pp previewPlan) string {
	line := fmt.Sprintf("%d/%d %s", i+1, n, s)
	switch {
	case s.Kind == roll.Switchover:
		line += " (to the synchronous standby, else a streaming replica, through Patroni's REST API)"
	case pp.Finish[s.Node]:
		line += " (its instance is current; this applies what depends on it, left over from an earlier run)"
	case pp.Nodes[s.Node] != "replace":
		line += " (pulumi: " + pp.Nodes[s.Node] + ")"
	}
	return line
}

func (r *roller) printPlan(steps []roll.Step, pp previewPlan, urns map[string]string, o *rollOptions) {
	var replaced []string
	for _, n := range pp.Rolled(r.plan) {
		if _, ok := pp.Nodes[n]; ok {
			replaced = append(replaced, n)
		}
	}
	if len(replaced) > 0 {
		r.logf("the update replaces the instances of %s", strings.Join(replaced, ", "))
	}
	if len(pp.Dependents) > 0 {
		byType := map[string]int{}
		for _, c := range pp.Dependents {
			qt, _, _ := urnParts(c.URN)
			byType[lastType(qt)]++
		}
		var kinds []string
		for t, n := range byType {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, t))
		}
		sort.Strings(kinds)
		r.logf("and with them what depends on them: %s", strings.Join(kinds, ", "))
	}
	r.logf("the roll, %s; after each the cluster must be whole again (etcd 3/3 healthy, 1 leader, every replica streaming) within %s:", plural(len(steps), "step"), o.gate)
	for i, s := range steps {
		r.logf("  %s", r.stepLine(i, len(steps), s, pp))
		if s.Kind == roll.Replace {
			r.logf("      %s", shellCommand(upArgs(r.stack, urns[s.Node])))
		}
	}
}

// confirm asks on the terminal.
func (r *roller) confirm(ctx context.Context) (bool, error) {
	fmt.Fprintf(r.out, "Roll stack %s now? Type yes to start: ", r.stack)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r.in).ReadString('\n')
		answer <- strings.TrimSpace(line)
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(r.out)
		return false, ctx.Err()
	case a := <-answer:
		return a == "yes", nil
	}
}

// report says what was done, how long each step took, who leads now and,
// when the roll stopped, where and how to go on.
func (r *roller) report(ctx context.Context, o *rollOptions, steps []roll.Step, done []roll.Done, err error, urns map[string]string, took time.Duration) int {
	fmt.Fprintln(r.out)
	// next is the first step not made; a gate that failed follows a step
	// whose change was made.
	next := len(done)
	var gate *roll.GateError
	if errors.As(err, &gate) {
		next = gate.After
	}
	switch {
	case err == nil:
		r.logf("roll of stack %s done: %s in %s", r.stack, plural(len(steps), "step"), took.Round(time.Second))
	case gate != nil && gate.After == 0:
		r.logf("roll of stack %s STOPPED before the first step after %s: %v", r.stack, took.Round(time.Second), err)
	case gate != nil:
		r.logf("roll of stack %s STOPPED after step %d/%d (%s), made, after %s: %v", r.stack, gate.After, len(steps), steps[gate.After-1], took.Round(time.Second), err)
	default:
		r.logf("roll of stack %s STOPPED at step %d/%d (%s) after %s: %v", r.stack, next+1, len(steps), steps[next], took.Round(time.Second), err)
	}
	for i, d := range done {
		line := fmt.Sprintf("  done %d/%d %-24s %s", i+1, len(steps), d.Step, d.Took.Round(time.Second))
		if d.To != "" {
			line += ", new leader " + d.To
		}
		r.logf("%s", line)
	}
	if gate != nil && gate.After > 0 {
		r.logf("  made %d/%d %-24s the cluster was not whole again in time", gate.After, len(steps), steps[gate.After-1])
	}
	// The cluster as the roll leaves it, read even after an interrupt.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	f, e, whole := r.survey(actx)
	r.logf("the cluster now: %s", describe(f, e))
	if err == nil {
		r.logf("leader now: %s", orNone(f.Leader.Name))
		return 0
	}
	if whole != nil {
		r.logf("  not whole: %v", whole)
	}
	if next < len(steps) {
		r.logf("not done:")
	}
	for i := next; i < len(steps); i++ {
		s := steps[i]
		r.logf("  %d/%d %s", i+1, len(steps), s)
		if s.Kind == roll.Replace {
			r.logf("      %s", shellCommand(upArgs(r.stack, urns[s.Node])))
		}
	}
	r.logf("Nothing was undone: the nodes replaced stay replaced. To go on, once the cluster is whole, run\n  %s\n"+
		"again: it previews the stack again and rolls only the nodes that still differ, finishing first a node whose pulumi up stopped part-way.",
		r.resume(o))
	if ctx.Err() != nil {
		return 130
	}
	return 1
}

// awsCluster is an AWS stack as a roll acts on it.
type awsCluster struct {
	r    *roller
	urns map[string]string
	// changes are the nodes whose instance the update replaces (or
	// updates), by the preview's op; the others are only finished.
	changes map[string]string
}

func (c *awsCluster) Replace(ctx context.Context, node string) error {
	r := c.r
	if n, ok := r.plan.Node(node); ok && n.Role == topology.RolePatroni {
		if _, disruptive := c.changes[node]; disruptive {
			if f := r.view.Formation(ctx); f.Leader.Name == node {
				return fmt.Errorf("%s leads now (the leader changed during the roll): replacing it would be a failover, so the roll stops here", node)
			}
		}
	}
	args := upArgs(r.stack, c.urns[node])
	r.logf("  $ %s", shellCommand(args))
	t := time.Now()
	if err := r.cli.Update(ctx, args...); err != nil {
		return err
	}
	r.logf("  pulumi up for %s done in %s; reading the stack outputs again (a new instance has new SSH host keys)", node, time.Since(t).Round(time.Second))
	// Read even when interrupted meanwhile: the outputs must be current for
	// the report.
	return r.reload(context.WithoutCancel(ctx))
}

func (c *awsCluster) Whole(ctx context.Context) error {
	if err := c.r.view.Etcd(ctx).Err(); err != nil {
		return err
	}
	return c.r.view.Formation(ctx).Err()
}

func (c *awsCluster) Switchover(ctx context.Context, leader string) (string, error) {
	return roll.HandOver(ctx, c.r.view, leader, c.r.switchBound)
}

// shellCommand is pulumi with args as a shell would take them: a URN holds
// a $, so it is quoted.
func shellCommand(args []string) string {
	q := []string{"pulumi"}
	for _, a := range args {
		q = append(q, shellQuote(a))
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
