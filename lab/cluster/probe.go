package cluster

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/topology"
)

// Dialer reaches the lab's addresses from its client namespace, or, in a
// loopback lab, directly from this host, as validate does (access "direct").
func (l *Lab) Dialer() (access.DialFunc, error) {
	if l.Loopback() {
		return access.Direct(), nil
	}
	return access.Netns(l.ClientNamespace())
}

func (l *Lab) getJSON(ctx context.Context, method, url string, body string, v any) error {
	dial, err := l.Dialer()
	if err != nil {
		return err
	}
	c := access.HTTPClient(dial, 3*time.Second)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return json.Unmarshal(b, v)
}

// EtcdMember is one member's view from its own status endpoint.
type EtcdMember struct {
	Name     string
	IP       string
	Healthy  bool
	IsLeader bool
	Err      error
}

// EtcdHealth asks every etcd member for its health and status (the v3
// JSON gateway, so no etcd client library is needed).
func (l *Lab) EtcdHealth(ctx context.Context) []EtcdMember {
	var out []EtcdMember
	for _, n := range l.Plan.ByRole(topology.RoleEtcd) {
		m := EtcdMember{Name: n.Name, IP: n.IP.String()}
		base := "http://" + net.JoinHostPort(m.IP, "2379")
		var h struct {
			Health string `json:"health"`
		}
		if err := l.getJSON(ctx, http.MethodGet, base+"/health", "", &h); err != nil {
			m.Err = err
			out = append(out, m)
			continue
		}
		m.Healthy = h.Health == "true"
		// Debian's etcd 3.4 serves no JSON gateway (/v3/... answers 404),
		// so leadership comes from the Prometheus metrics every member has.
		leader, err := l.etcdIsLeader(ctx, base)
		if err != nil {
			m.Err = err
		}
		m.IsLeader = leader
		out = append(out, m)
	}
	return out
}

func (l *Lab) etcdIsLeader(ctx context.Context, base string) (bool, error) {
	dial, err := l.Dialer()
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return false, err
	}
	resp, err := access.HTTPClient(dial, 3*time.Second).Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd_server_is_leader "); ok {
			return strings.TrimSpace(v) == "1", nil
		}
	}
	return false, fmt.Errorf("%s/metrics has no etcd_server_is_leader", base)
}

// EtcdReady means every member is healthy and exactly one leads.
func EtcdReady(ms []EtcdMember) error {
	leaders := 0
	for _, m := range ms {
		if !m.Healthy {
			return fmt.Errorf("etcd member %s is not healthy (%v)", m.Name, m.Err)
		}
		if m.IsLeader {
			leaders++
		}
	}
	if leaders != 1 {
		return fmt.Errorf("etcd has %d leaders; want 1", leaders)
	}
	return nil
}

// PatroniMember is one entry of Patroni's /cluster.
type PatroniMember struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	State    string          `json:"state"`
	Host     string          `json:"host"`
	Timeline int             `json:"timeline"`
	Lag      json.RawMessage `json:"lag"`
}

// LagString renders Patroni's lag (a number, or "unknown").
func (m PatroniMember) LagString() string {
	if len(m.Lag) == 0 {
		return ""
	}
	var n int64
	if err := json.Unmarshal(m.Lag, &n); err == nil {
		return strconv.FormatInt(n, 10)
	}
	var s string
	_ = json.Unmarshal(m.Lag, &s)
	return s
}

// PatroniCluster returns /cluster (and the raw document) from the first
// Patroni node that answers.
func (l *Lab) PatroniCluster(ctx context.Context) ([]PatroniMember, json.RawMessage, error) {
	var lastErr error
	for _, n := range l.Plan.ByRole(topology.RolePatroni) {
		var raw json.RawMessage
		if err := l.getJSON(ctx, http.MethodGet, "http://"+net.JoinHostPort(n.IP.String(), "8008")+"/cluster", "", &raw); err != nil {
			lastErr = err
			continue
		}
		var c struct {
			Members []PatroniMember `json:"members"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			lastErr = err
			continue
		}
		return c.Members, raw, nil
	}
	return nil, nil, fmt.Errorf("no Patroni REST API answered: %v", lastErr)
}

// Leader returns the leader member of ms.
func Leader(ms []PatroniMember) (PatroniMember, bool) {
	for _, m := range ms {
		if m.Role == "leader" {
			return m, true
		}
	}
	return PatroniMember{}, false
}

// Connect opens a PostgreSQL session at addr ("ip:port") from the client
// namespace, with TLS required, as user (superuser or app).
func (l *Lab) Connect(ctx context.Context, addr, user, password, database string) (*pgx.Conn, error) {
	dial, err := l.Dialer()
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=%s sslmode=require connect_timeout=5", host, port, database))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	cfg.DialFunc = func(ctx context.Context, network, a string) (net.Conn, error) { return dial(ctx, network, a) }
	return pgx.ConnectConfig(ctx, cfg)
}

// Superuser connects to one node's PostgreSQL directly.
func (l *Lab) Superuser(ctx context.Context, ip string) (*pgx.Conn, error) {
	c, err := l.Credentials()
	if err != nil {
		return nil, err
	}
	return l.Connect(ctx, net.JoinHostPort(ip, "5432"), c.SuperuserName, c.SuperuserPassword, "postgres")
}

// App connects as the application user through an HAProxy port.
func (l *Lab) App(ctx context.Context, haproxyIP string, port int) (*pgx.Conn, error) {
	c, err := l.Credentials()
	if err != nil {
		return nil, err
	}
	return l.Connect(ctx, net.JoinHostPort(haproxyIP, strconv.Itoa(port)), c.AppName, c.AppPassword, c.AppDatabase)
}

// Streaming lists the application names (Patroni member names) that stream
// from the PostgreSQL at leaderIP.
func (l *Lab) Streaming(ctx context.Context, leaderIP string) ([]string, error) {
	c, err := l.Superuser(ctx, leaderIP)
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Formed checks one leader, two replicas, and both replicas streaming from
// the leader according to the leader's own pg_stat_replication.
func (l *Lab) Formed(ctx context.Context) (PatroniMember, error) {
	ms, _, err := l.PatroniCluster(ctx)
	if err != nil {
		return PatroniMember{}, err
	}
	leader, ok := Leader(ms)
	if !ok {
		return PatroniMember{}, fmt.Errorf("no Patroni leader yet")
	}
	if len(ms) != 3 {
		return leader, fmt.Errorf("Patroni has %d members; want 3", len(ms))
	}
	names, err := l.Streaming(ctx, leader.Host)
	if err != nil {
		return leader, fmt.Errorf("reading pg_stat_replication on %s: %w", leader.Name, err)
	}
	got := map[string]bool{}
	for _, n := range names {
		got[n] = true
	}
	for _, m := range ms {
		if m.Name == leader.Name {
			continue
		}
		if !got[m.Name] {
			return leader, fmt.Errorf("replica %s is not streaming from %s yet (state %s)", m.Name, leader.Name, m.State)
		}
		// PostgreSQL may stream before Patroni has noticed; until then
		// /cluster says "starting" with no timeline, which is not formed.
		if (m.State != "running" && m.State != "streaming") || m.Timeline != leader.Timeline {
			return leader, fmt.Errorf("Patroni reports replica %s as %q on timeline %d (leader: %d)", m.Name, m.State, m.Timeline, leader.Timeline)
		}
	}
	return leader, nil
}

// ServerAddr returns inet_server_addr() of a session through an HAProxy port.
func (l *Lab) ServerAddr(ctx context.Context, haproxyIP string, port int) (string, error) {
	c, err := l.App(ctx, haproxyIP, port)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var addr string
	if err := c.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr); err != nil {
		return "", err
	}
	return addr, nil
}

// HAProxyServer is one row of HAProxy's stats CSV.
type HAProxyServer struct {
	Proxy, Name, Status, CheckStatus string
}

// Checked reports whether a health check has run on the server.
func (s HAProxyServer) Checked() bool {
	c := strings.TrimSpace(strings.TrimPrefix(s.CheckStatus, "* "))
	return c != "" && c != "INI"
}

// HAProxyServers reads the stats page (port 7000, basic auth) as CSV.
func (l *Lab) HAProxyServers(ctx context.Context, ip string) ([]HAProxyServer, error) {
	dial, err := l.Dialer()
	if err != nil {
		return nil, err
	}
	creds, err := l.Credentials()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, "7000")+"/;csv", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(creds.StatsName, creds.StatsPassword)
	resp, err := access.HTTPClient(dial, 3*time.Second).Do(req)
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

// waitFor polls f until it returns nil or the timeout passes; the error
// then is f's last.
func waitFor(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = f(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
