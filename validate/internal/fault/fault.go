// Package fault breaks one node of a cluster on purpose and puts it back.
//
// Each kind of fault lives in its own file behind the small Fault interface,
// the way etcd's robustness tests keep their failpoints. Which faults a
// target offers is decided by providers: the lab registers its own (lab_*.go)
// and the AWS faults register theirs (aws_*.go), each for the targets it can
// serve. validate asks ForTarget and never needs to know the difference.
package fault

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/pgha/pgha/internal/outputs"
)

// Fault is one way to break a node.
type Fault interface {
	// Name is the fault kind as the user types it: kill, stop, partition.
	Name() string
	// Inject breaks the node. It returns once the fault is in effect.
	Inject(ctx context.Context, node outputs.Node) error
	// Restore undoes Inject: the node runs and is reachable again. It must be
	// safe to call when Inject failed half-way or was never called.
	Restore(ctx context.Context, node outputs.Node) error
}

// Kind names.
const (
	Kill      = "kill"      // SIGKILL Patroni and PostgreSQL (a crash)
	Stop      = "stop"      // stop the whole node (or instance)
	Partition = "partition" // cut the node off the network
)

// Set is the faults a target supports, by name.
type Set map[string]Fault

// Unavailable stands in a Set for a kind the target cannot offer, so that
// asking for it says why (a loopback lab has no link to cut) instead of
// only "not available". It is not listed by Names and Get never returns it.
type Unavailable struct {
	Kind   string
	Reason error
}

func (u Unavailable) Name() string { return u.Kind }

func (u Unavailable) Inject(context.Context, outputs.Node) error {
	return fmt.Errorf("fault %q: %w", u.Kind, u.Reason)
}

func (u Unavailable) Restore(context.Context, outputs.Node) error { return nil }

// Names lists the faults on offer, sorted.
func (s Set) Names() []string {
	var out []string
	for n, f := range s {
		if _, no := f.(Unavailable); !no {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Get returns the named fault or an error that lists what the target offers
// (and, for a kind it cannot offer, why).
func (s Set) Get(name string) (Fault, error) {
	if f, ok := s[name]; ok {
		if u, no := f.(Unavailable); no {
			return nil, fmt.Errorf("fault %q is not available for this target: %v; choose one of: %s", name, u.Reason, strings.Join(s.Names(), ", "))
		}
		return f, nil
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("fault %q: this target offers no faults", name)
	}
	return nil, fmt.Errorf("fault %q is not available for this target; choose one of: %s", name, strings.Join(s.Names(), ", "))
}

// Provider returns the faults it offers for a stack, or ok=false when the
// stack is not one it serves.
type Provider func(s outputs.Stack) (set Set, ok bool, err error)

var (
	mu        sync.Mutex
	providers []namedProvider
)

type namedProvider struct {
	name string
	p    Provider
}

// Register adds a provider. Call it from init in the provider's file.
func Register(name string, p Provider) {
	mu.Lock()
	defer mu.Unlock()
	providers = append(providers, namedProvider{name, p})
}

// ForTarget returns the faults for a stack: those of the first registered
// provider that serves it.
func ForTarget(s outputs.Stack) (Set, error) {
	mu.Lock()
	ps := append([]namedProvider(nil), providers...)
	mu.Unlock()
	var names []string
	for _, np := range ps {
		names = append(names, np.name)
		set, ok, err := np.p(s)
		if err != nil {
			return nil, fmt.Errorf("%s faults: %w", np.name, err)
		}
		if ok {
			return set, nil
		}
	}
	return nil, fmt.Errorf("no fault provider serves target %q with access %q (have: %s)",
		s.Target, s.Access.Kind, strings.Join(names, ", "))
}
