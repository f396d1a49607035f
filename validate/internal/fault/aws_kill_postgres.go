package fault

import (
	"context"
	"fmt"

	"github.com/pgha/pgha/internal/access"
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

// KillPostgresScript SIGKILLs the postmaster of datadir.
func KillPostgresScript(datadir string) string {
	return fmt.Sprintf(`set -u
datadir=%s
pm=
[ -r "$datadir/postmaster.pid" ] && pm=$(head -n 1 "$datadir/postmaster.pid")
case $pm in ''|0|*[!0-9]*) echo "no postmaster.pid in $datadir: PostgreSQL is not running" >&2; exit 3 ;; esac
kill -KILL "$pm"
echo "killed $pm"
`, shQuote(datadir))
}

func (f *awsKillPostgres) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s: %s runs no PostgreSQL", KillPostgres, n.Name)
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), KillPostgresScript(f.paths.PGDataDir)); err != nil {
		return fmt.Errorf("%s %s: %w", KillPostgres, n.Name, err)
	}
	return nil
}

// Restore makes sure Patroni runs (it restarts PostgreSQL itself).
func (f *awsKillPostgres) Restore(ctx context.Context, n outputs.Node) error {
	k, err := killSpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), RestartScript(k)); err != nil {
		return fmt.Errorf("start %s on %s: %w", k.Unit, n.Name, err)
	}
	return nil
}
