package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
)

// On AWS the security groups admit etcd's client port (2379) only from the
// Patroni and etcd tiers, never from the HAProxy nodes: those face the
// internet, and one that could write to etcd could take Patroni's leader
// lock. The jump host is an HAProxy node, so over SSH access the etcd check
// reaches each member's client URL from that member itself: SSH to the jump
// host, SSH on to the member (its host keys pinned from the outputs), then
// a forwarded channel to the member's own IP:2379, as
// `ssh -J jump member -W IP:2379` would. No port is opened for validate.

// etcdHops keeps one hop per etcd member for the run, so repeated checks
// reuse one SSH connection per member instead of a handshake per request.
type etcdHops struct {
	mu   sync.Mutex
	hops map[string]*etcdHop // by node name
}

type etcdHop struct {
	jump *access.Jump
	http *http.Client
}

// etcdHopConnect bounds the SSH connection to a member, so a stopped member
// costs a few seconds of the check, not a hang.
const etcdHopConnect = 5 * time.Second

// etcdHTTP returns the HTTP client that reaches the etcd member at ip: the
// run's client unless access is SSH, else one through an SSH hop on the
// member itself, connected now so that a refused host key or an unreachable
// sshd reads as such rather than as an HTTP failure.
func (e *env) etcdHTTP(ctx context.Context, ip string) (*http.Client, error) {
	if e.stack.Access.Kind != outputs.AccessSSH {
		return e.http, nil
	}
	h, err := e.etcdHop(ip)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, etcdHopConnect)
	defer cancel()
	if _, err := h.jump.Client(cctx); err != nil {
		return nil, fmt.Errorf("over SSH on the member itself (port 2379 is closed to the jump host): %w", err)
	}
	return h.http, nil
}

func (e *env) etcdHop(ip string) (*etcdHop, error) {
	n, ok := e.stack.NodeByIP(ip)
	if !ok {
		return nil, fmt.Errorf("%s is not a node in output %q", ip, outputs.KeyNodes)
	}
	e.etcdVia.mu.Lock()
	defer e.etcdVia.mu.Unlock()
	if h := e.etcdVia.hops[n.Name]; h != nil {
		return h, nil
	}
	if len(n.HostKeys) == 0 {
		return nil, fmt.Errorf("output %q has no hostKeys for %s: over SSH, validate reaches etcd from the member itself (port 2379 is closed to the jump host) and never trusts an unrecorded host key; run `pulumi up` to record them", outputs.KeyNodes, n.Name)
	}
	cfg, err := access.SSHConfigFromStack(e.stack)
	if err != nil {
		return nil, err
	}
	member := access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}
	// e.dial is the run's dialer, through the jump host: the member's sshd
	// is reached through it, and its connections then start on the member.
	hcfg, err := access.HopConfig(cfg, member, e.dial)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	j, err := access.NewJump(hcfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	h := &etcdHop{jump: j, http: access.HTTPSClient(j.DialContext, e.http.Timeout, e.probe.TLS)}
	if e.etcdVia.hops == nil {
		e.etcdVia.hops = map[string]*etcdHop{}
	}
	e.etcdVia.hops[n.Name] = h
	return h, nil
}

// closeHops closes the hops' SSH connections.
func (e *env) closeHops() {
	e.etcdVia.mu.Lock()
	defer e.etcdVia.mu.Unlock()
	for name, h := range e.etcdVia.hops {
		_ = h.jump.Close()
		delete(e.etcdVia.hops, name)
	}
}
