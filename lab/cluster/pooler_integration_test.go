package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/topology"
)

// TestLabPooler brings up a namespace lab and goes through each HAProxy
// node's PgBouncer from the lab's client namespace, as an application
// would: TLS that verifies the node's certificate, SCRAM as the
// application user (PgBouncer's auth_query through the function
// post-bootstrap made), writes and reads on the leader; a wrong password,
// plain text and the auth function itself are refused. A kill of an
// HAProxy node takes its PgBouncer too, and a start brings both back.
func TestLabPooler(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a whole lab")
	}
	l := namespaceTestLab(t, "pghapgb", "pgbouncer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := l.Up(ctx, UpOptions{Profile: "fast"})
	require.NoError(t, err)
	s, err := outputs.Load(l.OutputsFile())
	require.NoError(t, err)
	ha := l.Plan.ByRole(topology.RoleHAProxy)
	require.Equal(t, &outputs.Endpoint{Host: ha[0].IP.String(), Port: topology.PortPooler}, s.PoolerEndpoint)
	p, err := l.Probe()
	require.NoError(t, err)
	leader, ok := l.Plan.Node(res.Leader)
	require.True(t, ok)
	c := s.Credentials
	// TLS verified by the address dialled, against the lab CA only (p.TLS).
	through := func(host, password string) (*pgx.Conn, error) {
		cfg, err := pg.Target{Host: host, Port: topology.PortPooler, User: c.AppName, Password: password,
			Database: c.AppDatabase, Dial: p.Dial, ConnectTimeout: 5 * time.Second, TLS: p.TLS}.Config()
		if err != nil {
			return nil, err
		}
		// Transaction pooling keeps no prepared statement: simple protocol.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		return pgx.ConnectConfig(ctx, cfg)
	}

	t.Run("the application writes and reads through each pooler", func(t *testing.T) {
		for i, h := range ha {
			cn, err := through(h.IP.String(), c.AppPassword)
			require.NoError(t, err, "the application through %s's PgBouncer", h.Name)
			var user, addr string
			var replica, ssl bool
			require.NoError(t, cn.QueryRow(ctx, `SELECT current_user, host(inet_server_addr()), pg_is_in_recovery(), ssl
				FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&user, &addr, &replica, &ssl))
			assert.Equal(t, c.AppName, user)
			assert.Equal(t, leader.IP.String(), addr, "%s's PgBouncer reaches the leader", h.Name)
			assert.False(t, replica)
			assert.True(t, ssl, "PgBouncer's server side is TLS too")
			_, err = cn.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS pooled_probe (id int); INSERT INTO pooled_probe VALUES (%d)", i))
			require.NoError(t, err)
			var n int
			require.NoError(t, cn.QueryRow(ctx, "SELECT count(*) FROM pooled_probe").Scan(&n))
			assert.Equal(t, i+1, n)
			// The auth user's function is not the application's to call.
			_, err = cn.Exec(ctx, "SELECT * FROM pgbouncer.get_auth('postgres')")
			var pe *pgconn.PgError
			require.True(t, errors.As(err, &pe), "want a refusal, got %v", err)
			assert.Equal(t, "42501", pe.Code, "%v", err)
			cn.Close(ctx)
		}
	})

	t.Run("a wrong password and plain text are refused", func(t *testing.T) {
		h := ha[0].IP.String()
		_, err := through(h, "wrong-password")
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "want a refusal by PgBouncer, got %v", err)
		assert.Contains(t, pe.Message, "authentication failed")
		cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5",
			h, topology.PortPooler, c.AppName, c.AppDatabase))
		require.NoError(t, err)
		cfg.Password, cfg.DialFunc = c.AppPassword, pgconn.DialFunc(p.Dial)
		cn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			cn.Close(ctx)
		}
		require.Error(t, err, "PgBouncer admits no client without TLS")
	})

	t.Run("status shows the poolers", func(t *testing.T) {
		help := l.PoolerHelp()
		for _, h := range ha {
			assert.Contains(t, help, fmt.Sprintf("%s:%d  %s  running (pid ", h.IP, topology.PortPooler, h.Name))
		}
		assert.Contains(t, l.ConnectHelp(), fmt.Sprintf("port=%d", topology.PortPooler))
	})

	t.Run("an HAProxy node's kill and start take its PgBouncer along", func(t *testing.T) {
		h := ha[1]
		require.NoError(t, l.Kill(ctx, h.Name))
		_, running := l.pooler(h.Name)
		assert.False(t, running, "the node's PgBouncer was killed with it")
		require.NoError(t, l.Start(ctx, h.Name))
		require.NoError(t, l.waitPoolers(ctx))
		assert.True(t, strings.Contains(l.PoolerHelp(), h.Name+"  running"))
	})
}
