package fault

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
)

// labPartition cuts a lab node's link to the lab's bridge: the node keeps
// running but can reach nothing and nothing reaches it, which is what a real
// network partition looks like to Patroni and etcd.
type labPartition struct{ lc LabControl }

func (labPartition) Name() string { return Partition }

func (f labPartition) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.lc.Partition(ctx, n.Name)
}

func (f labPartition) Restore(ctx context.Context, n outputs.Node) error {
	return f.lc.Heal(ctx, n.Name)
}
