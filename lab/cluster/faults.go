package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/topology"
)

// The faults a person (go run ./lab kill pg-1) or validate can inject. Each
// one acts on a single node and is undone by Start or Heal.

func (l *Lab) node(name string) (topology.Node, error) {
	n, ok := l.Plan.Node(name)
	if !ok {
		var names []string
		for _, x := range l.Plan.Nodes {
			names = append(names, x.Name)
		}
		return n, fmt.Errorf("no node %q in lab %q; nodes are %v", name, l.Name, names)
	}
	if !l.Exists() {
		return n, fmt.Errorf("lab %q is not up; start it with: go run ./lab up --name %s", l.Name, l.Name)
	}
	return n, nil
}

// Kill crashes a node: SIGKILL to its daemon and, on a PostgreSQL node, to
// the postmaster too (Patroni runs it detached, so killing Patroni alone
// would leave PostgreSQL serving).
func (l *Lab) Kill(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if l.Boot() {
		return l.bootKill(ctx, n)
	}
	return l.killNode(node)
}

// KillPostgres crashes PostgreSQL alone while Patroni lives.
func (l *Lab) KillPostgres(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s runs no PostgreSQL", node)
	}
	if l.Boot() {
		return l.bootKillPostgres(ctx, n)
	}
	pm, ok := l.postmaster(node)
	if !ok {
		return fmt.Errorf("%s: no running postmaster found", node)
	}
	return pm.Kill()
}

// Stop shuts a node down cleanly, as a shutdown of the host would: SIGTERM,
// and SIGKILL only after a grace period.
func (l *Lab) Stop(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if l.Boot() {
		return l.bootStop(ctx, n)
	}
	return l.stopNode(node, 30*time.Second)
}

// Start restarts a stopped or killed node with the files it had.
func (l *Lab) Start(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if l.Boot() {
		return l.bootStart(ctx, n)
	}
	return l.startDaemon(n)
}

// ErrNoPartition is why a loopback lab offers no partition fault.
var ErrNoPartition = errors.New("a loopback lab cannot partition a node: every node shares the host's network stack (lo), so there is no link to cut; bring the lab up as root with --net netns for real partitions")

// PartitionUnavailable says why this lab cannot partition a node, or nil
// when it can. validate's fault registry asks it, whatever the access path.
func (l *Lab) PartitionUnavailable() error {
	if l.Loopback() {
		return ErrNoPartition
	}
	return nil
}

// Partition cuts the node's link at the bridge: it keeps running and keeps
// its address, but no packet reaches it or leaves it.
func (l *Lab) Partition(ctx context.Context, node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	if err := l.PartitionUnavailable(); err != nil {
		return err
	}
	return l.Net.Cut(node)
}

// Heal reconnects a partitioned node. In a loopback lab nothing is ever
// cut, so there is nothing to heal.
func (l *Lab) Heal(ctx context.Context, node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	if l.Loopback() {
		return nil
	}
	return l.Net.Heal(node)
}

// Partitioned reports whether a node's link is cut.
func (l *Lab) Partitioned(node string) (bool, error) {
	if _, err := l.node(node); err != nil {
		return false, err
	}
	if l.Loopback() {
		return false, nil
	}
	return l.Net.IsCut(node)
}
