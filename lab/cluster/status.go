package cluster

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/proc"
)

// NodeStatus is one row of `status`.
type NodeStatus struct {
	Name     string
	Role     string
	IP       string
	Process  string // running (pid N) | stopped
	Link     string // up | cut
	PGRole   string // Patroni role: leader, replica, sync_standby
	PGState  string // Patroni state: running, streaming, ...
	Timeline string
	Lag      string
	Log      string
}

// Status collects every node's process, link and Patroni state.
func (l *Lab) Status(ctx context.Context) ([]NodeStatus, error) {
	if !l.Exists() {
		return nil, fmt.Errorf("lab %q is not up; start it with: go run ./lab up --name %s", l.Name, l.Name)
	}
	recs, err := l.records()
	if err != nil {
		return nil, err
	}
	p, err := l.Probe()
	if err != nil {
		return nil, err
	}
	members := map[string]patroni.Member{}
	streaming := map[string]bool{}
	if cl, err := p.Cluster(ctx); err == nil {
		for _, m := range cl.Members {
			members[m.Name] = m
		}
		// Patroni 3.0.2 says "running" for a replica; the leader's
		// pg_stat_replication says whether it really streams.
		if leader, ok := cl.Leader(); ok {
			if rows, err := p.Replication(ctx, leader.Host); err == nil {
				for name, r := range rows {
					streaming[name] = r.State == "streaming"
				}
			}
		}
	}
	es := p.Etcd(ctx)
	var out []NodeStatus
	for _, n := range l.Plan.Nodes {
		s := NodeStatus{Name: n.Name, Role: string(n.Role), IP: n.IP.String(), Process: "stopped", Link: "up", Log: l.DaemonLog(n.Name)}
		if r, ok := recs[n.Name]; ok && r.Alive() {
			s.Process = fmt.Sprintf("running (pid %d)", r.PID)
		}
		if l.Boot() {
			s.Process = l.bootProcess(ctx, n)
		}
		if n.Role == topology.RolePatroni {
			if pm, ok := l.postmaster(n.Name); ok && s.Process == "stopped" {
				s.Process = fmt.Sprintf("postgres only (pid %d)", pm.PID)
			}
		}
		if l.Loopback() {
			s.Link = "lo"
		} else if cut, err := l.Net.IsCut(n.Name); err == nil && cut {
			s.Link = "cut"
		}
		switch n.Role {
		case topology.RoleEtcd:
			if m, _ := es.Member(n.Name); m.Healthy && es.Leader == n.Name {
				s.PGState = "healthy, leader"
			} else if m.Healthy {
				s.PGState = "healthy"
			} else {
				s.PGState = "unreachable"
			}
		case topology.RoleHAProxy:
			s.PGState = routes(ctx, p, n.IP.String())
		}
		if m, ok := members[n.Name]; ok {
			s.PGRole, s.PGState, s.Lag = m.Role, m.State, lagString(m)
			if streaming[n.Name] {
				s.PGState += ", streaming"
			}
			if m.Timeline > 0 {
				s.Timeline = strconv.Itoa(m.Timeline)
			}
		}
		out = append(out, s)
	}
	if l.Boot() {
		// The monitoring node: a machine of the booted lab, not a node of
		// the cluster.
		if s, ok := l.bootMonitorStatus(ctx); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// lagString is Patroni's lag as it printed it: bytes, or "unknown".
func lagString(m patroni.Member) string {
	if n := m.LagBytes(); n >= 0 {
		if len(m.Lag) == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	return strings.Trim(string(m.Lag), `"`)
}

// routes says where an HAProxy sends each port, from its stats page.
func routes(ctx context.Context, p *probe.Probe, ip string) string {
	srvs, err := p.HAProxyServers(ctx, ip)
	if err != nil {
		return "unreachable"
	}
	up := map[string][]string{}
	var backup []string
	for _, s := range srvs {
		if s.Status != "UP" || s.Name == "FRONTEND" || s.Name == "BACKEND" {
			continue
		}
		// "<member>-leader" in replicas is the leader as a backup for reads.
		if m, ok := strings.CutSuffix(s.Name, "-leader"); ok && s.Proxy == probe.BackendReplicas {
			backup = append(backup, m)
			continue
		}
		up[s.Proxy] = append(up[s.Proxy], s.Name)
	}
	dash := func(v []string) string {
		if len(v) == 0 {
			return "none"
		}
		return strings.Join(v, ",")
	}
	out := fmt.Sprintf("%d→%s %d→%s", topology.PortWrite, dash(up[probe.BackendPrimary]), topology.PortRead, dash(up[probe.BackendReplicas]))
	if len(backup) > 0 {
		out += " (backup " + strings.Join(backup, ",") + ")"
	}
	return out
}

// PrintStatus writes the status table.
func PrintStatus(w io.Writer, rows []NodeStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tIP\tPROCESS\tLINK\tPATRONI\tSTATE\tTL\tLAG\tLOG")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Role, r.IP, r.Process, r.Link,
			dash(r.PGRole), dash(r.PGState), dash(r.Timeline), dash(r.Lag), r.Log)
	}
	tw.Flush()
}

// Memory is the proportional set size of every process of the lab, the
// PostgreSQL backends included (in a booted lab: every process of every
// machine), in KiB, and how many processes that is.
func (l *Lab) Memory() (int64, int, error) {
	recs, err := l.records()
	if err != nil {
		return 0, 0, err
	}
	var roots []int
	for _, r := range recs {
		if r.Alive() {
			roots = append(roots, r.PID)
		}
	}
	if l.Boot() {
		// Every process of every machine, and the systemd-nspawn that
		// supervises it.
		ppid := proc.PPIDs()
		for _, n := range l.bootNodes() {
			if m, err := l.bootMachine(n.Name); err == nil && m.PID() != 0 {
				roots = append(roots, m.PID(), ppid[m.PID()])
			}
		}
	} else {
		for _, n := range l.Plan.ByRole(topology.RolePatroni) {
			if pm, ok := l.postmaster(n.Name); ok {
				roots = append(roots, pm.PID)
			}
		}
	}
	pids := proc.WithDescendants(roots)
	var total int64
	for _, p := range pids {
		kb, err := proc.PSSKiB(p)
		if err == nil {
			total += kb
		}
	}
	return total, len(pids), nil
}

// ConnectHelp is what a person types to reach the cluster.
func (l *Lab) ConnectHelp() string {
	h := l.Plan.ByRole(topology.RoleHAProxy)[0].IP
	in := "ip netns exec " + l.ClientNamespace() + " "
	if l.Loopback() {
		in = "" // the loopback addresses are this host's own
	}
	sec, ca := l.secretsDir(), l.TLSCAFile()
	var b strings.Builder
	// PgBouncer first: the clients' entry point. With transaction pooling
	// nothing of a session outlives its transaction; what needs that uses
	// the write port.
	fmt.Fprintf(&b, "  pooled (leader):  PGPASSWORD=$(cat %s/app) %spsql \"host=%s port=%d user=app dbname=app sslmode=verify-full sslrootcert=%s\"\n", sec, in, h, topology.PortPooler, ca)
	fmt.Fprintf(&b, "  write (leader):   PGPASSWORD=$(cat %s/app) %spsql \"host=%s port=%d user=app dbname=app sslmode=verify-full sslrootcert=%s\"\n", sec, in, h, topology.PortWrite, ca)
	fmt.Fprintf(&b, "  read (replicas):  PGPASSWORD=$(cat %s/app) %spsql \"host=%s port=%d user=app dbname=app sslmode=verify-full sslrootcert=%s\"\n", sec, in, h, topology.PortRead, ca)
	fmt.Fprintf(&b, "  patroni:          %scurl -s --cacert %s https://%s:%d/cluster\n", in, ca, l.Plan.ByRole(topology.RolePatroni)[0].IP, topology.PortPatroniAPI)
	fmt.Fprintf(&b, "  haproxy stats:    %scurl -su stats:$(cat %s/stats) --cacert %s https://%s:%d/\n", in, sec, ca, h, topology.PortStats)
	if l.Monitored() {
		fmt.Fprintf(&b, "  prometheus:       %scurl -s --cacert %s --cert %s --key %s '%s/api/v1/alerts'\n", in, ca, l.tlsDir("client.crt"), l.tlsDir("client.key"), l.PrometheusURL())
	}
	return b.String()
}

// MonitoringHelp says where the lab's Prometheus is, whether it reaches
// every target, and which alerts fire.
func (l *Lab) MonitoringHelp(ctx context.Context) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nPrometheus: %s (monitor-1, from the client namespace; TLS with the client certificate in %s)\n", l.PrometheusURL(), l.tlsDir())
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if down, err := l.TargetsDown(ctx); err != nil {
		fmt.Fprintf(&b, "  not answering: %v\n", err)
		return b.String()
	} else if len(down) > 0 {
		fmt.Fprintf(&b, "  targets down: %s\n", strings.Join(down, ", "))
	} else {
		b.WriteString("  every target up\n")
	}
	firing, err := l.Query(ctx, `ALERTS{alertstate="firing"}`)
	switch {
	case err != nil:
		fmt.Fprintf(&b, "  alerts: %v\n", err)
	case len(firing) == 0:
		b.WriteString("  alerts firing: none\n")
	default:
		var names []string
		for _, s := range firing {
			names = append(names, s.Labels["alertname"])
		}
		fmt.Fprintf(&b, "  alerts firing: %s\n", strings.Join(names, ", "))
	}
	fmt.Fprintf(&b, "Alertmanager: %s (pages nobody in the lab: no SNS topic)\n", l.AlertmanagerURL())
	switch held, err := l.HeldAlerts(ctx); {
	case err != nil:
		fmt.Fprintf(&b, "  not answering: %v\n", err)
	case len(held) == 0:
		b.WriteString("  alerts held: none\n")
	default:
		var names []string
		for _, a := range held {
			names = append(names, a.Name+" ("+a.State+")")
		}
		fmt.Fprintf(&b, "  alerts held: %s\n", strings.Join(names, ", "))
	}
	fmt.Fprintf(&b, "  logs: %s/*/log/ (node_exporter, postgres_exporter, prometheus, alertmanager)\n", filepath.Join(l.Dir, "nodes"))
	return b.String()
}
