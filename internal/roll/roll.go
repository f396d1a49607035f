// Package roll orders and runs a rolling replacement of every node (a new
// image, new user data) so that the cluster stays available: one node at a
// time, each step gated on the cluster being whole again, the HAProxy nodes
// first (clients move to the other), then the etcd members (a quorum of 2
// survives one), then the PostgreSQL replicas (the asynchronous one
// first), then a switchover to a replaced replica, and the former leader
// last. Who replaces a node (the lab, or `pulumi up --target` on AWS) is
// the caller's.
package roll

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
)

// Kind is what a step does.
type Kind string

const (
	Replace    Kind = "replace"
	Switchover Kind = "switchover"
)

// Step is one action of a roll.
type Step struct {
	Kind Kind
	Node string // the node replaced, or the leader switched away from
}

func (s Step) String() string {
	if s.Kind == Switchover {
		return "switch over from " + s.Node
	}
	return "replace " + s.Node
}

// Order is the safe order for a cluster whose Patroni leader and
// synchronous standby (empty without synchronous mode) are given.
func Order(plan topology.Plan, leader, sync string) ([]Step, error) {
	var steps []Step
	for _, n := range plan.ByRole(topology.RoleHAProxy) {
		steps = append(steps, Step{Replace, n.Name})
	}
	for _, n := range plan.ByRole(topology.RoleEtcd) {
		steps = append(steps, Step{Replace, n.Name})
	}
	pgs := plan.ByRole(topology.RolePatroni)
	found := false
	var async, syncs []Step
	for _, n := range pgs {
		switch n.Name {
		case leader:
			found = true
		case sync:
			syncs = append(syncs, Step{Replace, n.Name})
		default:
			async = append(async, Step{Replace, n.Name})
		}
	}
	if !found {
		return nil, fmt.Errorf("the leader %q is not a PostgreSQL node of the plan", leader)
	}
	steps = append(steps, async...)
	steps = append(steps, syncs...)
	return append(steps, Step{Switchover, leader}, Step{Replace, leader}), nil
}

// Cluster is what a roll acts on.
type Cluster interface {
	// Replace replaces one node and returns once it is ready.
	Replace(ctx context.Context, node string) error
	// Switchover hands leadership from leader to a healthy replica and
	// returns the new leader.
	Switchover(ctx context.Context, leader string) (string, error)
	// Whole returns nil once the cluster is whole: 1 leader and every
	// replica streaming, etcd 3/3 healthy.
	Whole(ctx context.Context) error
}

// Done is one finished step and how long it took, gate included.
type Done struct {
	Step  Step
	Start time.Time
	Took  time.Duration
	To    string // the new leader, for a switchover
}

// GateError is a gate that did not pass, after step After (1-based; 0 is
// before the first): that step's change was made.
type GateError struct {
	After int
	Err   error // why the cluster was not whole
	msg   string
}

func (e *GateError) Error() string { return e.msg }
func (e *GateError) Unwrap() error { return e.Err }

// Run takes the steps in order. Before the first and after each, the
// cluster must be whole (Whole is the gate, waited on up to gate); it stops
// at the first step or gate that fails, saying which, and leaves the rest.
func Run(ctx context.Context, c Cluster, steps []Step, gate time.Duration, log io.Writer) ([]Done, error) {
	wait := func(step int, after string) error {
		gctx, cancel := context.WithTimeout(ctx, gate)
		defer cancel()
		var err error
		for {
			if err = c.Whole(gctx); err == nil {
				return nil
			}
			select {
			case <-gctx.Done():
				if ctx.Err() != nil {
					return &GateError{After: step, Err: err, msg: fmt.Sprintf("%s: interrupted while waiting for the cluster to be whole (%v)", after, err)}
				}
				return &GateError{After: step, Err: err, msg: fmt.Sprintf("%s: the cluster is not whole after %s: %v", after, gate, err)}
			case <-time.After(time.Second):
			}
		}
	}
	if err := wait(0, "before the roll"); err != nil {
		return nil, err
	}
	var done []Done
	for i, s := range steps {
		fmt.Fprintf(log, "roll %d/%d: %s\n", i+1, len(steps), s)
		t := time.Now()
		d := Done{Step: s, Start: t}
		var err error
		switch s.Kind {
		case Switchover:
			d.To, err = c.Switchover(ctx, s.Node)
		default:
			err = c.Replace(ctx, s.Node)
		}
		if err != nil {
			return done, fmt.Errorf("step %d/%d, %s: %w", i+1, len(steps), s, err)
		}
		if err := wait(i+1, fmt.Sprintf("step %d/%d, %s", i+1, len(steps), s)); err != nil {
			return done, err
		}
		d.Took = time.Since(t)
		done = append(done, d)
	}
	return done, nil
}

// Switcher is what a switchover needs of a cluster: Patroni's formation,
// and POST /switchover on a member.
type Switcher interface {
	Formation(ctx context.Context, skip ...string) probe.Formation
	Switchover(ctx context.Context, host, leader, candidate string) error
}

// HandOver switches over from leader, through Patroni's REST API, to the
// synchronous standby (else a streaming replica) and waits up to bound for
// it to lead a whole formation; it returns the new leader. The lab's roll
// and validate's roll of an AWS stack both hand over with it. When leader
// no longer leads, there is nothing to hand over: it asks Patroni nothing
// and returns the leader there is.
func HandOver(ctx context.Context, s Switcher, leader string, bound time.Duration) (string, error) {
	f := s.Formation(ctx)
	if err := f.Err(); err != nil {
		return "", fmt.Errorf("not switching over from %s: %w", leader, err)
	}
	if f.Leader.Name != leader {
		return f.Leader.Name, nil
	}
	cand, ok := f.Replica(true)
	if !ok {
		if cand, ok = f.Replica(false); !ok {
			return "", fmt.Errorf("no replica to switch over to")
		}
	}
	if err := s.Switchover(ctx, f.Leader.Host, leader, cand.Name); err != nil {
		return "", err
	}
	var last probe.Formation
	if wait.Poll(ctx, bound, 500*time.Millisecond, func() bool {
		last = s.Formation(ctx)
		return last.Leader.Name == cand.Name && last.OK()
	}) {
		return cand.Name, nil
	}
	why := last.Problem()
	if last.Leader.Name != cand.Name {
		why = fmt.Sprintf("the leader is %q", last.Leader.Name)
	}
	if ctx.Err() != nil {
		return cand.Name, fmt.Errorf("interrupted while waiting for %s to lead (%s)", cand.Name, why)
	}
	return cand.Name, fmt.Errorf("%s does not lead a whole cluster %s after the switchover: %s", cand.Name, bound, why)
}
