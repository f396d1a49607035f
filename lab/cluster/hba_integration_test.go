package cluster

import (
	"context"
	"errors"
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

// TestLabPgHBA proves the rendered pg_hba with the real daemons, from the
// lab's client namespace (an allowed client address, like one in
// allowedCidrs on AWS): the superuser, pg_rewind's user and replication are
// refused through HAProxy and straight to a node, the application user is
// admitted through HAProxy only, and pgha's monitor role reads what the
// checks need and can write nothing.
func TestLabPgHBA(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a whole lab")
	}
	l := namespaceTestLab(t, "pghahba")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := l.Up(ctx, UpOptions{Profile: "fast"})
	require.NoError(t, err)
	s, err := outputs.Load(l.OutputsFile())
	require.NoError(t, err)
	p, err := l.Probe()
	require.NoError(t, err)
	f := p.Formation(ctx)
	require.NoError(t, f.Err(), "the lab's own probe (the monitor role) sees the formation")
	require.Equal(t, res.Leader, f.Leader.Name)
	leader := f.Leader.Host
	c := s.Credentials
	target := func(user, password, host string, port int) pg.Target {
		return pg.Target{Host: host, Port: port, User: user, Password: password, Database: c.AppDatabase,
			Dial: p.Dial, ConnectTimeout: 5 * time.Second, TLS: p.TLS}
	}
	write, read := s.WriteEndpoint, s.ReadEndpoint

	refused := func(t *testing.T, tg pg.Target) {
		t.Helper()
		cn, err := tg.Connect(ctx)
		if err == nil {
			cn.Close(ctx)
		}
		require.Error(t, err, "%s logged in at %s", tg.User, tg)
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "%s at %s: want a refusal by the server, got %v", tg.User, tg, err)
		assert.Equal(t, "28000", pe.Code, "%s at %s: %v", tg.User, tg, err)
		assert.Contains(t, pe.Message, "no pg_hba.conf entry", "%s at %s", tg.User, tg)
	}

	t.Run("the superuser and rewinder are refused from the client", func(t *testing.T) {
		for _, ep := range []outputs.Endpoint{write, read, {Host: leader, Port: topology.PortPostgres}} {
			refused(t, target(c.SuperuserName, c.SuperuserPassword, ep.Host, ep.Port))
			refused(t, target(c.RewindName, c.RewindPassword, ep.Host, ep.Port))
		}
	})

	t.Run("replication is refused from the client", func(t *testing.T) {
		cfg, err := target(c.ReplicationName, c.ReplicationPassword, leader, topology.PortPostgres).Config()
		require.NoError(t, err)
		cfg.RuntimeParams["replication"] = "true"
		cn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
		if err == nil {
			cn.Close(ctx)
		}
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe), "a replication connection from the client: %v", err)
		assert.Equal(t, "28000", pe.Code, "%v", err)
		assert.Contains(t, pe.Message, "no pg_hba.conf entry")
	})

	t.Run("the application user through HAProxy only", func(t *testing.T) {
		cn, err := target(c.AppName, c.AppPassword, write.Host, write.Port).Connect(ctx)
		require.NoError(t, err, "the application through %s", write)
		var user, addr string
		require.NoError(t, cn.QueryRow(ctx, "SELECT current_user, host(inet_server_addr())").Scan(&user, &addr))
		assert.Equal(t, c.AppName, user)
		assert.Equal(t, leader, addr, "%s reaches the leader", write)
		_, err = cn.Exec(ctx, "CREATE TABLE IF NOT EXISTS hba_probe (id int); INSERT INTO hba_probe VALUES (1)")
		require.NoError(t, err, "the application writes its own database")
		cn.Close(ctx)
		refused(t, target(c.AppName, c.AppPassword, leader, topology.PortPostgres))
	})

	t.Run("the monitor reads what the checks need", func(t *testing.T) {
		for _, ep := range []outputs.Endpoint{{Host: leader, Port: topology.PortPostgres}, write} {
			cn, err := target(c.MonitorName, c.MonitorPassword, ep.Host, ep.Port).Connect(ctx)
			require.NoError(t, err, "the monitor at %s (straight from the client, and through HAProxy as from the jump host)", ep)
			var n int
			require.NoError(t, cn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE client_addr IS NOT NULL AND replay_lsn IS NOT NULL").Scan(&n))
			assert.Equal(t, 2, n, "pg_monitor sees both replicas in full")
			var seg string
			require.NoError(t, cn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg))
			var failed int64
			require.NoError(t, cn.QueryRow(ctx, "SELECT failed_count FROM pg_stat_archiver").Scan(&failed))
			cn.Close(ctx)
		}
		// On a replica too: the scenarios read every node.
		for _, r := range f.Replicas {
			cn, err := target(c.MonitorName, c.MonitorPassword, r.Host, topology.PortPostgres).Connect(ctx)
			require.NoError(t, err, "the monitor on %s", r.Name)
			var inRecovery bool
			require.NoError(t, cn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
			assert.True(t, inRecovery)
			cn.Close(ctx)
		}
	})

	t.Run("the monitor writes nothing and is no superuser", func(t *testing.T) {
		cn, err := target(c.MonitorName, c.MonitorPassword, leader, topology.PortPostgres).Connect(ctx)
		require.NoError(t, err)
		defer cn.Close(ctx)
		denied := func(sql string) {
			t.Helper()
			_, err := cn.Exec(ctx, sql)
			var pe *pgconn.PgError
			require.True(t, errors.As(err, &pe), "%s: want a refusal, got %v", sql, err)
			assert.Equal(t, "42501", pe.Code, "%s: %v", sql, err)
		}
		denied("CREATE TABLE hba_monitor_probe (id int)")
		denied("CREATE TEMP TABLE hba_monitor_probe (id int)")
		denied("INSERT INTO hba_probe VALUES (2)")
		denied("SELECT * FROM hba_probe")
		denied("SET ROLE " + pgx.Identifier{c.SuperuserName}.Sanitize())
		denied("CREATE ROLE hba_monitor_probe")
		// Only the application database: not postgres, where PUBLIC may
		// create temporary tables.
		other := target(c.MonitorName, c.MonitorPassword, leader, topology.PortPostgres)
		other.Database = "postgres"
		refused(t, other)
		var super, member bool
		require.NoError(t, cn.QueryRow(ctx, "SELECT rolsuper, pg_has_role(current_user, 'pg_monitor', 'member') FROM pg_roles WHERE rolname = current_user").Scan(&super, &member))
		assert.False(t, super)
		assert.True(t, member)
	})

	// pgha:workload sizes max_connections and HAProxy's per-server limit
	// below it: a burst larger than HAProxy lets through waits in its
	// queue and then runs; the same burst straight at PostgreSQL is
	// refused with "too many clients".
	t.Run("a burst waits in HAProxy's queue instead of being refused", func(t *testing.T) {
		tu, err := l.Spec().Tuning()
		require.NoError(t, err)
		perServer := tu.HAProxyMaxConn(len(l.Plan.ByRole(topology.RoleHAProxy)))
		// Through HAProxy: more sessions than max_connections; it sends the
		// leader perServer at a time and queues the rest.
		n := tu.MaxConnections + 20
		b := Burst(ctx, target(c.AppName, c.AppPassword, write.Host, write.Port), n, 2*time.Second)
		t.Logf("through %s (maxconn %d per server): %d of %d sessions ran, %d refused, slowest %.1f s", write, perServer, b.Ran, n, len(b.Errors), b.Slowest.Seconds())
		assert.Empty(t, b.Errors, "every session of the burst must run, the excess after waiting in the queue")
		assert.Greater(t, b.Slowest, 3*time.Second, "the excess waited for a slot (each session holds its slot 2 s)")
		// The same burst straight at the leader.
		b = Burst(ctx, target(c.MonitorName, c.MonitorPassword, leader, topology.PortPostgres), n, 2*time.Second)
		t.Logf("straight to %s (max_connections %d): %d of %d sessions ran, %d refused", leader, tu.MaxConnections, b.Ran, n, len(b.Errors))
		require.NotEmpty(t, b.Errors, "PostgreSQL must refuse what exceeds max_connections")
		for _, err := range b.Errors {
			var pe *pgconn.PgError
			if assert.True(t, errors.As(err, &pe), "want a refusal by the server, got %v", err) {
				assert.Equal(t, "53300", pe.Code, "too many clients: %v", err)
			}
		}
		assert.Equal(t, len(b.Errors), b.Refused)
	})
}
