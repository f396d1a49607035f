package scenario

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// Run is one scenario in progress: the story's handle on traffic, faults
// and the check it fills.
type Run struct {
	Env    Env
	Check  *report.Check
	Before probe.Formation // the healthy cluster the scenario started from

	// InEffect is when the latest fault's injection returned: the fault
	// holds from then on. Over SSH that is a second or two after FaultAt.
	InEffect time.Time
	// FaultAt is when the first fault was injected (or the switchover
	// asked for): RTO and the write gap are measured from it.
	FaultAt time.Time
	// Outcome is the story's one-line account of what happened.
	Outcome string

	traffic *traffic.Session
	poller  *Poller
	mu      sync.Mutex
	undos   []undo
}

type undo struct {
	what string
	fn   func() error
}

// Failf records a problem: the scenario fails.
func (r *Run) Failf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.mu.Lock()
	r.Check.Problems = append(r.Check.Problems, msg)
	r.mu.Unlock()
	r.Env.Logf("  FAIL: %s", msg)
}

// Notef records an observation.
func (r *Run) Notef(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.Check.Notes = append(r.Check.Notes, msg)
	r.Env.Logf("  %s", msg)
}

// Figure records a measured value.
func (r *Run) Figure(key, label string, v float64, unit string) {
	r.Check.Figures = append(r.Check.Figures, report.Figure{Key: key, Label: label, Value: v, Unit: unit})
	r.Env.Logf("  %s: %s", label, r.Check.Figures[len(r.Check.Figures)-1])
}

// Text records a non-numeric figure.
func (r *Run) Text(key, label, v string) {
	r.Check.Figures = append(r.Check.Figures, report.Figure{Key: key, Label: label, Text: v})
	r.Env.Logf("  %s: %s", label, v)
}

// Seconds records a duration figure.
func (r *Run) Seconds(key, label string, d time.Duration) { r.Figure(key, label, d.Seconds(), "s") }

// Event marks a moment about node on the timeline and returns its time.
func (r *Run) Event(kind, node, detail string) time.Time {
	ev := report.Event{At: time.Now(), Kind: kind, Node: node, Detail: detail}
	r.mu.Lock()
	r.Check.Timeline.Events = append(r.Check.Timeline.Events, ev)
	r.mu.Unlock()
	r.Env.Logf("  event %s: %s", kind, detail)
	return ev.At
}

// Inject breaks a node with the named fault. The undo is registered with
// the run's restorer first, so it happens even on failure or Ctrl-C; the
// returned function performs it now (once) and marks it on the timeline.
func (r *Run) Inject(ctx context.Context, kind, nodeName string) (func() error, error) {
	set, err := r.Env.Faults()
	if err != nil {
		return nil, err
	}
	f, err := set.Get(kind)
	if err != nil {
		return nil, err
	}
	n, err := node(r.Env.Stack(), nodeName)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("%s of %s", kind, nodeName)
	now := r.Env.Restore(what, func(rctx context.Context) error { return f.Restore(rctx, n) })
	done := false
	u := func() error {
		if done {
			return nil
		}
		done = true
		r.Event("restore", nodeName, "undo "+what)
		return now()
	}
	r.mu.Lock()
	r.undos = append(r.undos, undo{what, u})
	r.mu.Unlock()
	at := r.Event("fault", nodeName, what)
	if r.FaultAt.IsZero() {
		r.FaultAt = at
	}
	if err := f.Inject(ctx, n); err != nil {
		if uerr := u(); uerr != nil {
			r.Failf("%v", uerr)
		}
		return nil, fmt.Errorf("injecting %s: %w", what, err)
	}
	r.InEffect = time.Now()
	return u, nil
}

// undoAll puts back whatever the story left broken, newest first.
func (r *Run) undoAll() {
	r.mu.Lock()
	us := append([]undo(nil), r.undos...)
	r.mu.Unlock()
	for i := len(us) - 1; i >= 0; i-- {
		if err := us[i].fn(); err != nil {
			r.Failf("restoring %s: %v", us[i].what, err)
		}
	}
}

// Cluster reads /cluster from the first Patroni node that answers, skipping
// the named ones (a node under a fault may give a stale view).
func (r *Run) Cluster(ctx context.Context, skip ...string) (patroni.Cluster, error) {
	return r.Env.Probe().Cluster(ctx, skip...)
}

// WaitLeader waits up to bound for a single leader that satisfies pred.
func (r *Run) WaitLeader(ctx context.Context, bound time.Duration, pred func(patroni.Member) bool, skip ...string) (patroni.Member, bool) {
	return r.Env.Probe().WaitLeader(ctx, bound, pred, skip...)
}

// Writes is the writer's history so far.
func (r *Run) Writes() []history.Op { return r.traffic.Writer.Ops() }

// WaitWritesOn waits until a write acknowledged by host completes after since.
func (r *Run) WaitWritesOn(ctx context.Context, host string, since time.Time, bound time.Duration) bool {
	return wait.Poll(ctx, bound, 100*time.Millisecond, func() bool {
		for _, o := range r.Writes() {
			if o.OK && o.Server == host && o.End.After(since) {
				return true
			}
		}
		return false
	})
}

// Hold lets traffic run for d, as long as ctx lives.
func (r *Run) Hold(ctx context.Context, d time.Duration) error { return wait.Sleep(ctx, d) }

// LastErr is the newest client error of the writer.
func (r *Run) LastErr() string { return history.LastErr(r.Writes()) }

// AppTarget is the application user on the write side (write) or the read
// side, connected the way the outputs tell clients to: through the
// connection URI that lists every entry point (libpq tries them in order,
// and the write side asks for read-write). Outputs from before the URIs
// existed get the same behaviour from a dial that tries every HAProxy
// node in turn.
func AppTarget(s outputs.Stack, dial access.DialFunc, write bool, timeout time.Duration) pg.Target {
	c := s.Credentials
	if s.Connection != nil {
		uri := s.Connection.Read
		if write {
			uri = s.Connection.Write
		}
		// outputs.Validate checked the URI when the outputs were read.
		if t, err := pg.FromConnection(uri, c.AppPassword, dial, timeout, probe.TLSConfig(s)); err == nil {
			return t
		}
	}
	e := s.ReadEndpoint
	if write {
		e = s.WriteEndpoint
	}
	var hosts []string
	for _, n := range s.ByRole(topology.RoleHAProxy) {
		hosts = append(hosts, n.PrivateIP)
	}
	return pg.Target{Host: e.Host, Port: e.Port, User: c.AppName, Password: c.AppPassword,
		Database: c.AppDatabase, Dial: failoverDial(dial, hosts), ConnectTimeout: timeout, TLS: probe.TLSConfig(s)}
}

// PooledFirstID is where the pooled writer's ids start: the direct
// writer's stay below it, in the same run.
const PooledFirstID = 1_000_000_000

// PoolerTarget is the application user through the stack's pooler
// (PgBouncer, transaction pooling), the way the outputs tell clients to:
// the pooled URI over every entry point, tried in order (each PgBouncer's
// certificate names its own node, so every host is verified by its own
// name). Outputs without the URI get the endpoint and the other HAProxy
// nodes' poolers after it. False when the stack has no pooler.
func PoolerTarget(s outputs.Stack, dial access.DialFunc, timeout time.Duration) (pg.Target, bool) {
	e := s.PoolerEndpoint
	if e == nil {
		return pg.Target{}, false
	}
	c := s.Credentials
	if s.Connection != nil && s.Connection.Pooled != "" {
		// outputs.Validate checked the URI when the outputs were read.
		if t, err := pg.FromConnection(s.Connection.Pooled, c.AppPassword, dial, timeout, probe.TLSConfig(s)); err == nil {
			t.Pooled = true
			return t, true
		}
	}
	var fallbacks []string
	for _, n := range s.ByRole(topology.RoleHAProxy) {
		if n.PrivateIP != e.Host {
			fallbacks = append(fallbacks, net.JoinHostPort(n.PrivateIP, strconv.Itoa(e.Port)))
		}
	}
	return pg.Target{Host: e.Host, Port: e.Port, User: c.AppName, Password: c.AppPassword, Database: c.AppDatabase,
		Dial: dial, ConnectTimeout: timeout, TLS: probe.TLSConfig(s), Fallbacks: fallbacks, Pooled: true}, true
}

// failoverDial tries addr first and then the other hosts on the same port,
// when addr is one of hosts.
func failoverDial(base access.DialFunc, hosts []string) access.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || !slices.Contains(hosts, host) {
			return base(ctx, network, addr)
		}
		order := []string{host}
		for _, h := range hosts {
			if h != host {
				order = append(order, h)
			}
		}
		var first error
		for _, h := range order {
			c, err := base(ctx, network, net.JoinHostPort(h, port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return nil, first
	}
}

// setText changes a text figure recorded earlier.
func (r *Run) setText(key, v string) {
	for i := range r.Check.Figures {
		if r.Check.Figures[i].Key == key {
			r.Check.Figures[i].Text = v
		}
	}
}

func memberNames(ms []patroni.Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, " and ")
}
