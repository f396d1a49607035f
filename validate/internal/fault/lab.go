package fault

import (
	"context"
	"errors"

	"github.com/pgha/pgha/internal/outputs"
)

// LabControl is what the lab's faults need from a running lab: the lab
// command's node operations (go run ./lab kill pg-1, and so on).
type LabControl interface {
	// Kill SIGKILLs the node's daemons (for a Patroni node: Patroni and the
	// postmaster), like a crash.
	Kill(ctx context.Context, node string) error
	// KillPostgres SIGKILLs a Patroni node's postmaster alone.
	KillPostgres(ctx context.Context, node string) error
	// Stop stops the node's daemons cleanly, like a shutdown of the host.
	Stop(ctx context.Context, node string) error
	// Start starts the node's daemons again; nothing to do if they run.
	Start(ctx context.Context, node string) error
	// Partition cuts the node's link; Heal restores it.
	Partition(ctx context.Context, node string) error
	Heal(ctx context.Context, node string) error
}

// ErrNoPartition is why a loopback lab offers no partition.
var ErrNoPartition = errors.New("a loopback lab cannot partition a node: its nodes share the host's network stack, so there is no link to cut; bring the lab up as root with --net netns")

// LabFaults is the lab's table. Every fault is one operation of the lab and
// its undo; bringing PostgreSQL back after kill-postgres is Patroni's job
// (and what is measured), so its restore only makes sure Patroni runs. A
// lab whose nodes have no network namespace of their own cannot cut a link:
// that is the lab's nature, whatever path validate reaches it by.
func LabFaults(c LabControl, s outputs.Stack) Set {
	var partition Fault = labFault{Partition, c.Partition, c.Heal}
	for _, n := range s.Nodes {
		if n.Namespace == "" {
			partition = Unavailable{Kind: Partition, Reason: ErrNoPartition}
		}
	}
	return Set{
		labFault{Kill, c.Kill, c.Start},
		labFault{Stop, c.Stop, c.Start},
		partition,
		labFault{KillPostgres, c.KillPostgres, c.Start},
	}
}

// labFault is one lab operation and its undo.
type labFault struct {
	kind            string
	inject, restore func(ctx context.Context, node string) error
}

func (f labFault) Name() string { return f.kind }

func (f labFault) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.inject(ctx, n.Name)
}

func (f labFault) Restore(ctx context.Context, n outputs.Node) error { return f.restore(ctx, n.Name) }
