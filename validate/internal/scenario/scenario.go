// Package scenario is the resilience matrix: named failure stories (the
// leader killed, its node stopped or partitioned, PostgreSQL alone
// crashing, a replica, an etcd member, etcd's quorum or an HAProxy node
// lost, two failovers in a row, a switchover under heavy load), each in its
// own file. Every scenario runs under write and read traffic and is judged
// the same way: no acknowledged write lost, never two primaries at one
// instant, the acknowledged writes form a single history, and the cluster is
// back to one leader and two streaming replicas at the end.
//
// The package knows nothing of validate's command line. validate adapts its
// own machinery (health checks, dialers, the restorer) to Env and runs
// scenarios as checks, so the verdicts land in the same report.
package scenario

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/validate/internal/fault"
)

// Scenario is one failure story.
type Scenario struct {
	Name  string // as typed after --scenario
	Title string
	// Proves says in one line what a pass demonstrates.
	Proves string
	// Story breaks something, waits for the outcome it expects, asserts it
	// with r.Failf, and puts back what it broke (through r.Inject's undo).
	// The harness around it runs traffic, the poller and the common checks.
	Story func(ctx context.Context, r *Run)
}

var registry = map[string]Scenario{}

// order is the numbering, so --all-scenarios runs them in a
// sensible sequence (and the report lists them so).
var order []string

// Register adds a scenario; each scenario file calls it from init.
func Register(s Scenario) {
	if _, dup := registry[s.Name]; dup {
		panic("scenario registered twice: " + s.Name)
	}
	registry[s.Name] = s
	order = append(order, s.Name)
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i]) < rank(order[j]) })
}

// Names lists every scenario in run order.
func Names() []string { return append([]string(nil), order...) }

// Get returns a scenario by name.
func Get(name string) (Scenario, bool) {
	s, ok := registry[name]
	return s, ok
}

// rank keeps the order (1..10) whatever the file init order is.
func rank(name string) int {
	for i, n := range []string{"leader-kill", "leader-stop", "leader-partition", "postgres-crash", "replica-lost",
		"etcd-member-lost", "etcd-quorum-lost", "haproxy-lost", "double-failover", "switchover-load"} {
		if n == name {
			return i
		}
	}
	return 100
}

// Env is what a scenario needs from the tool that runs it.
type Env interface {
	Stack() outputs.Stack
	// Dial reaches the cluster's private addresses (as validate does).
	Dial() access.DialFunc
	Patroni() *patroni.Client
	// Switchover asks for a switchover and waits for Patroni's answer.
	Switchover(ctx context.Context, host, leader, candidate string) (string, error)
	Faults() (fault.Set, error)
	// Healthy waits up to bound until etcd has 3 healthy members and one
	// leader, and Patroni 1 leader + 2 streaming replicas on one timeline
	// (with a sync standby in synchronous mode).
	Healthy(ctx context.Context, bound time.Duration) (Formation, error)
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
}

// Formation is a healthy cluster as Env.Healthy saw it.
type Formation struct {
	Leader   patroni.Member
	Replicas []patroni.Member
	Sync     string // the synchronous standby, in synchronous mode
	Timeline int
}

// Replica returns the first replica that is (or is not) the sync standby.
func (f Formation) Replica(sync bool) (patroni.Member, bool) {
	for _, r := range f.Replicas {
		if (r.Name == f.Sync) == sync {
			return r, true
		}
	}
	return patroni.Member{}, false
}

// node finds a stack node by name.
func node(s outputs.Stack, name string) (outputs.Node, error) {
	n, ok := s.NodeByName(name)
	if !ok {
		return n, fmt.Errorf("%s is not a node of the stack outputs", name)
	}
	return n, nil
}
