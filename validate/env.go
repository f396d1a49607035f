package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/validate/internal/fault"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// env is everything a check needs to reach the cluster.
type env struct {
	stack outputs.Stack
	opts  *options
	dial  access.DialFunc
	http  *http.Client
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
	hc := access.HTTPClient(dial, 3*time.Second)
	pc := &patroni.Client{HTTP: hc, User: s.Credentials.RestAPIName, Password: s.Credentials.RestAPIPassword}
	slow := *pc
	slow.HTTP = access.HTTPClient(dial, 90*time.Second)
	now := time.Now()
	return &env{
		stack: s, opts: o, dial: dial, http: hc, pat: pc, slowPat: &slow, out: out, start: now,
		runID:   "v" + strconv.FormatInt(now.UnixNano(), 36),
		restore: &restorer{out: out},
	}
}

// logf prints one progress line, stamped with the time since the run began.
func (e *env) logf(format string, a ...any) {
	fmt.Fprintf(e.out, "[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, a...))
}

func (e *env) isLab() bool { return e.stack.Target == outputs.TargetLab }

func (e *env) pgNodes() []outputs.Node   { return e.stack.ByRole("patroni") }
func (e *env) etcdNodes() []outputs.Node { return e.stack.ByRole("etcd") }
func (e *env) haNodes() []outputs.Node   { return e.stack.ByRole("haproxy") }

// nodeByHost maps a Patroni member's host to its node.
func (e *env) nodeByName(name string) (outputs.Node, bool) { return e.stack.NodeByName(name) }

// app is the application user through an endpoint.
func (e *env) app(host string, port int) traffic.Target {
	c := e.stack.Credentials
	return traffic.Target{Host: host, Port: port, User: c.AppName, Password: c.AppPassword,
		Database: c.AppDatabase, Dial: e.dial, ConnectTimeout: 3 * time.Second}
}

func (e *env) writeTarget() traffic.Target {
	return e.app(e.stack.WriteEndpoint.Host, e.stack.WriteEndpoint.Port)
}

func (e *env) readTarget() traffic.Target {
	return e.app(e.stack.ReadEndpoint.Host, e.stack.ReadEndpoint.Port)
}

// super is the superuser straight to one node's PostgreSQL, in the
// application database: it sees pg_stat_replication in full and the rows the
// writer left.
func (e *env) super(host string) traffic.Target {
	c := e.stack.Credentials
	return traffic.Target{Host: host, Port: 5432, User: c.SuperuserName, Password: c.SuperuserPassword,
		Database: c.AppDatabase, Dial: e.dial, ConnectTimeout: 3 * time.Second}
}

// faultSet returns the faults this target supports.
func (e *env) faultSet() (fault.Set, error) {
	e.faultsOnce.Do(func() { e.faults, e.faultsErr = fault.ForTarget(e.stack) })
	return e.faults, e.faultsErr
}
