package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/scenario"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// env is everything a check needs to reach the cluster.
type env struct {
	stack outputs.Stack
	opts  *options
	dial  access.DialFunc
	http  *http.Client
	probe *probe.Probe
	pat   *patroni.Client
	// slowPat is for POST /switchover, which answers only once the
	// candidate has taken over.
	slowPat *patroni.Client
	out     io.Writer
	start   time.Time
	runID   string
	restore *restorer

	faultsOnce sync.Once
	faults     fault.Set
	faultsErr  error

	// etcdVia reaches etcd over SSH access (see etcdhop.go).
	etcdVia etcdHops
}

func newEnv(s outputs.Stack, o *options, dial access.DialFunc, out io.Writer) *env {
	p := probe.New(s, dial)
	slow := *p.Patroni
	slow.HTTP = access.HTTPSClient(dial, 90*time.Second, p.TLS)
	now := time.Now()
	e := &env{
		stack: s, opts: o, dial: dial, http: p.HTTP, probe: p, pat: p.Patroni, slowPat: &slow, out: out, start: now,
		runID:   "v" + strconv.FormatInt(now.UnixNano(), 36),
		restore: &restorer{out: out},
	}
	p.EtcdHTTP = func(ctx context.Context, n outputs.Node) (*http.Client, error) { return e.etcdHTTP(ctx, n.PrivateIP) }
	return e
}

// logf prints one progress line, stamped with the time since the run began.
func (e *env) logf(format string, a ...any) {
	fmt.Fprintf(e.out, "[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, a...))
}

func (e *env) isLab() bool { return e.stack.Target == outputs.TargetLab }

func (e *env) pgNodes() []outputs.Node { return e.stack.ByRole(topology.RolePatroni) }

// writeTarget is the application user on the write side, as clients
// connect (the outputs' connection URI).
func (e *env) writeTarget() pg.Target {
	return scenario.AppTarget(e.stack, e.dial, true, 3*time.Second)
}

// setupTraffic creates the writer's table through the write endpoint and
// lets the monitor role, which validate reads each node as, read it.
func (e *env) setupTraffic(ctx context.Context) error {
	return traffic.Setup(ctx, e.writeTarget(), e.stack.Credentials.MonitorName)
}

// faultSet returns the faults this target supports.
func (e *env) faultSet() (fault.Set, error) {
	e.faultsOnce.Do(func() { e.faults, e.faultsErr = fault.ForTarget(e.stack) })
	return e.faults, e.faultsErr
}

// waitFormation is the probe's wait, saying in the run's log what it waits for.
func (e *env) waitFormation(ctx context.Context, bound time.Duration, pred func(probe.Formation) string, skip ...string) (probe.Formation, bool) {
	return e.probe.WaitFormation(ctx, bound, pred, e.logf, skip...)
}

// announce says plainly what is about to be broken. Against anything but the
// lab it also pauses, so a person can still press Ctrl-C.
func (e *env) announce(ctx context.Context, what string) error {
	if e.isLab() {
		e.logf("  %s", what)
		return nil
	}
	fmt.Fprintf(e.out, "\n*** %s cluster %q: %s ***\n", e.stack.Target, e.stack.ClusterName, what)
	if e.opts.yes {
		return nil
	}
	fmt.Fprintln(e.out, "*** starting in 10 seconds; press Ctrl-C to stop (or pass --yes) ***")
	return wait.Sleep(ctx, 10*time.Second)
}
