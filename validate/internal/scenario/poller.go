package scenario

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/validate/internal/history"
)

// Poller asks every Patroni node GET /primary every Interval until stopped.
type Poller struct {
	Nodes    []string
	Interval time.Duration
	// Ask answers whether node is the primary; an error means no answer.
	Ask func(ctx context.Context, node string) (bool, error)
	// Writable, when set, answers whether node's PostgreSQL takes writes;
	// an error (refused, shutting down, unreachable) counts as no.
	Writable func(ctx context.Context, node string) (bool, error)

	mu     sync.Mutex
	rounds []history.Round
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
	r := history.Round{At: time.Now()}
	type ans struct {
		node     string
		primary  bool
		err      error
		writable bool
	}
	ch := make(chan ans, len(p.Nodes))
	for _, n := range p.Nodes {
		go func() {
			a := ans{node: n}
			var wg sync.WaitGroup
			if p.Writable != nil {
				wg.Go(func() { a.writable, _ = p.Writable(ctx, n) })
			}
			a.primary, a.err = p.Ask(ctx, n)
			wg.Wait()
			ch <- a
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
		if a.writable {
			r.Writable = append(r.Writable, a.node)
		}
	}
	if ctx.Err() != nil {
		return // a round cut short by Stop proves nothing
	}
	sort.Strings(r.Primaries)
	sort.Strings(r.Unreachable)
	sort.Strings(r.Writable)
	p.mu.Lock()
	p.rounds = append(p.rounds, r)
	p.mu.Unlock()
}

// Stop ends polling and returns every round.
func (p *Poller) Stop() []history.Round {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
	return p.Rounds()
}

// Rounds returns the rounds so far.
func (p *Poller) Rounds() []history.Round {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]history.Round(nil), p.rounds...)
}

// nodeDialers gives the dial path to each Patroni node. In a namespace lab
// each node is reached from inside its own network namespace, so a
// partitioned node is still seen: that is where a split brain would hide.
// Elsewhere it is the run's dial path.
func nodeDialers(s outputs.Stack, dial access.DialFunc) (map[string]access.DialFunc, string) {
	dialers := map[string]access.DialFunc{}
	how := "through the client's network path"
	for _, n := range s.ByRole(topology.RolePatroni) {
		d := dial
		if n.Namespace != "" {
			if nd, err := access.Netns(n.Namespace); err == nil {
				d = nd
				how = "from inside each node's own network namespace (a partitioned node is still observed)"
			}
		}
		dialers[n.Name] = d
	}
	return dialers, how
}

// primaryAsker asks /primary of a node.
func primaryAsker(s outputs.Stack, dialers map[string]access.DialFunc, base *patroni.Client, timeout time.Duration) func(ctx context.Context, node string) (bool, error) {
	clients := map[string]*patroni.Client{}
	for name, d := range dialers {
		c := *base
		// A fresh connection per ask (HTTPClient disables keep-alives): an
		// old connection must not hide a node that became unreachable.
		c.HTTP = access.HTTPSClient(d, timeout, probe.TLSConfig(s))
		clients[name] = &c
	}
	return func(ctx context.Context, name string) (bool, error) {
		n, ok := s.NodeByName(name)
		c := clients[name]
		if !ok || c == nil {
			return false, fmt.Errorf("unknown node %s", name)
		}
		return c.IsPrimary(ctx, n.PrivateIP)
	}
}

// writableAsker asks a node's PostgreSQL whether it is out of recovery, on
// a fresh connection: one that the server refuses (shutting down, starting
// up) or that does not come within timeout counts as not writable.
func writableAsker(p *probe.Probe, dialers map[string]access.DialFunc, timeout time.Duration) func(ctx context.Context, node string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		n, ok := p.Stack.NodeByName(name)
		d := dialers[name]
		if !ok || d == nil {
			return false, fmt.Errorf("unknown node %s", name)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		t := p.Monitor(n.PrivateIP)
		t.Dial = d
		cn, err := t.Connect(ctx)
		if err != nil {
			return false, err
		}
		defer cn.Close(context.Background())
		var primary bool
		if err := cn.QueryRow(ctx, `SELECT NOT pg_is_in_recovery()`).Scan(&primary); err != nil {
			return false, err
		}
		return primary, nil
	}
}
