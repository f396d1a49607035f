package fault

import (
	"context"
	"fmt"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/userdata"
)

// awsKill crashes a node's daemon over SSH: SIGKILL of the role's main
// process, and on a Patroni node also of the postmaster (Patroni detaches
// it, so killing Patroni alone leaves PostgreSQL serving).
type awsKill struct {
	remote Remote
	host   func(outputs.Node) access.Host
	paths  userdata.Paths
}

func (*awsKill) Name() string { return Kill }

func (f *awsKill) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	k, err := nodefault.SpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), nodefault.KillScript(k)); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	return nil
}

func (f *awsKill) Restore(ctx context.Context, n outputs.Node) error {
	k, err := nodefault.SpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), nodefault.RestartScript(k)); err != nil {
		return fmt.Errorf("restart %s on %s: %w", k.Unit, n.Name, err)
	}
	return nil
}
