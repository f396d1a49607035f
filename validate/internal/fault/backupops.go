package fault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/outputs"
)

// BackupOps take a backup and run a restore drill on the cluster's nodes,
// with the tools the nodes have: the lab command in a namespace lab, and on
// EC2 instances (AWS, the booted lab) the backup unit and the drill script
// their user data installed, over SSH.
type BackupOps interface {
	// Backup takes an incremental backup on node, the leader (pgBackRest
	// makes it a full one when the repository has none), and returns what
	// the backup printed.
	Backup(ctx context.Context, node outputs.Node) (string, error)
	// RestoreDrill restores the repository to target into a scratch server
	// on node, runs query in database there and returns its answer. The
	// scratch server is gone when it returns.
	RestoreDrill(ctx context.Context, node outputs.Node, target time.Time, database, query string) (string, error)
	Close() error
}

// BackupOpsFor returns the backup operations of the stack's nodes.
func BackupOpsFor(s outputs.Stack) (BackupOps, error) {
	if s.Target == outputs.TargetAWS || instances(s) {
		cfg, err := access.SSHConfigFromStack(s)
		if err != nil {
			return nil, err
		}
		jump, err := access.NewJump(cfg)
		if err != nil {
			return nil, err
		}
		return &remoteBackup{remote: jump, host: stackHosts(s), closer: jump.Close}, nil
	}
	if _, err := LabCommand(s); err != nil {
		return nil, err
	}
	return labBackup{stack: s}, nil
}

// labBackup runs `lab backup` and `lab restore-drill`.
type labBackup struct{ stack outputs.Stack }

func (l labBackup) Backup(ctx context.Context, n outputs.Node) (string, error) {
	return LabRun(ctx, l.stack, "backup", n.Name, "--type", "incr")
}

func (l labBackup) RestoreDrill(ctx context.Context, n outputs.Node, target time.Time, database, query string) (string, error) {
	out, err := LabRun(ctx, l.stack, "restore-drill", n.Name, "--target", target.UTC().Format(time.RFC3339Nano),
		"--database", database, "--query", query)
	return strings.TrimSpace(out), err
}

func (labBackup) Close() error { return nil }

// remoteBackup runs the nodes' own tools as root over SSH.
type remoteBackup struct {
	remote Remote
	host   func(outputs.Node) access.Host
	closer func() error
}

// backupUnit is the unit the backup timers start; validate starts it the
// same way, so the backup runs as the timers' would (user postgres, the
// leader-only check) and lands in the node's journal.
const backupUnit = "pgha-backup@incr.service"

func (r *remoteBackup) Backup(ctx context.Context, n outputs.Node) (string, error) {
	script := fmt.Sprintf(`since=$(date '+%%Y-%%m-%%d %%H:%%M:%%S')
rc=0
systemctl start %[1]s || rc=$?
journalctl -u %[1]s --since "$since" -o cat --no-pager | tail -n 40
exit $rc
`, backupUnit)
	out, err := r.remote.RunRoot(ctx, r.host(n), script)
	if err != nil {
		return out, fmt.Errorf("the backup on %s failed (systemctl start %s): %w", n.Name, backupUnit, err)
	}
	if strings.Contains(out, "does not lead") {
		return out, fmt.Errorf("the backup on %s did not run: %s is no longer the leader", n.Name, n.Name)
	}
	return out, nil
}

func (r *remoteBackup) RestoreDrill(ctx context.Context, n outputs.Node, target time.Time, database, query string) (string, error) {
	// The drill's progress goes to a file, shown only on failure, so that
	// what comes back on success is the query's answer alone.
	script := nodefault.RestoreDrillRun(target, database, query)
	out, err := r.remote.RunRoot(ctx, r.host(n), script)
	if err != nil {
		return "", fmt.Errorf("the restore drill on %s failed: %w", n.Name, err)
	}
	return strings.TrimSpace(out), nil
}

func (r *remoteBackup) Close() error { return r.closer() }
