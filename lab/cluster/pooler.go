package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/userdata"
)

// PgBouncer on each HAProxy node, the clients' entry point in front of
// HAProxy's leader port, from the same rendered pgbouncer.ini the nodes
// get (lab paths): its own process and log beside HAProxy's, part of the
// node (a kill, stop or start of an HAProxy node acts on both).

// poolerRecord names the lab's record of a node's PgBouncer.
func poolerRecord(node string) string { return "pooler:" + node }

// PoolerLog is where a node's PgBouncer writes (its stderr).
func (l *Lab) PoolerLog(node string) string {
	return filepath.Join(l.NodeDir(node), "log", "pgbouncer.log")
}

// writePoolerFiles gives an HAProxy node's PgBouncer what the secrets
// fetch gives it on a node: its copy of the node's key and its auth_file,
// root's and readable by PgBouncer's group. The ini is one of the node's
// files (NodeFiles).
func (l *Lab) writePoolerFiles(n topology.Node, pw userdata.Passwords) error {
	p := l.Paths(n.Name)
	_, keyFile := l.NodeTLSFiles(n.Name)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return missingTLS(err)
	}
	u := userdata.PoolerUser
	if err := writeOwned(p.PgBouncerKeyFile, key, u+":"+u, 0o600); err != nil {
		return err
	}
	auth, err := userdata.RenderPgBouncerAuthFile(l.Spec(), pw)
	if err != nil {
		return err
	}
	return writeOwned(p.PgBouncerAuthFile, auth, "root:"+u, 0o640)
}

// poolerSpec is how a node's PgBouncer is launched: in the node's
// namespace, as Debian's unit runs it (postgres; PgBouncer refuses root),
// in the foreground so that the recorded PID is PgBouncer's.
func (l *Lab) poolerSpec(n topology.Node) proc.Spec {
	p := l.Paths(n.Name)
	var argv []string
	if !l.Loopback() {
		argv = []string{"ip", "netns", "exec", l.Namespace(n.Name)}
	}
	if !l.Unprivileged() {
		u := userdata.PoolerUser
		argv = append(argv, "setpriv", "--reuid="+u, "--regid="+u, "--init-groups", "--")
	}
	return proc.Spec{
		Argv: append(argv, "pgbouncer", p.PgBouncerConfigFile),
		Env:  []string{"PATH=" + basePath, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=/"},
		Dir:  "/", Log: l.PoolerLog(n.Name), Marker: p.PgBouncerConfigFile,
	}
}

// startPooler starts a node's PgBouncer unless it runs; the caller holds
// lock().
func (l *Lab) startPooler(n topology.Node) error {
	recs, err := l.records()
	if err != nil {
		return err
	}
	if r, ok := recs[poolerRecord(n.Name)]; ok && r.Alive() {
		return nil
	}
	s := l.poolerSpec(n)
	if p, err := lookBin(s.Argv[0]); err == nil {
		s.Argv[0] = p
	}
	fmt.Fprintf(logAppender(s.Log), "---- %s lab: starting %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(s.Argv, " "))
	r, err := proc.Start(s)
	if err != nil {
		return fmt.Errorf("%s: pgbouncer: %w", n.Name, err)
	}
	return l.saveRecord(poolerRecord(n.Name), r)
}

// pooler is a node's running PgBouncer.
func (l *Lab) pooler(node string) (proc.Record, bool) {
	recs, _ := l.records()
	r, ok := recs[poolerRecord(node)]
	return r, ok && r.Alive()
}

// waitPoolers waits until the application logs in through every
// HAProxy node's PgBouncer (SCRAM through its auth_query, TLS verified on
// both sides) and lands on the leader.
func (l *Lab) waitPoolers(ctx context.Context) error {
	p, err := l.Probe()
	if err != nil {
		return err
	}
	for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
		err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
			return l.poolerServes(ctx, n, p.App(n.IP.String(), topology.PortPooler).Config)
		})
		if err != nil {
			return fmt.Errorf("%s's PgBouncer (%s:%d): %w; last lines of %s:\n%s", n.Name, n.IP, topology.PortPooler, err,
				l.PoolerLog(n.Name), tail(l.PoolerLog(n.Name), 10))
		}
	}
	return nil
}

// poolerServes runs one transaction through a node's PgBouncer and checks
// that it ran on a writable server. Transaction pooling keeps no prepared
// statement: the simple protocol.
func (l *Lab) poolerServes(ctx context.Context, n topology.Node, config func() (*pgx.ConnConfig, error)) error {
	if _, ok := l.pooler(n.Name); !ok {
		return fmt.Errorf("not running")
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var replica bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&replica); err != nil {
		return err
	}
	if replica {
		return fmt.Errorf("reached a replica")
	}
	return nil
}

// PoolerHelp says where the poolers are and whether they run.
func (l *Lab) PoolerHelp() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nPgBouncer (clients' entry point, %s pooling, in front of HAProxy's %d):\n", l.Spec().Pooling(), topology.PortWrite)
	for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
		state := "stopped, log " + l.PoolerLog(n.Name)
		if r, ok := l.pooler(n.Name); ok {
			state = fmt.Sprintf("running (pid %d), log %s", r.PID, l.PoolerLog(n.Name))
		}
		if l.Boot() {
			state = "pgbouncer.service on the machine (its journal)"
		}
		fmt.Fprintf(&b, "  %s  %s  %s\n", hostPort(n.IP.String(), topology.PortPooler), n.Name, state)
	}
	return b.String()
}
