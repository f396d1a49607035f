package probe

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
)

// HAProxy's backends as haproxy.cfg names them.
const (
	BackendPrimary  = "primary"  // behind PortWrite
	BackendReplicas = "replicas" // behind PortRead
)

// HAProxyServer is one row of HAProxy's stats CSV.
type HAProxyServer struct {
	Proxy, Name, Status, CheckStatus string
}

// Checked reports whether a health check has run on the server.
func (s HAProxyServer) Checked() bool {
	c := strings.TrimSpace(strings.TrimPrefix(s.CheckStatus, "* "))
	return c != "" && c != "INI"
}

// HAProxyServers reads one HAProxy node's stats page (basic auth) as CSV.
func (p *Probe) HAProxyServers(ctx context.Context, ip string) ([]HAProxyServer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+hostPort(ip, topology.PortStats)+"/;csv", nil)
	if err != nil {
		return nil, err
	}
	creds := p.Stack.Credentials
	req.SetBasicAuth(creds.StatsName, creds.StatsPassword)
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stats page: %s", resp.Status)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("stats page is empty")
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "# ")] = i
	}
	for _, c := range []string{"pxname", "svname", "status", "check_status"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("stats CSV has no %s column", c)
		}
	}
	var out []HAProxyServer
	for _, r := range rows[1:] {
		if len(r) <= col["check_status"] {
			continue
		}
		out = append(out, HAProxyServer{Proxy: r[col["pxname"]], Name: r[col["svname"]], Status: r[col["status"]], CheckStatus: r[col["check_status"]]})
	}
	return out, nil
}

// Checked says whether every HAProxy node has health-checked every Patroni
// server and found the leader alone up behind PortWrite and the replicas
// alone up behind PortRead, and whether a real session on PortWrite lands
// on the leader. HAProxy counts a server up until its first check, so one
// lucky connection proves nothing on its own.
func (p *Probe) Checked(ctx context.Context) error {
	cl, err := p.Cluster(ctx)
	if err != nil {
		return err
	}
	leader, ok := cl.Leader()
	if !ok {
		return errors.New("no Patroni leader")
	}
	for _, h := range p.Nodes(topology.RoleHAProxy) {
		srvs, err := p.HAProxyServers(ctx, h.PrivateIP)
		if err != nil {
			return fmt.Errorf("%s stats: %w", h.Name, err)
		}
		for _, s := range srvs {
			if (s.Proxy != BackendPrimary && s.Proxy != BackendReplicas) || !slices.ContainsFunc(cl.Members, func(m patroni.Member) bool { return m.Name == s.Name }) {
				continue
			}
			if !s.Checked() {
				return fmt.Errorf("%s has not checked %s/%s yet", h.Name, s.Proxy, s.Name)
			}
			wantUp := (s.Name == leader.Name) == (s.Proxy == BackendPrimary)
			if up := s.Status == "UP"; up != wantUp {
				return fmt.Errorf("%s: %s/%s is %s while the leader is %s", h.Name, s.Proxy, s.Name, s.Status, leader.Name)
			}
		}
		info, err := Whoami(ctx, p.App(h.PrivateIP, topology.PortWrite))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", h.Name, topology.PortWrite, err)
		}
		if info.Addr != leader.Host {
			return fmt.Errorf("%s:%d reaches %s, not the leader %s (%s)", h.Name, topology.PortWrite, info.Addr, leader.Name, leader.Host)
		}
	}
	return nil
}

// Routing is what HAProxy did with a set of fresh connections.
type Routing struct {
	Writes   map[string]map[string]int // endpoint → server → connections
	Reads    map[string]map[string]int
	Problems []string
}

// OK is every connection where it belongs.
func (r Routing) OK() bool { return len(r.Problems) == 0 }

// endpoints lists the endpoint a client uses plus each HAProxy node on the
// same port, so that a wrong config on either HAProxy node shows.
func (p *Probe) endpoints(host string, port int) []pg.Target {
	seen := map[string]bool{}
	var out []pg.Target
	add := func(h string) {
		t := p.App(h, port)
		if !seen[t.String()] {
			seen[t.String()] = true
			out = append(out, t)
		}
	}
	add(host)
	for _, n := range p.Nodes(topology.RoleHAProxy) {
		add(n.PrivateIP)
	}
	return out
}

// Describe names the node behind an address.
func (p *Probe) Describe(ip string) string {
	if n, ok := p.Stack.NodeByIP(ip); ok {
		return fmt.Sprintf("%s (%s)", n.Name, ip)
	}
	return ip
}

// Routing opens fresh connections through every write and read endpoint:
// the write port must reach the leader (and not a server in recovery), the
// read port only replicas and, over readsPerEndpoint connections, all of
// them.
func (p *Probe) Routing(ctx context.Context, leaderIP string, replicaIPs []string, readsPerEndpoint int) Routing {
	r := Routing{Writes: map[string]map[string]int{}, Reads: map[string]map[string]int{}}
	s := p.Stack
	for _, t := range p.endpoints(s.WriteEndpoint.Host, s.WriteEndpoint.Port) {
		got := map[string]int{}
		r.Writes[t.String()] = got
		for i := 0; i < 2; i++ {
			info, err := Whoami(ctx, t)
			if err != nil {
				r.Problems = append(r.Problems, fmt.Sprintf("write port %s: %v", t, err))
				break
			}
			got[info.Addr]++
			if info.Addr != leaderIP {
				r.Problems = append(r.Problems, fmt.Sprintf("write port %s reached %s, not the leader %s", t, p.Describe(info.Addr), p.Describe(leaderIP)))
				break
			}
			if info.InRecovery {
				r.Problems = append(r.Problems, fmt.Sprintf("write port %s reached %s, which is in recovery (a replica)", t, p.Describe(info.Addr)))
				break
			}
		}
	}
	for _, t := range p.endpoints(s.ReadEndpoint.Host, s.ReadEndpoint.Port) {
		got := map[string]int{}
		r.Reads[t.String()] = got
		if problem := p.readsOnReplicas(ctx, t, got, leaderIP, replicaIPs, readsPerEndpoint); problem != "" {
			r.Problems = append(r.Problems, problem)
			continue
		}
		var missing []string
		for _, ip := range replicaIPs {
			if got[ip] == 0 {
				missing = append(missing, p.Describe(ip))
			}
		}
		if len(missing) > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("read port %s never reached %s in %d connections; it must balance over all replicas",
				t, strings.Join(missing, ", "), readsPerEndpoint))
		}
	}
	return r
}

// readsOnReplicas counts n fresh sessions on t by server and says what is
// wrong with the first that did not land on a replica of the cluster.
func (p *Probe) readsOnReplicas(ctx context.Context, t pg.Target, got map[string]int, leaderIP string, replicaIPs []string, n int) string {
	for i := 0; i < n; i++ {
		info, err := Whoami(ctx, t)
		if err != nil {
			return fmt.Sprintf("read port %s: %v", t, err)
		}
		got[info.Addr]++
		switch {
		case info.Addr == leaderIP:
			return fmt.Sprintf("read port %s reached the leader %s; it must reach only replicas", t, p.Describe(info.Addr))
		case !info.InRecovery:
			return fmt.Sprintf("read port %s reached %s, which is not in recovery", t, p.Describe(info.Addr))
		case !slices.Contains(replicaIPs, info.Addr):
			return fmt.Sprintf("read port %s reached %s, which is not a replica of this cluster", t, p.Describe(info.Addr))
		}
	}
	return ""
}

// WaitRouting polls Routing until it is right or bound passes.
func (p *Probe) WaitRouting(ctx context.Context, bound time.Duration, leaderIP string, replicaIPs []string) Routing {
	var last Routing
	wait.Poll(ctx, bound, time.Second, func() bool {
		last = p.Routing(ctx, leaderIP, replicaIPs, 8)
		return last.OK()
	})
	return last
}

// Distribution formats server → count as "pg-2×4 pg-3×4".
func (p *Probe) Distribution(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if n, ok := p.Stack.NodeByIP(k); ok {
			name = n.Name
		}
		parts = append(parts, name+"×"+strconv.Itoa(m[k]))
	}
	return strings.Join(parts, " ")
}
