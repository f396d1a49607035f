// Package probe is the one way pgha looks at a running cluster: etcd's
// members and leader, Patroni's formation (one leader, replicas streaming
// by the leader's own pg_stat_replication, one timeline, the sync standby),
// and what HAProxy does with fresh connections. The lab waits on it at
// start-up and shows it in `lab status`; validate judges with it; the
// scenarios wait on it. Everything goes through the caller's dial path.
package probe

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/topology"
)

// Probe looks at the cluster a stack describes.
type Probe struct {
	Stack outputs.Stack
	Dial  access.DialFunc
	// HTTP reaches Patroni's REST API and HAProxy's stats page.
	HTTP    *http.Client
	Patroni *patroni.Client
	// EtcdHTTP returns the client that reaches one etcd member. Over SSH
	// access it is a hop on the member itself, since the security groups
	// keep etcd's port closed to the jump host; nil means HTTP.
	EtcdHTTP func(ctx context.Context, n outputs.Node) (*http.Client, error)
	// ConnectTimeout bounds each PostgreSQL connection (default 3 s).
	ConnectTimeout time.Duration
	// TLS verifies every server against the cluster CA and presents
	// pgha's client certificate (which etcd requires).
	TLS *tls.Config
}

// New is a probe with 3-second HTTPS requests through dial, verified
// against the stack's CA.
func New(s outputs.Stack, dial access.DialFunc) *Probe {
	cfg := TLSConfig(s)
	hc := access.HTTPSClient(dial, 3*time.Second, cfg)
	return &Probe{
		Stack: s, Dial: dial, HTTP: hc, TLS: cfg,
		Patroni: &patroni.Client{HTTP: hc, Port: topology.PortPatroniAPI, Scheme: "https",
			User: s.Credentials.RestAPIName, Password: s.Credentials.RestAPIPassword},
	}
}

// TLSConfig is the stack's client TLS configuration. Outputs without a
// usable CA give one that refuses every server with the reason, so every
// check says why rather than trusting an unverified server.
func TLSConfig(s outputs.Stack) *tls.Config {
	cfg, err := s.Trust().Config("")
	if err != nil {
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
			VerifyConnection: func(tls.ConnectionState) error { return err }}
	}
	return cfg
}

func (p *Probe) connectTimeout() time.Duration {
	if p.ConnectTimeout > 0 {
		return p.ConnectTimeout
	}
	return 3 * time.Second
}

// Nodes of one role, in plan order.
func (p *Probe) Nodes(r topology.Role) []outputs.Node { return p.Stack.ByRole(r) }

// Monitor is pgha's monitor role straight to one node's PostgreSQL, in the
// application database: it sees pg_stat_replication and pg_stat_archiver
// in full (pg_monitor), may close a WAL segment (pg_switch_wal), and reads
// validate's own table, which the application user grants it; it writes
// nothing. pg_hba admits it from the HAProxy nodes (the jump host on AWS)
// and a lab's client. Every per-node query of pgha's checks uses it.
func (p *Probe) Monitor(host string) pg.Target {
	c := p.Stack.Credentials
	return pg.Target{Host: host, Port: topology.PortPostgres, User: c.MonitorName, Password: c.MonitorPassword,
		Database: c.AppDatabase, Dial: p.Dial, ConnectTimeout: p.connectTimeout(), TLS: p.TLS}
}

// Super is the superuser straight to one node's PostgreSQL, in the
// application database. pg_hba admits it only from the PostgreSQL nodes
// themselves, so from where validate runs it is refused: pgha's checks use
// Monitor, and what only the superuser may do runs on the node over SSH,
// as the OS user postgres on the local socket.
func (p *Probe) Super(host string) pg.Target {
	c := p.Stack.Credentials
	return pg.Target{Host: host, Port: topology.PortPostgres, User: c.SuperuserName, Password: c.SuperuserPassword,
		Database: c.AppDatabase, Dial: p.Dial, ConnectTimeout: p.connectTimeout(), TLS: p.TLS}
}

// App is the application user at host:port (an HAProxy node or endpoint).
func (p *Probe) App(host string, port int) pg.Target {
	c := p.Stack.Credentials
	return pg.Target{Host: host, Port: port, User: c.AppName, Password: c.AppPassword,
		Database: c.AppDatabase, Dial: p.Dial, ConnectTimeout: p.connectTimeout(), TLS: p.TLS}
}

// Whoami opens a fresh session on t and asks which server answered.
func Whoami(ctx context.Context, t pg.Target) (pg.ServerInfo, error) {
	c, err := t.Connect(ctx)
	if err != nil {
		return pg.ServerInfo{}, err
	}
	defer c.Close(context.Background())
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return pg.Whoami(qctx, c)
}

// query runs one query as the monitor on host and collects its rows.
func query[T any](ctx context.Context, p *Probe, host, sql string, scan pgx.RowToFunc[T]) ([]T, error) {
	c, err := p.Monitor(host).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scan)
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Switchover asks Patroni on host to hand leadership from leader to
// candidate. Patroni answers only once the candidate has taken over, so
// this request, unlike the probe's others, may take up to 90 s.
func (p *Probe) Switchover(ctx context.Context, host, leader, candidate string) error {
	slow := *p.Patroni
	slow.HTTP = access.HTTPSClient(p.Dial, 90*time.Second, p.TLS)
	_, err := slow.Switchover(ctx, host, leader, candidate)
	return err
}
