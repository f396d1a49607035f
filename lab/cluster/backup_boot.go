package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// On a booted lab the backup tools are the nodes' own, as on AWS: pgbackrest
// with the node's /etc/pgbackrest.conf (the instance role's credentials
// from the metadata service), and the pgha-restore-drill its user data
// installed.

// bootPostgresNode checks that node is a PostgreSQL machine of a booted lab
// with backups.
func (l *Lab) bootPostgresNode(node string) error {
	n, ok := l.Plan.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in lab %q", node, l.Name)
	}
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s is not a PostgreSQL node", node)
	}
	if !l.Backups() {
		return fmt.Errorf("lab %q has no backups (go run ./lab up --boot --backups)", l.Name)
	}
	return nil
}

// bootPgBackRest runs pgbackrest as postgres in the node's machine.
func (l *Lab) bootPgBackRest(ctx context.Context, node string, args ...string) ([]byte, error) {
	if err := l.bootPostgresNode(node); err != nil {
		return nil, err
	}
	m, err := l.bootMachine(node)
	if err != nil {
		return nil, err
	}
	p := userdata.CloudPaths()
	// As postgres, which logs in to the node's socket by peer.
	argv := append([]string{"runuser", "-u", "postgres", "--",
		"pgbackrest", "--config=" + p.PgBackRestConfig, "--stanza=" + l.Name}, args...)
	return m.Exec(ctx, argv...)
}

// bootRestoreDrill runs the node's pgha-restore-drill; its progress is
// shown only when it fails, so the answer comes back alone.
func (l *Lab) bootRestoreDrill(ctx context.Context, node string, target time.Time, database, query string) (string, error) {
	if err := l.bootPostgresNode(node); err != nil {
		return "", err
	}
	m, err := l.bootMachine(node)
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf(`log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! %s --target %s --database %s --query %s 2>"$log"; then
	cat "$log"
	exit 1
fi
`, userdata.RestoreDrillScript, shellQuote(target.UTC().Format("2006-01-02 15:04:05.000000+00")), shellQuote(database), shellQuote(query))
	out, err := m.RunScript(ctx, script)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
