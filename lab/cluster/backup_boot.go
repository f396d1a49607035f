package cluster

import (
	"context"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/userdata"
)

// On a booted lab the backup tools are the nodes' own, as on AWS: pgbackrest
// with the node's /etc/pgbackrest.conf (the instance role's credentials
// from the metadata service), and the pgha-restore-drill its user data
// installed.

// bootPgBackRest runs pgbackrest as postgres in the node's machine.
func (l *Lab) bootPgBackRest(ctx context.Context, node string, args ...string) ([]byte, error) {
	if err := l.backupNode(node); err != nil {
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
	if err := l.backupNode(node); err != nil {
		return "", err
	}
	m, err := l.bootMachine(node)
	if err != nil {
		return "", err
	}
	script := nodefault.RestoreDrillRun(target, database, query)
	out, err := m.RunScript(ctx, script)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
