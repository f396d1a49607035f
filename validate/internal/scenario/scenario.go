// Package scenario is the one engine that breaks the cluster under traffic:
// validate's switchover and failover checks, the resilience matrix (the
// leader killed, its node stopped or partitioned, PostgreSQL alone
// crashing, a replica, an etcd member, etcd's quorum or an HAProxy node
// lost, two failovers in a row, a switchover under heavy load) and the
// benchmark's trials are all stories run by Execute. Every story runs under
// write and read traffic with every Patroni node polled, and is judged the
// same way (package judge, on the evidence alone): no acknowledged write
// lost, never two primaries at one instant, the acknowledged writes form a
// single history, writes come back, and the cluster is back to one leader
// and two streaming replicas, routed by HAProxy, at the end.
//
// The package knows nothing of validate's command line. validate adapts its
// own machinery (dialers, the restorer) to Env and runs stories as checks,
// so the verdicts land in the same report.
package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/validate/internal/fault"
)

// Scenario is one failure story.
type Scenario struct {
	Name  string // as typed after --scenario
	Title string
	// Proves says in one line what a pass demonstrates.
	Proves string
	// Planned marks a story the operator asks for (a switchover): then not
	// even asynchronous replication may lose an acknowledged write.
	Planned bool
	// Story breaks something, waits for the outcome it expects, asserts it
	// with r.Failf, and puts back what it broke (through r.Inject's undo).
	// Execute runs the traffic, the poller and the common judgement.
	Story func(ctx context.Context, r *Run)
}

// All is the resilience matrix, in the order --all-scenarios runs it.
var All = []Scenario{
	leaderKill, leaderStop, leaderPartition, postgresCrash, replicaLost,
	etcdMemberLost, etcdQuorumLost, haproxyLost, doubleFailover, switchoverLoad,
}

// Names lists every scenario of the matrix in run order.
func Names() []string {
	var out []string
	for _, s := range All {
		out = append(out, s.Name)
	}
	return out
}

// Get returns a scenario of the matrix by name.
func Get(name string) (Scenario, bool) {
	for _, s := range All {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Env is what a story needs from the tool that runs it.
type Env interface {
	Stack() outputs.Stack
	// Dial reaches the cluster's private addresses (as validate does).
	Dial() access.DialFunc
	// Probe looks at etcd, Patroni and HAProxy through Dial.
	Probe() *probe.Probe
	// Switchover asks for a switchover and waits for Patroni's answer.
	Switchover(ctx context.Context, host, leader, candidate string) (string, error)
	Faults() (fault.Set, error)
	// Restore registers how to undo what is about to be broken, so it is
	// undone even on failure or Ctrl-C; the returned func undoes it now.
	Restore(what string, fn func(context.Context) error) func() error
	// Announce says what is about to be broken (and pauses on non-lab targets).
	Announce(ctx context.Context, what string) error
	Logf(format string, a ...any)
	Settings() Settings
	// RunID is unique per validate run; rows of different runs never mix.
	RunID() string
}

// Settings are the traffic and bound settings of the run.
type Settings struct {
	WriteInterval, ReadInterval, OpTimeout time.Duration
	// FailoverBound: a new leader must accept writes within it.
	FailoverBound time.Duration
	// RejoinBound: after a restore, the cluster is back to 1+2 within it.
	RejoinBound time.Duration
	// RoutingBound: after that, HAProxy routes right within it.
	RoutingBound time.Duration
}

// node finds a stack node by name.
func node(s outputs.Stack, name string) (outputs.Node, error) {
	n, ok := s.NodeByName(name)
	if !ok {
		return n, fmt.Errorf("%s is not a node of the stack outputs", name)
	}
	return n, nil
}
