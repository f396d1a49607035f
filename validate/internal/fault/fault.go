// Package fault breaks one node of a cluster on purpose and puts it back.
//
// Each target has one explicit table of the faults it offers, the way etcd's
// robustness tests list their failpoints: LabFaults (each one a command of
// the lab, run through the lab's own control), and AWSFaults (over the SSH
// jump host and the EC2 API, one file each). A kind a target cannot offer
// stands in its table as Unavailable, with the reason, so asking for it
// says why. validate asks ForTarget and never needs to know the difference.
package fault

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
)

// Fault is one way to break a node.
type Fault interface {
	// Name is the fault kind as the user types it: kill, stop, partition.
	Name() string
	// Inject breaks the node. It returns once the fault is in effect.
	Inject(ctx context.Context, node outputs.Node) error
	// Restore undoes Inject: the node runs and is reachable again. It must be
	// safe to call when Inject failed half-way or was never called.
	Restore(ctx context.Context, node outputs.Node) error
}

// Kind names.
const (
	Kill      = "kill"      // SIGKILL Patroni and PostgreSQL (a crash)
	Stop      = "stop"      // stop the whole node (or instance)
	Partition = "partition" // cut the node off the network
	// KillPostgres crashes PostgreSQL alone on a Patroni node while Patroni
	// keeps running: the case where Patroni's primary_start_timeout decides
	// between restarting the primary in place and failing over.
	KillPostgres = "kill-postgres"
)

// Set is the faults one target offers.
type Set []Fault

// Unavailable stands in a Set for a kind the target cannot offer, so that
// asking for it says why (a loopback lab has no link to cut) instead of
// only "not available". It is not listed by Names and Get never returns it.
type Unavailable struct {
	Kind   string
	Reason error
}

func (u Unavailable) Name() string { return u.Kind }

func (u Unavailable) Inject(context.Context, outputs.Node) error {
	return fmt.Errorf("fault %q: %w", u.Kind, u.Reason)
}

func (u Unavailable) Restore(context.Context, outputs.Node) error { return nil }

// Names lists the faults on offer, sorted.
func (s Set) Names() []string {
	var out []string
	for _, f := range s {
		if _, no := f.(Unavailable); !no {
			out = append(out, f.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Get returns the named fault or an error that lists what the target offers
// (and, for a kind it cannot offer, why).
func (s Set) Get(name string) (Fault, error) {
	for _, f := range s {
		if f.Name() != name {
			continue
		}
		if u, no := f.(Unavailable); no {
			return nil, fmt.Errorf("fault %q is not available for this target: %v; choose one of: %s", name, u.Reason, strings.Join(s.Names(), ", "))
		}
		return f, nil
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("fault %q: this target offers no faults", name)
	}
	return nil, fmt.Errorf("fault %q is not available for this target; choose one of: %s", name, strings.Join(s.Names(), ", "))
}

// ForTarget returns the faults for a stack. They follow what the nodes
// are: EC2 instances (on AWS, and in the booted lab, whose machines stand
// for instances) get the AWS table, over SSH and the EC2 API; the lab's own
// processes get the lab's table, through the lab command.
func ForTarget(s outputs.Stack) (Set, error) {
	switch {
	case s.Target == outputs.TargetAWS || instances(s):
		cfg, err := access.SSHConfigFromStack(s)
		if err != nil {
			return nil, fmt.Errorf("aws faults: %w", err)
		}
		jump, err := access.NewJump(cfg)
		if err != nil {
			return nil, fmt.Errorf("aws faults: %w", err)
		}
		return AWSFaults(s, jump, lazyEC2(s)), nil
	case s.Target == outputs.TargetLab:
		c, err := LabCommand(s)
		if err != nil {
			return nil, fmt.Errorf("lab faults: %w", err)
		}
		return LabFaults(c, s), nil
	}
	return nil, fmt.Errorf("no faults for target %q (want %q or %q)", s.Target, outputs.TargetLab, outputs.TargetAWS)
}

// instances reports whether every node is an EC2 instance.
func instances(s outputs.Stack) bool {
	for _, n := range s.Nodes {
		if n.InstanceID == "" {
			return false
		}
	}
	return len(s.Nodes) > 0
}

// ctxErr stops a fault early when validate is interrupted before it begins.
func ctxErr(ctx context.Context) error { return ctx.Err() }
