package fault

import (
	"context"
	"fmt"
	"strings"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
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

// KillSpec says what to kill on a node.
type KillSpec struct {
	Unit    string // systemd unit whose main PID dies (patroni, etcd, haproxy)
	Match   string // pgrep -f pattern used when systemd does not know the PID
	DataDir string // PostgreSQL data directory: its postmaster.pid is killed too
}

// killSpecFor maps a node's role to what runs on it on EC2.
func killSpecFor(role topology.Role, p userdata.Paths) (KillSpec, error) {
	switch role {
	case topology.RolePatroni:
		return KillSpec{Unit: "patroni", Match: "bin/patroni " + p.PatroniConfigFile, DataDir: p.PGDataDir}, nil
	case topology.RoleEtcd:
		return KillSpec{Unit: "etcd", Match: "bin/etcd "}, nil
	case topology.RoleHAProxy:
		return KillSpec{Unit: "haproxy", Match: "sbin/haproxy "}, nil
	}
	return KillSpec{}, fmt.Errorf("kill: node role %q is not one of patroni, etcd, haproxy", role)
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// holdDropIn is the runtime drop-in that keeps a killed unit down: Debian's
// units restart their daemon after a crash (patroni and haproxy on-failure,
// etcd on-abnormal), within a tenth of a second, and a Patroni back that
// fast still holds its leader lock, so nothing would fail over. A fault
// that loses the node keeps it lost until Restore.
func holdDropIn(unit string) string { return "/run/systemd/system/" + unit + ".service.d/pgha-fault.conf" }

// KillScript SIGKILLs the daemon and the postmaster back to back, so that
// neither has time to react to the other going first. Under systemd it
// first stops the unit from restarting them (holdDropIn).
func KillScript(k KillSpec) string {
	return fmt.Sprintf(`set -u
unit=%s match=%s datadir=%s hold=%s
pid=
if [ -d /run/systemd/system ]; then
	mkdir -p "$(dirname "$hold")"
	printf '[Service]\nRestart=no\n' >"$hold"
	systemctl daemon-reload
	pid=$(systemctl show --property MainPID --value "$unit.service" 2>/dev/null || true)
fi
if [ -z "$pid" ] || [ "$pid" = 0 ]; then
	pid=$(pgrep -o -f -- "$match" || true)
fi
pm=
if [ -n "$datadir" ] && [ -r "$datadir/postmaster.pid" ]; then
	pm=$(head -n 1 "$datadir/postmaster.pid")
fi
pids=
for p in $pid $pm; do
	case $p in ''|0|*[!0-9]*) ;; *) pids="$pids $p" ;; esac
done
if [ -z "$pids" ]; then
	echo "nothing to kill: $unit is not running and there is no postmaster.pid" >&2
	exit 3
fi
killed=
for p in $pids; do
	kill -KILL "$p" 2>/dev/null && killed="$killed $p"
done
if [ -z "$killed" ]; then
	echo "nothing to kill: no process left of$pids" >&2
	exit 3
fi
echo "killed$killed"
`, shQuote(k.Unit), shQuote(k.Match), shQuote(k.DataDir), shQuote(holdDropIn(k.Unit)))
}

// RestartScript lets the unit restart again and starts it; systemd is what
// brings a crashed daemon back on EC2.
func RestartScript(k KillSpec) string {
	return fmt.Sprintf(`set -u
unit=%s hold=%s
if [ ! -d /run/systemd/system ]; then
	echo "cannot restart $unit: this host does not run systemd" >&2
	exit 3
fi
if [ -e "$hold" ]; then
	rm -f "$hold"
	systemctl daemon-reload
fi
systemctl reset-failed "$unit.service" 2>/dev/null || true
systemctl start "$unit.service"
`, shQuote(k.Unit), shQuote(holdDropIn(k.Unit)))
}

func (f *awsKill) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	k, err := killSpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), KillScript(k)); err != nil {
		return fmt.Errorf("kill %s: %w", n.Name, err)
	}
	return nil
}

func (f *awsKill) Restore(ctx context.Context, n outputs.Node) error {
	k, err := killSpecFor(n.Role, f.paths)
	if err != nil {
		return err
	}
	if _, err := f.remote.RunRoot(ctx, f.host(n), RestartScript(k)); err != nil {
		return fmt.Errorf("restart %s on %s: %w", k.Unit, n.Name, err)
	}
	return nil
}
