package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/roll"
	"github.com/pgha/pgha/internal/switchover"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/boot"
	"github.com/pgha/pgha/lab/image"
	"github.com/pgha/pgha/lab/machine"
	"github.com/pgha/pgha/userdata"
)

// ErrReplaceLeader refuses to replace the Patroni leader: the runbook
// switches over first, so the replacement costs one switchover gap, not a
// failover.
var ErrReplaceLeader = errors.New("is the Patroni leader; switch over first (or pass --force for a failover)")

// ReplaceResult says how long each step of a replacement took.
type ReplaceResult struct {
	Removed time.Duration // the old machine gone, with everything on it
	Ready   time.Duration // launch → the new node's ready marker
	Whole   time.Duration // launch → 1 leader + 2 streaming, etcd 3/3
	// HostKeys are the new machine's: a replaced instance has new ones.
	HostKeys []string
}

// Replace does to a booted node what `pulumi up` does to an instance it
// replaces (delete-before-replace, the same address and user data, the
// same data volume): the machine and its root disk are destroyed, a new
// machine is created from the image with the node's data volume attached
// and boots the same user data, and the cluster is waited on until it is
// whole again. The outputs then carry the new host keys. The data volume
// survives: etcd restarts as the same member with its data, PostgreSQL
// comes back with its database and catches up by streaming (or pg_rewind),
// not by a full copy from the leader.
func (l *Lab) Replace(ctx context.Context, node string, force bool) (ReplaceResult, error) {
	var res ReplaceResult
	n, err := l.node(node)
	if err != nil {
		return res, err
	}
	if !l.Boot() {
		return res, fmt.Errorf("replace needs a booted lab (go run ./lab up --boot): only there does a node have a machine to replace")
	}
	p, err := l.Probe()
	if err != nil {
		return res, err
	}
	if n.Role == topology.RolePatroni && !force {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cl, err := p.Cluster(cctx)
		cancel()
		if err != nil {
			return res, fmt.Errorf("cannot tell whether %s leads: %w", node, err)
		}
		if lead, ok := cl.Leader(); ok && lead.Name == node {
			return res, fmt.Errorf("%s %w", node, ErrReplaceLeader)
		}
	}
	st, err := boot.LoadState(l.bootDir("aws", "state.json"))
	if err != nil {
		return res, err
	}
	img, err := image.Build(ctx, image.Options{Packages: userdata.AllPackages(), Progress: l.Log})
	if err != nil {
		return res, err
	}

	t := time.Now()
	// EC2 shuts an instance down before it terminates it (and the data
	// volume's attachment stops it before detaching): PostgreSQL and etcd
	// stop cleanly, and the volume is unmounted, before the machine goes.
	if m, err := machine.Open(l.machineDir(node)); err == nil && m.Running() {
		if err := m.Poweroff(90 * time.Second); err != nil {
			fmt.Fprintf(l.Log, "replace %s: %v\n", node, err)
		}
	}
	if err := machine.RemoveState(l.machineDir(node)); err != nil {
		return res, fmt.Errorf("removing %s's machine: %w", node, err)
	}
	res.Removed = time.Since(t)
	fmt.Fprintf(l.Log, "replace %s: old machine shut down and removed in %.1fs; booting a new one from the same user data\n", node, res.Removed.Seconds())

	launched, err := l.launch(ctx, st, img, n)
	if err != nil {
		return res, err
	}
	// The jump host is haproxy-1, unless it is the node being replaced.
	jump := l.Plan.ByRole(topology.RoleHAProxy)[0]
	if jump.Name == node {
		jump = l.Plan.ByRole(topology.RoleHAProxy)[1]
	}
	// The gate's cluster check runs on pg-1, which it waits for too (at
	// once, when pg-1 is not the node replaced).
	wait := []topology.Node{n}
	if pg1 := l.Plan.ByRole(topology.RolePatroni)[0]; pg1.Name != node {
		wait = append(wait, pg1)
	}
	ready, err := l.readiness(ctx, wait, jump, 15*time.Minute)
	if err != nil {
		return res, fmt.Errorf("the new %s: %w", node, err)
	}
	res.Ready = time.Since(launched)
	res.HostKeys = ready.HostKeys[node]
	// Recorded at once: the machine is new whatever the cluster does next.
	if err := l.recordHostKeys(node, res.HostKeys); err != nil {
		return res, err
	}
	if err := waitFor(ctx, 5*time.Minute, func(ctx context.Context) error {
		if err := p.Etcd(ctx).Err(); err != nil {
			return err
		}
		return p.Formation(ctx).Err()
	}); err != nil {
		return res, fmt.Errorf("after replacing %s the cluster is not whole: %w", node, err)
	}
	res.Whole = time.Since(launched)
	return res, nil
}

// recordHostKeys puts a replaced node's new host keys in the outputs, as
// the readiness gate of `pulumi up` does, so validate's pinned SSH keeps
// working.
func (l *Lab) recordHostKeys(node string, keys []string) error {
	s, err := outputs.Load(l.OutputsFile())
	if err != nil {
		return err
	}
	for i := range s.Nodes {
		if s.Nodes[i].Name == node {
			s.Nodes[i].HostKeys = keys
		}
	}
	if l.Plan.ByRole(topology.RoleHAProxy)[0].Name == node {
		s.Access.JumpHostKeys = keys
	}
	return s.Write(l.OutputsFile())
}

// Roll replaces every node of a booted lab, one at a time in roll.Order,
// each step gated on the cluster being whole: what the runbook's image
// roll does on AWS, acted out on machines.
func (l *Lab) Roll(ctx context.Context) ([]roll.Done, error) {
	if !l.Boot() {
		return nil, fmt.Errorf("roll needs a booted lab (go run ./lab up --boot)")
	}
	p, err := l.Probe()
	if err != nil {
		return nil, err
	}
	f := p.Formation(ctx)
	if err := f.Err(); err != nil {
		return nil, fmt.Errorf("the cluster is not whole before the roll: %w", err)
	}
	steps, err := roll.Order(l.Plan, f.Leader.Name, f.Sync)
	if err != nil {
		return nil, err
	}
	return roll.Run(ctx, labRoll{l, p}, steps, 5*time.Minute, l.Log)
}

// labRoll is the booted lab as a roll acts on it.
type labRoll struct {
	l *Lab
	p *probe.Probe
}

func (r labRoll) Replace(ctx context.Context, node string) error {
	res, err := r.l.Replace(ctx, node, false)
	if err == nil {
		fmt.Fprintf(r.l.Log, "  %s replaced: new machine ready %.1fs, cluster whole %.1fs after launch\n", node, res.Ready.Seconds(), res.Whole.Seconds())
	}
	return err
}

func (r labRoll) Whole(ctx context.Context) error {
	if err := r.p.Etcd(ctx).Err(); err != nil {
		return err
	}
	return r.p.Formation(ctx).Err()
}

// Switchover is roll.HandOver, the one switchover of a roll, held behind
// the poolers (switchover.Switcher) so that their clients see no error.
func (r labRoll) Switchover(ctx context.Context, leader string) (string, error) {
	logf := func(format string, a ...any) { fmt.Fprintf(r.l.Log, "  "+format+"\n", a...) }
	return roll.HandOver(ctx, switchover.Switcher{Probe: r.p, Logf: logf}, leader, time.Minute)
}
