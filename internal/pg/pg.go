// Package pg opens PostgreSQL sessions the way every part of pgha does:
// TLS required (the cluster's pg_hba admits nothing else from the network),
// a connect timeout (HAProxy holds a connection when no server is up), and
// the dial path of the caller (direct, a lab namespace, an SSH jump).
package pg

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgha/pgha/internal/access"
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
}

func (t Target) application() string {
	if t.Application == "" {
		return "pgha"
	}
	return t.Application
}

func (t Target) String() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Config builds a pgx config: TLS required (sslmode=require, as the cluster's
// pg_hba demands for non-local clients), a connect timeout, and the dial path.
func (t Target) Config() (*pgx.ConnConfig, error) {
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
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s: %w", t, err)
	}
	if t.Dial != nil {
		cfg.DialFunc = pgconn.DialFunc(t.Dial)
	}
	// Resolve names at the far end of the dial path (an SSH jump host may
	// see names that this machine cannot).
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.ConnectTimeout = timeout
	return cfg, nil
}

// Connect opens one connection within the connect timeout.
func (t Target) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	timeout := cfg.ConnectTimeout
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
