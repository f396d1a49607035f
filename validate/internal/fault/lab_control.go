package fault

import (
	"context"
	"errors"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/lab/cluster"
)

// The lab's own controls act on its processes and namespaces; the outputs
// name the lab through access.labDir.
func init() {
	openLab = func(s outputs.Stack) (LabControl, error) {
		l, err := cluster.FromOutputs(s)
		if err != nil {
			return nil, err
		}
		return labControl{l}, nil
	}
}

// labControl makes Start idempotent: a restore must succeed when the fault
// never took effect (the node still runs).
type labControl struct{ *cluster.Lab }

func (l labControl) Start(ctx context.Context, node string) error {
	if err := l.Lab.Start(ctx, node); err != nil && !errors.Is(err, cluster.ErrRunning) {
		return err
	}
	return nil
}
