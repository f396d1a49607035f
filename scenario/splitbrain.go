package scenario

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/access"
	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/outputs"
	"github.com/pgha/pgha/patroni"
)

// Round is one poll of GET /primary on every Patroni node, the requests
// sent together. Patroni answers 200 only on the member that runs as the
// primary and holds the leader role; it is the check HAProxy routes 5000 by.
type Round struct {
	At          time.Time `json:"at"`
	Primaries   []string  `json:"primaries,omitempty"`   // answered 200
	Unreachable []string  `json:"unreachable,omitempty"` // no answer within the timeout
}

// SplitBrain is the verdict on the rounds of one scenario.
type SplitBrain struct {
	Rounds int `json:"rounds"`
	// Instants are the rounds in which two or more nodes answered 200.
	Instants []Round `json:"instants,omitempty"`
	// Blind counts rounds in which some node could not be asked: there the
	// detector cannot see, and the single-history check has to speak.
	Blind int `json:"blind"`
	// NoPrimary counts rounds without any primary (the failover window).
	NoPrimary int `json:"noPrimary"`
}

// DetectSplitBrain counts the rounds with more than one primary.
func DetectSplitBrain(rounds []Round) SplitBrain {
	sb := SplitBrain{Rounds: len(rounds)}
	for _, r := range rounds {
		if len(r.Primaries) > 1 {
			sb.Instants = append(sb.Instants, r)
		}
		if len(r.Unreachable) > 0 {
			sb.Blind++
		}
		if len(r.Primaries) == 0 {
			sb.NoPrimary++
		}
	}
	return sb
}

// Problem describes the split brain, or "" when there was none.
func (sb SplitBrain) Problem(start time.Time) string {
	if len(sb.Instants) == 0 {
		return ""
	}
	first := sb.Instants[0]
	return fmt.Sprintf("two primaries at once in %d of %d polls of /primary, first at +%.3fs: %s",
		len(sb.Instants), sb.Rounds, first.At.Sub(start).Seconds(), strings.Join(first.Primaries, " and "))
}

// Poller asks every Patroni node GET /primary every Interval until stopped.
type Poller struct {
	Nodes    []string
	Interval time.Duration
	// Ask answers whether node is the primary; an error means no answer.
	Ask func(ctx context.Context, node string) (bool, error)

	mu     sync.Mutex
	rounds []Round
	cancel context.CancelFunc
	done   chan struct{}
}

// Start begins polling in the background.
func (p *Poller) Start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.Interval)
		defer t.Stop()
		for {
			p.round(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (p *Poller) round(ctx context.Context) {
	r := Round{At: time.Now()}
	type ans struct {
		node    string
		primary bool
		err     error
	}
	ch := make(chan ans, len(p.Nodes))
	for _, n := range p.Nodes {
		go func() {
			ok, err := p.Ask(ctx, n)
			ch <- ans{n, ok, err}
		}()
	}
	for range p.Nodes {
		a := <-ch
		switch {
		case a.err != nil:
			r.Unreachable = append(r.Unreachable, a.node)
		case a.primary:
			r.Primaries = append(r.Primaries, a.node)
		}
	}
	if ctx.Err() != nil {
		return // a round cut short by Stop proves nothing
	}
	sort.Strings(r.Primaries)
	sort.Strings(r.Unreachable)
	p.mu.Lock()
	p.rounds = append(p.rounds, r)
	p.mu.Unlock()
}

// Stop ends polling and returns every round.
func (p *Poller) Stop() []Round {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
	return p.Rounds()
}

// Rounds returns the rounds so far.
func (p *Poller) Rounds() []Round {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Round(nil), p.rounds...)
}

// primaryAsker asks /primary. In a namespace lab each node is asked from
// inside its own network namespace, so a partitioned node is still seen:
// that is where a split brain would hide. Elsewhere it goes through the
// run's dial path.
func primaryAsker(s outputs.Stack, dial access.DialFunc, base *patroni.Client, timeout time.Duration) (func(ctx context.Context, node string) (bool, error), string) {
	clients := map[string]*patroni.Client{}
	how := "through the client's network path"
	lab, _ := cluster.FromOutputs(s)
	for _, n := range s.ByRole("patroni") {
		d := dial
		if lab != nil {
			if nd, err := access.Netns(lab.Namespace(n.Name)); err == nil {
				d = nd
				how = "from inside each node's own network namespace (a partitioned node is still observed)"
			}
		}
		c := *base
		// A fresh connection per ask (HTTPClient disables keep-alives): an
		// old connection must not hide a node that became unreachable.
		c.HTTP = access.HTTPClient(d, timeout)
		clients[n.Name] = &c
	}
	return func(ctx context.Context, name string) (bool, error) {
		n, ok := s.NodeByName(name)
		c := clients[name]
		if !ok || c == nil {
			return false, fmt.Errorf("unknown node %s", name)
		}
		return c.IsPrimary(ctx, n.PrivateIP)
	}, how
}
