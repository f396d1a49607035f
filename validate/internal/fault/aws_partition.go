package fault

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/outputs"
)

// awsPartition cuts a node off the network with nftables, keeping only SSH
// from the jump host so that validate can heal it. Before any rule goes in,
// a timer on the node itself is armed to remove them after a bound: a
// validate that dies or loses its connection never leaves a node cut off.
type awsPartition struct {
	remote Remote
	host   func(outputs.Node) access.Host
	spec   PartitionSpec
}

func (*awsPartition) Name() string { return Partition }

// PartitionSpec shapes the partition.
type PartitionSpec struct {
	// Table is the nftables table (inet family) that holds every rule, so
	// one delete undoes all of it.
	Table string
	// Bound is when the node heals itself, counted from Inject.
	Bound time.Duration
	// StateDir keeps the fallback timer's PID on the node.
	StateDir string
}

// DefaultPartitionSpec is what validate uses on AWS. Five minutes is well
// past any failover and rejoin bound, and short enough that a lost run
// costs little.
func DefaultPartitionSpec() PartitionSpec {
	return PartitionSpec{Table: "pgha_partition", Bound: 5 * time.Minute, StateDir: "/run"}
}

func (p PartitionSpec) healUnit() string { return p.Table + "-heal" }
func (p PartitionSpec) pidFile() string  { return p.StateDir + "/" + p.Table + "-heal.pid" }

// PartitionScript arms the self-heal, then installs the rules in one nft
// transaction. jump is the address the node sees SSH come from.
func PartitionScript(p PartitionSpec, jump netip.Addr) string {
	fam := "ip"
	if jump.Is6() {
		fam = "ip6"
	}
	secs := int(p.Bound.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprintf(`set -eu
table=%[1]s unit=%[2]s pidfile=%[3]s bound=%[4]d
nft=$(command -v nft) || { echo "nft is not installed on this node (apt-get install nftables)" >&2; exit 3; }
# 1. The self-heal comes first: if anything below fails, or validate is
# lost, the node still heals itself after the bound. A systemd timer only
# where systemd runs in this node's own network namespace (an EC2 node, a
# booted lab machine): a systemd of another namespace would heal its own.
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 &&
	[ "$(readlink /proc/1/ns/net)" = "$(readlink /proc/self/ns/net)" ]; then
	systemctl stop "$unit.timer" >/dev/null 2>&1 || true
	systemctl reset-failed "$unit.service" "$unit.timer" >/dev/null 2>&1 || true
	systemd-run --quiet --unit="$unit" --on-active="${bound}s" --timer-property=AccuracySec=1s \
		"$nft" delete table inet "$table"
	echo "self-heal: systemd timer $unit in ${bound}s"
else
	if [ -f "$pidfile" ]; then kill -- "-$(cat "$pidfile")" 2>/dev/null || true; fi
	# The timer forgets its PID file when it fires, so a later heal never
	# signals a process group that has since been reused.
	setsid sh -c "sleep $bound; \"$nft\" delete table inet $table; rm -f \"$pidfile\"" </dev/null >/dev/null 2>&1 &
	echo $! > "$pidfile"
	echo "self-heal: background timer (pid $!) in ${bound}s"
fi
# 2. The partition: all traffic dropped both ways except SSH with the
# jump host. Creating and deleting the table first replaces any old one in
# the same transaction.
"$nft" -f - <<PGHA_RULES
table inet $table
delete table inet $table
table inet $table {
	chain input {
		type filter hook input priority -10; policy drop;
		iifname "lo" accept
		%[5]s saddr %[6]s tcp dport 22 accept
	}
	chain output {
		type filter hook output priority -10; policy drop;
		oifname "lo" accept
		%[5]s daddr %[6]s tcp sport 22 accept
	}
}
PGHA_RULES
echo "partitioned: only SSH with %[6]s passes"
`, nodefault.Quote(p.Table), nodefault.Quote(p.healUnit()), nodefault.Quote(p.pidFile()), secs, fam, jump.String())
}

// HealScript removes the rules and disarms the self-heal. Running it on a
// node that is not partitioned is harmless.
func HealScript(p PartitionSpec) string {
	return fmt.Sprintf(`set -u
table=%[1]s unit=%[2]s pidfile=%[3]s
nft=$(command -v nft || echo nft)
"$nft" delete table inet "$table" 2>/dev/null || true
if [ -d /run/systemd/system ]; then
	systemctl stop "$unit.timer" >/dev/null 2>&1 || true
	systemctl reset-failed "$unit.service" "$unit.timer" >/dev/null 2>&1 || true
fi
if [ -f "$pidfile" ]; then
	kill -- "-$(cat "$pidfile")" 2>/dev/null || true
	rm -f "$pidfile"
fi
if "$nft" list table inet "$table" >/dev/null 2>&1; then
	echo "table $table is still there" >&2
	exit 1
fi
echo healed
`, nodefault.Quote(p.Table), nodefault.Quote(p.healUnit()), nodefault.Quote(p.pidFile()))
}

// jumpAddr asks the node where its SSH connection comes from: that is the
// jump host's address as the node sees it, the one SSH must stay open to.
func jumpAddr(ctx context.Context, r Remote, h access.Host) (netip.Addr, error) {
	out, err := r.Run(ctx, h, `echo "${SSH_CLIENT%% *}"`, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("could not tell the jump host's address from SSH_CLIENT %q", strings.TrimSpace(out))
	}
	return a.Unmap(), nil
}

func (f *awsPartition) Inject(ctx context.Context, n outputs.Node) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	h := f.host(n)
	jump, err := jumpAddr(ctx, f.remote, h)
	if err != nil {
		return fmt.Errorf("partition %s: %w", n.Name, err)
	}
	if _, err := f.remote.RunRoot(ctx, h, PartitionScript(f.spec, jump)); err != nil {
		return fmt.Errorf("partition %s: %w", n.Name, err)
	}
	return nil
}

func (f *awsPartition) Restore(ctx context.Context, n outputs.Node) error {
	if _, err := f.remote.RunRoot(ctx, f.host(n), HealScript(f.spec)); err != nil {
		return fmt.Errorf("heal %s (it heals itself within %s anyway): %w", n.Name, f.spec.Bound, err)
	}
	return nil
}

// NewAWSPartition is the partition fault with its own spec and login
// mapping, for running it on hosts other than a stack's (the lab's tests).
func NewAWSPartition(r Remote, host func(outputs.Node) access.Host, spec PartitionSpec) Fault {
	return &awsPartition{remote: r, host: host, spec: spec}
}
