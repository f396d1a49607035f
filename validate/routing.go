package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// routing is what HAProxy did with a set of fresh connections.
type routing struct {
	writes   map[string]map[string]int // endpoint → server → connections
	reads    map[string]map[string]int
	problems []string
}

func (r routing) ok() bool { return len(r.problems) == 0 }

// endpoints lists the endpoint a client uses plus each HAProxy node on the
// same port, so that a wrong config on either HAProxy node shows.
func (e *env) endpoints(host string, port int) []traffic.Target {
	seen := map[string]bool{}
	var out []traffic.Target
	add := func(h string) {
		t := e.app(h, port)
		if !seen[t.String()] {
			seen[t.String()] = true
			out = append(out, t)
		}
	}
	add(host)
	for _, n := range e.haNodes() {
		add(n.PrivateIP)
	}
	return out
}

// describe names the node behind an address.
func (e *env) describe(ip string) string {
	if n, ok := e.stack.NodeByIP(ip); ok {
		return fmt.Sprintf("%s (%s)", n.Name, ip)
	}
	return ip
}

// assessRouting opens fresh connections through every write and read
// endpoint: 5000 must reach the leader (and not a server in recovery), 5001
// only replicas, and over repeated connections all of them.
func (e *env) assessRouting(ctx context.Context, leaderIP string, replicaIPs []string, readsPerEndpoint int) routing {
	r := routing{writes: map[string]map[string]int{}, reads: map[string]map[string]int{}}
	wport, rport := e.stack.WriteEndpoint.Port, e.stack.ReadEndpoint.Port
	for _, t := range e.endpoints(e.stack.WriteEndpoint.Host, wport) {
		got := map[string]int{}
		r.writes[t.String()] = got
		for i := 0; i < 2; i++ {
			info, err := whoami(ctx, t)
			if err != nil {
				r.problems = append(r.problems, fmt.Sprintf("write port %s: %v", t, err))
				break
			}
			got[info.Addr]++
			switch {
			case info.Addr != leaderIP:
				r.problems = append(r.problems, fmt.Sprintf("write port %s reached %s, not the leader %s", t, e.describe(info.Addr), e.describe(leaderIP)))
			case info.InRecovery:
				r.problems = append(r.problems, fmt.Sprintf("write port %s reached %s, which is in recovery (a replica)", t, e.describe(info.Addr)))
			}
			if info.Addr != leaderIP || info.InRecovery {
				break
			}
		}
	}
	for _, t := range e.endpoints(e.stack.ReadEndpoint.Host, rport) {
		got := map[string]int{}
		r.reads[t.String()] = got
		failed := false
		for i := 0; i < readsPerEndpoint; i++ {
			info, err := whoami(ctx, t)
			if err != nil {
				r.problems = append(r.problems, fmt.Sprintf("read port %s: %v", t, err))
				failed = true
				break
			}
			got[info.Addr]++
			if info.Addr == leaderIP {
				r.problems = append(r.problems, fmt.Sprintf("read port %s reached the leader %s; it must reach only replicas", t, e.describe(info.Addr)))
				failed = true
				break
			}
			if !info.InRecovery {
				r.problems = append(r.problems, fmt.Sprintf("read port %s reached %s, which is not in recovery", t, e.describe(info.Addr)))
				failed = true
				break
			}
			if !slices.Contains(replicaIPs, info.Addr) {
				r.problems = append(r.problems, fmt.Sprintf("read port %s reached %s, which is not a replica of this cluster", t, e.describe(info.Addr)))
				failed = true
				break
			}
		}
		if failed {
			continue
		}
		var missing []string
		for _, ip := range replicaIPs {
			if got[ip] == 0 {
				missing = append(missing, e.describe(ip))
			}
		}
		if len(missing) > 0 {
			r.problems = append(r.problems, fmt.Sprintf("read port %s never reached %s in %d connections; it must balance over all replicas",
				t, strings.Join(missing, ", "), readsPerEndpoint))
		}
	}
	return r
}

// waitRouting polls assessRouting until it is right or bound passes.
func (e *env) waitRouting(ctx context.Context, bound time.Duration, leaderIP string, replicaIPs []string) routing {
	var last routing
	wait.Poll(ctx, bound, time.Second, func() bool {
		last = e.assessRouting(ctx, leaderIP, replicaIPs, 8)
		return last.ok()
	})
	return last
}

func whoami(ctx context.Context, t traffic.Target) (traffic.ServerInfo, error) {
	c, err := t.Connect(ctx)
	if err != nil {
		return traffic.ServerInfo{}, err
	}
	defer c.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := traffic.Whoami(qctx, c)
	if err != nil {
		return info, fmt.Errorf("asking %s which server answered: %w", t, err)
	}
	return info, nil
}

// distribution formats server → count for a figure.
func (e *env) distribution(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if n, ok := e.stack.NodeByIP(k); ok {
			name = n.Name
		}
		parts = append(parts, name+"×"+strconv.Itoa(m[k]))
	}
	return strings.Join(parts, " ")
}

func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}
