package fault

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
)

// LabControl is what the lab's faults need from a running lab. The lab
// package implements it on its own processes and namespaces.
type LabControl interface {
	// Kill SIGKILLs the node's daemons (for a Patroni node: Patroni and the
	// postmaster), like a crash.
	Kill(ctx context.Context, node string) error
	// Stop stops the node's daemons cleanly, like a shutdown of the host.
	Stop(ctx context.Context, node string) error
	// Start starts the node's daemons again after Kill or Stop.
	Start(ctx context.Context, node string) error
	// Partition cuts the node's link; Heal restores it.
	Partition(ctx context.Context, node string) error
	Heal(ctx context.Context, node string) error
}

// openLab binds a stack written by the lab to the lab's control. It is set by
// lab_control.go so that this package builds before the lab exists.
var openLab func(s outputs.Stack) (LabControl, error)

func init() {
	Register("lab", func(s outputs.Stack) (Set, bool, error) {
		if s.Target != outputs.TargetLab {
			return nil, false, nil
		}
		if openLab == nil {
			return nil, true, errLabUnbound
		}
		lc, err := openLab(s)
		if err != nil {
			return nil, true, err
		}
		return LabSet(lc, s.Access.Kind), true, nil
	})
}

// partitionChecker is the part of a lab control that knows whether its
// lab can partition a node (lab/cluster.Lab has it). It decides, not the
// access path: a namespace lab reached over SSH still partitions.
type partitionChecker interface {
	PartitionUnavailable() error
}

const errNoPartition = labError("a loopback lab cannot partition a node: its nodes share the host's network stack")

// LabSet is the faults a lab offers. A loopback lab has no namespaces, so
// its nodes cannot be partitioned; asking for partition then says why.
func LabSet(lc LabControl, accessKind string) Set {
	set := Set{Kill: labKill{lc}, Stop: labStop{lc}}
	var noPartition error
	if pc, ok := lc.(partitionChecker); ok {
		noPartition = pc.PartitionUnavailable()
	} else if accessKind == outputs.AccessDirect {
		noPartition = errNoPartition
	}
	if noPartition != nil {
		set[Partition] = Unavailable{Kind: Partition, Reason: noPartition}
	} else {
		set[Partition] = labPartition{lc}
	}
	addLabKillPostgres(set, lc)
	return set
}

type labError string

func (e labError) Error() string { return string(e) }

const errLabUnbound = labError("lab faults are not available in this build (the lab control package is missing)")

// ctxErr stops a fault early when validate is interrupted before it begins.
func ctxErr(ctx context.Context) error { return ctx.Err() }
