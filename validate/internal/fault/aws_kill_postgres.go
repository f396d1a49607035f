package fault

import (
	"context"
	"fmt"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// awsKillPostgres crashes PostgreSQL alone on an EC2 Patroni node over SSH:
// SIGKILL to the PID in postmaster.pid, and nothing else. Patroni stays up
// and decides, within primary_start_timeout, to restart it or fail over.
type awsKillPostgres struct {
	remote Remote
	host   func(outputs.Node) access.Host
	paths  userdata.Paths
}

func (*awsKillPostgres) Name() string { return KillPostgres }

func (f *awsKillPostgres) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s: %s runs no PostgreSQL", KillPostgres, n.Name)
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), nodefault.KillPostgresScript(f.paths.PGDataDir)); err != nil {
		return fmt.Errorf("%s %s: %w", KillPostgres, n.Name, err)
	}
	return nil
}

// Restore makes sure Patroni runs (it restarts PostgreSQL itself).
func (f *awsKillPostgres) Restore(ctx context.Context, n outputs.Node) error {
	k, err := nodefault.SpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), nodefault.RestartScript(k)); err != nil {
		return fmt.Errorf("start %s on %s: %w", k.Unit, n.Name, err)
	}
	return nil
}
