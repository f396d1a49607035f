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

	"github.com/pgha/pgha/internal/topology"
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

// Run takes the steps in order. Before the first and after each, the
// cluster must be whole (Whole is the gate, waited on up to gate); it stops
// at the first step or gate that fails, saying which, and leaves the rest.
func Run(ctx context.Context, c Cluster, steps []Step, gate time.Duration, log io.Writer) ([]Done, error) {
	wait := func(after string) error {
		gctx, cancel := context.WithTimeout(ctx, gate)
		defer cancel()
		var err error
		for {
			if err = c.Whole(gctx); err == nil {
				return nil
			}
			select {
			case <-gctx.Done():
				return fmt.Errorf("%s: the cluster is not whole after %s: %w", after, gate, err)
			case <-time.After(time.Second):
			}
		}
	}
	if err := wait("before the roll"); err != nil {
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
		if err := wait(fmt.Sprintf("step %d/%d, %s", i+1, len(steps), s)); err != nil {
			return done, err
		}
		d.Took = time.Since(t)
		done = append(done, d)
	}
	return done, nil
}
