// Package switchover is pgha's one planned switchover: validate's
// switchover check and scenarios, the rolling update's hand-over and the
// operator's `validate switchover` all go through Run. Where the stack
// has poolers (PgBouncer on each HAProxy node, and the admin console's
// credentials in the outputs) the switchover is held behind them
// (pooler.Switchover): the poolers pause, Patroni switches over, every
// HAProxy node's leader port reaches the new leader, the poolers drop
// their old server connections and resume. Pooled clients see a stall,
// not an error. Without poolers it is Patroni's switchover alone.
package switchover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/pooler"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
)

// Poolers are the admin consoles of the stack's PgBouncers, one per
// HAProxy node at its private address, reached through dial; nil when the
// stack has no pooler or its outputs carry no console credentials.
func Poolers(s outputs.Stack, dial access.DialFunc) []pooler.Admin {
	c := s.Credentials
	if s.PoolerEndpoint == nil || c.PoolerAdminName == "" || c.PoolerAdminPassword == "" {
		return nil
	}
	var out []pooler.Admin
	for _, n := range s.ByRole(topology.RoleHAProxy) {
		out = append(out, &pooler.Console{Node: n.Name, PauseDatabases: []string{c.AppDatabase},
			Target: pg.Target{Host: n.PrivateIP, Port: topology.PortPooler, User: c.PoolerAdminName,
				Password: c.PoolerAdminPassword, Dial: dial, ConnectTimeout: 3 * time.Second, TLS: probe.TLSConfig(s)}})
	}
	return out
}

// Options tune Run; the zero value is the stack's poolers and Patroni's
// REST API.
type Options struct {
	// Ask asks Patroni for the switchover and returns its answer; nil is
	// the probe's POST /switchover on the leader.
	Ask func(ctx context.Context) (string, error)
	// Poolers overrides the stack's poolers (Poolers); NoPooler switches
	// over without them.
	Poolers  []pooler.Admin
	NoPooler bool
	// WritePath returns once the poolers' write path reaches the
	// candidate; nil is WritePathOn.
	WritePath func(ctx context.Context) error
	// Pooler's bounds; zero means pooler's defaults.
	PauseBound, StallBound time.Duration
	// OnPause, if set, is called just before the poolers are paused (the
	// moment a client's stall begins), for a timeline.
	OnPause func()
	Logf    func(format string, args ...any)
}

// Result is what a planned switchover did.
type Result struct {
	// Answer is Patroni's answer to the switchover request.
	Answer string
	// Pooled says the switchover was held behind the poolers; Pooler is
	// then the steps' timing and the clients' longest possible stall.
	Pooled bool
	Pooler pooler.Result
	// SessionPooled says the poolers pool sessions (pgha:poolMode
	// session), so the switchover was not held behind them: PAUSE waits
	// for every client session to end, and a session cannot move to
	// another server. Their clients see what direct clients see.
	SessionPooled bool
}

// Run switches over from leader to candidate, behind the stack's poolers
// when it has any. It returns once Patroni has answered and, behind
// poolers, once every HAProxy node's leader port reaches the candidate
// and the poolers have resumed. A failed switchover behind poolers resumes
// them on whichever node leads.
func Run(ctx context.Context, p *probe.Probe, leader, candidate patroni.Member, o Options) (Result, error) {
	var res Result
	ask := o.Ask
	if ask == nil {
		ask = func(ctx context.Context) (string, error) {
			return "", p.Switchover(ctx, leader.Host, leader.Name, candidate.Name)
		}
	}
	poolers := o.Poolers
	if poolers == nil && !o.NoPooler {
		poolers = Poolers(p.Stack, p.Dial)
	}
	if len(poolers) > 0 && !o.NoPooler {
		res.SessionPooled = SessionPooled(ctx, poolers)
		if res.SessionPooled && o.Logf != nil {
			o.Logf("the poolers pool sessions (pool_mode session): a session cannot move to %s, so the switchover is not held behind them; their clients see what direct clients see", candidate.Name)
		}
	}
	if len(poolers) == 0 || o.NoPooler || res.SessionPooled {
		a, err := ask(ctx)
		res.Answer = a
		return res, err
	}
	res.Pooled = true
	if o.OnPause != nil {
		o.OnPause()
	}
	// Patroni answers POST /switchover only at its next whole-second poll
	// of the DCS after the new leader took the key, up to a second after
	// the write path could carry clients again: the held clients wait for
	// the write path, not for the answer, which is collected once they go.
	path := o.WritePath
	if path == nil {
		path = func(ctx context.Context) error { return WritePathOn(ctx, p, candidate) }
	}
	// The ask runs under Run's context, not the step's: the step ends
	// (and its context with it) as soon as the write path has moved.
	actx, acancel := context.WithTimeout(ctx, answerWait)
	defer acancel()
	q := &asked{done: make(chan struct{})}
	var started atomic.Bool
	pr, err := pooler.Switchover(ctx, poolers, pooler.Steps{
		Switch: func(ctx context.Context) error {
			started.Store(true)
			go func() {
				defer close(q.done)
				q.answer, q.err = ask(actx)
			}()
			return switchUntilWritePath(ctx, path, q)
		},
		WritePathReady: path,
		PauseBound:     o.PauseBound, StallBound: o.StallBound, Logf: o.Logf,
	})
	res.Pooler = pr
	if !started.Load() {
		return res, err
	}
	// The clients are gone on; Patroni's answer comes within its poll.
	<-q.done
	res.Answer = q.answer
	if q.err != nil && err == nil {
		err = fmt.Errorf("switchover: the write path reached %s, but Patroni answered: %w", candidate.Name, q.err)
	}
	return res, err
}

// poolModer is a pooler that can say its pool mode (*pooler.Console).
type poolModer interface {
	PoolMode(ctx context.Context) (string, error)
}

// SessionPooled reports whether any pooler pools sessions. A pooler that
// cannot be asked counts as not: the PAUSE that follows reaches it or
// fails with the reason, before Patroni is asked.
func SessionPooled(ctx context.Context, poolers []pooler.Admin) bool {
	for _, a := range poolers {
		pm, ok := a.(poolModer)
		if !ok {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		mode, err := pm.PoolMode(qctx)
		cancel()
		if err == nil && mode == "session" {
			return true
		}
	}
	return false
}

// answerWait bounds Patroni's answer to the switchover request: it
// polls for the result every second, for at most 10 s or loop_wait.
const answerWait = 60 * time.Second

// asked is Patroni's answer, once done is closed.
type asked struct {
	done   chan struct{}
	answer string
	err    error
}

// switchUntilWritePath is the pooled switchover's switch step: it returns
// once the write path reaches the candidate, or with Patroni's refusal.
func switchUntilWritePath(ctx context.Context, path func(context.Context) error, q *asked) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	moved := make(chan error, 1)
	go func() { moved <- path(wctx) }()
	select {
	case err := <-moved:
		return err
	case <-q.done:
		// Answered first: a refusal ends the switchover; otherwise the
		// write path is the next step's to wait for.
		return q.err
	}
}

// WritePathOn returns once the write path the poolers take reaches the
// candidate on every HAProxy node: in HAProxy's primary backend the
// candidate is UP and no other server is (with another still up, a
// pooler's new server connection could land on the old leader, down or
// already a read-only replica), and a fresh session on the leader port
// is the candidate's, writable. It polls until ctx ends.
func WritePathOn(ctx context.Context, p *probe.Probe, candidate patroni.Member) error {
	var last error
	stats := p.Stack.Credentials.StatsPassword != ""
	ok := wait.Poll(ctx, time.Hour, 50*time.Millisecond, func() bool {
		for _, h := range p.Nodes(topology.RoleHAProxy) {
			if err := writePathOn(ctx, p, h, candidate, stats); err != nil {
				last = err
				return false
			}
		}
		return true
	})
	if ok {
		return nil
	}
	if last == nil {
		last = errors.New("not checked")
	}
	return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

// attemptBound keeps one try short: a session HAProxy sends to a server
// whose PostgreSQL has stopped waits out HAProxy's retries (a second
// each) before it fails, long after the path has moved.
const attemptBound = 750 * time.Millisecond

func writePathOn(ctx context.Context, p *probe.Probe, h outputs.Node, candidate patroni.Member, stats bool) error {
	actx, cancel := context.WithTimeout(ctx, attemptBound)
	defer cancel()
	if stats {
		srvs, err := p.HAProxyServers(actx, h.PrivateIP)
		if err != nil {
			return fmt.Errorf("%s stats: %w", h.Name, err)
		}
		up := false
		for _, s := range srvs {
			if s.Proxy != probe.BackendPrimary || s.Name == "FRONTEND" || s.Name == "BACKEND" {
				continue
			}
			if s.Name == candidate.Name {
				up = s.Status == "UP"
				continue
			}
			if strings.HasPrefix(s.Status, "UP") {
				return fmt.Errorf("%s: %s/%s is still %s", h.Name, probe.BackendPrimary, s.Name, s.Status)
			}
		}
		if !up {
			return fmt.Errorf("%s: %s/%s is not UP yet", h.Name, probe.BackendPrimary, candidate.Name)
		}
	}
	info, err := probe.Whoami(actx, p.App(h.PrivateIP, topology.PortWrite))
	switch {
	case err != nil:
		return fmt.Errorf("%s:%d: %w", h.Name, topology.PortWrite, err)
	case info.Addr != candidate.Host || info.InRecovery:
		return fmt.Errorf("%s:%d reaches %s (in recovery: %t), not %s", h.Name, topology.PortWrite, info.Addr, info.InRecovery, candidate.Host)
	}
	return nil
}

// Switcher is a probe whose Switchover is Run's: what the rolling
// updates (roll.HandOver) switch over with, so that a roll's hand-over is
// held behind the poolers too.
type Switcher struct {
	*probe.Probe
	Logf func(format string, args ...any)
}

// Switchover switches over from leader to candidate (member names) with
// Run, the host being looked up in the stack outputs.
func (s Switcher) Switchover(ctx context.Context, host, leader, candidate string) error {
	cn, ok := s.Stack.NodeByName(candidate)
	if !ok {
		return fmt.Errorf("switchover: %s is not a node of the stack outputs", candidate)
	}
	res, err := Run(ctx, s.Probe, patroni.Member{Name: leader, Host: host}, patroni.Member{Name: candidate, Host: cn.PrivateIP},
		Options{Logf: s.Logf})
	if err == nil && res.Pooled && s.Logf != nil {
		s.Logf("switchover %s → %s held behind the poolers: clients stalled at most %s", leader, candidate, res.Pooler.Stall.Round(time.Millisecond))
	}
	return err
}

// Describe is one line on a pooled switchover's steps, for reports.
func Describe(r pooler.Result) string {
	var parts []string
	for _, s := range r.Steps {
		p := fmt.Sprintf("%s %s", s.Name, s.Took.Round(time.Millisecond))
		if s.Err != "" {
			p += " (failed)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
