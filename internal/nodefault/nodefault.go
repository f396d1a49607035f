// Package nodefault holds the shell scripts that break and mend a daemon on
// a node booted from the user data: validate's AWS faults run them over
// SSH, the booted lab inside its machines, so both act out a crash the same
// way; and the restore drill's runner, shared the same way.
package nodefault

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// KillSpec says what to kill on a node.
type KillSpec struct {
	Unit    string // systemd unit whose main PID dies (patroni, etcd, haproxy)
	Match   string // pgrep -f pattern used when systemd does not know the PID
	DataDir string // PostgreSQL data directory: its postmaster.pid is killed too
}

// SpecFor maps a node's role to what runs on it, at the paths p.
func SpecFor(role topology.Role, p userdata.Paths) (KillSpec, error) {
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

// Quote makes s one shell word.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// HoldDropIn is the runtime drop-in that keeps a killed unit down: Debian's
// units restart their daemon after a crash (patroni and haproxy on-failure,
// etcd on-abnormal), within a tenth of a second, and a Patroni back that
// fast still holds its leader lock, so nothing would fail over. A fault
// that loses the node keeps it lost until RestartScript. Under /run, so a
// reboot forgets it.
func HoldDropIn(unit string) string {
	return "/run/systemd/system/" + unit + ".service.d/pgha-fault.conf"
}

// KillScript SIGKILLs the daemon and the postmaster back to back, so that
// neither has time to react to the other going first. Under systemd it
// first stops the unit from restarting them (HoldDropIn). It exits 3 when
// there is nothing to kill.
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
`, Quote(k.Unit), Quote(k.Match), Quote(k.DataDir), Quote(HoldDropIn(k.Unit)))
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
`, Quote(k.Unit), Quote(HoldDropIn(k.Unit)))
}

// KillPostgresScript SIGKILLs the postmaster of datadir, and nothing else:
// Patroni lives and decides to restart it or fail over. It exits 3 when
// PostgreSQL is not running.
func KillPostgresScript(datadir string) string {
	return fmt.Sprintf(`set -u
datadir=%s
pm=
[ -r "$datadir/postmaster.pid" ] && pm=$(head -n 1 "$datadir/postmaster.pid")
case $pm in ''|0|*[!0-9]*) echo "no postmaster.pid in $datadir: PostgreSQL is not running" >&2; exit 3 ;; esac
kill -KILL "$pm"
echo "killed $pm"
`, Quote(datadir))
}

// RestoreDrillRun is a root shell script that runs the node's
// pgha-restore-drill to target and prints the query's answer alone: the
// drill's progress goes to a file, shown only when it fails. validate runs
// it over SSH, the booted lab in the machine.
func RestoreDrillRun(target time.Time, database, query string) string {
	return fmt.Sprintf(`log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! %s --target %s --database %s --query %s 2>"$log"; then
	cat "$log"
	exit 1
fi
`, userdata.RestoreDrillScript, Quote(target.UTC().Format("2006-01-02 15:04:05.000000+00")), Quote(database), Quote(query))
}
