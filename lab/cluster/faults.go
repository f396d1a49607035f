package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/topology"
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
	if _, err := l.node(node); err != nil {
		return err
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
	pm, ok := l.postmaster(node)
	if !ok {
		return fmt.Errorf("%s: no running postmaster found", node)
	}
	return pm.Kill()
}

// Stop shuts a node down cleanly, as a shutdown of the host would: SIGTERM,
// and SIGKILL only after a grace period.
func (l *Lab) Stop(ctx context.Context, node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	return l.stopNode(node, 30*time.Second)
}

// Start restarts a stopped or killed node with the files it had.
func (l *Lab) Start(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	return l.startDaemon(n)
}

// Partition cuts the node's link at the bridge: it keeps running and keeps
// its address, but no packet reaches it or leaves it.
func (l *Lab) Partition(ctx context.Context, node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	return l.Net.Cut(node)
}

// Heal reconnects a partitioned node.
func (l *Lab) Heal(ctx context.Context, node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	return l.Net.Heal(node)
}

// Partitioned reports whether a node's link is cut.
func (l *Lab) Partitioned(node string) (bool, error) {
	if _, err := l.node(node); err != nil {
		return false, err
	}
	return l.Net.IsCut(node)
}
