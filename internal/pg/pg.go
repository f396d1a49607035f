// Package pg opens PostgreSQL sessions the way every part of pgha does:
// TLS that verifies the server against the cluster CA and by the name the
// client asked for, as libpq's sslmode=verify-full (the cluster's pg_hba
// admits nothing but TLS from the network), a connect timeout (HAProxy
// holds a connection when no server is up), and the dial path of the
// caller (direct, a lab namespace, an SSH jump).
package pg

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
)

// Target is where and as whom to connect.
type Target struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	Dial     access.DialFunc
	// ConnectTimeout bounds the TCP connect, TLS and auth. HAProxy accepts
	// and holds a connection when no server is up, so without it a client
	// would wait forever.
	ConnectTimeout time.Duration
	// Application names the client in pg_stat_activity (default pgha).
	Application string
	// Fallbacks are further host:port entry points, tried in order when
	// Host:Port cannot be reached, as libpq's multi-host URIs do.
	Fallbacks []string
	// SessionAttrs is libpq's target_session_attrs: read-write on the write
	// side refuses a server that took the connection but cannot write.
	SessionAttrs string
	// TLS verifies the server: the cluster CA (pki.Trust.Config). Its
	// ServerName is set to each host tried. Required.
	TLS *tls.Config
	// Pooled is a PgBouncer in transaction pooling: consecutive statements
	// may run on different server connections, which keep no prepared
	// statement, so queries go by the simple protocol.
	Pooled bool
}

// FromConnection is a Target for a libpq URI of the stack outputs: its
// hosts in order, its user and database and target_session_attrs, with
// the password, the dial path and the connect timeout given.
func FromConnection(uri, password string, dial access.DialFunc, timeout time.Duration, tlsCfg *tls.Config) (Target, error) {
	hosts, user, db, attrs, err := outputs.ParseConnectionURI(uri)
	if err != nil {
		return Target{}, err
	}
	host, port, _ := net.SplitHostPort(hosts[0])
	p, err := strconv.Atoi(port)
	if err != nil {
		return Target{}, fmt.Errorf("%q: port %q: %w", uri, port, err)
	}
	return Target{Host: host, Port: p, User: user, Password: password, Database: db, Dial: dial,
		ConnectTimeout: timeout, Fallbacks: hosts[1:], SessionAttrs: attrs, TLS: tlsCfg}, nil
}

func (t Target) application() string {
	if t.Application == "" {
		return "pgha"
	}
	return t.Application
}

func (t Target) String() string {
	return strings.Join(append([]string{net.JoinHostPort(t.Host, strconv.Itoa(t.Port))}, t.Fallbacks...), ",")
}

// Config builds a pgx config: TLS that verifies the server's certificate
// against the cluster CA and its name against the host dialled (libpq's
// verify-full; pg_hba demands TLS of every non-local client), a connect
// timeout, and the dial path.
func (t Target) Config() (*pgx.ConnConfig, error) {
	if t.TLS == nil {
		return nil, fmt.Errorf("connection settings for %s: no TLS configuration to verify the server with", t)
	}
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(t.User, t.Password),
		Host:   t.String(),
		Path:   "/" + t.Database,
	}
	q := url.Values{}
	q.Set("sslmode", "require")
	q.Set("connect_timeout", strconv.Itoa(int((timeout+time.Second-1)/time.Second)))
	q.Set("application_name", t.application())
	if t.SessionAttrs != "" {
		q.Set("target_session_attrs", t.SessionAttrs)
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s: %w", t, err)
	}
	// sslmode=require made pgx's TLS configuration, which verifies
	// nothing; the cluster's verifies the chain and the name. require has
	// no plain-text fallback, so every host tried gets exactly this.
	cfg.TLSConfig = serverTLS(t.TLS, cfg.Host)
	for _, fb := range cfg.Fallbacks {
		fb.TLSConfig = serverTLS(t.TLS, fb.Host)
	}
	if t.Dial != nil {
		cfg.DialFunc = pgconn.DialFunc(t.Dial)
	}
	// Resolve names at the far end of the dial path (an SSH jump host may
	// see names that this machine cannot).
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.ConnectTimeout = timeout
	if t.Pooled {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		cfg.StatementCacheCapacity = 0
		cfg.DescriptionCacheCapacity = 0
	}
	return cfg, nil
}

// serverTLS is base for one host: verify its certificate names host.
func serverTLS(base *tls.Config, host string) *tls.Config {
	c := base.Clone()
	c.ServerName = host
	c.InsecureSkipVerify = false
	return c
}

// Connect opens one connection within the connect timeout.
func (t Target) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	// The timeout holds for each host a multi-host target tries.
	timeout := cfg.ConnectTimeout * time.Duration(1+len(t.Fallbacks))
	cctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", t, err)
	}
	return c, nil
}

// ServerInfo says which node a connection landed on.
type ServerInfo struct {
	Addr       string
	InRecovery bool
}

// Whoami asks the server its own address and whether it is a replica.
func Whoami(ctx context.Context, c *pgx.Conn) (ServerInfo, error) {
	var s ServerInfo
	err := c.QueryRow(ctx, "SELECT host(inet_server_addr()), pg_is_in_recovery()").Scan(&s.Addr, &s.InRecovery)
	return s, err
}
