package fault

import (
	"context"

	"github.com/pgha/pgha/internal/outputs"
)

// labStop shuts a lab node down cleanly, as stopping the instance would.
type labStop struct{ lc LabControl }

func (labStop) Name() string { return Stop }

func (f labStop) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.lc.Stop(ctx, n.Name)
}

func (f labStop) Restore(ctx context.Context, n outputs.Node) error { return f.lc.Start(ctx, n.Name) }
