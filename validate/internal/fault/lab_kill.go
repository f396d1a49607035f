package fault

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
)

// labKill crashes a lab node: SIGKILL to Patroni and the postmaster, so
// nothing gets to shut down cleanly or release the leader key.
type labKill struct{ lc LabControl }

func (labKill) Name() string { return Kill }

func (f labKill) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.lc.Kill(ctx, n.Name)
}

func (f labKill) Restore(ctx context.Context, n outputs.Node) error { return f.lc.Start(ctx, n.Name) }
