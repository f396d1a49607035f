package fault

import (
	"context"

	"github.com/pgha/pgha/outputs"
)

// labStop shuts a lab node down cleanly, as stopping the instance would.
type labStop struct{ lc LabControl }

func (labStop) Name() string { return Stop }

func (f labStop) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return f.lc.Stop(n.Name)
}

func (f labStop) Restore(_ context.Context, n outputs.Node) error { return f.lc.Start(n.Name) }
