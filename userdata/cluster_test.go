package userdata

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/internal/topology"
)

// TestRealCluster runs the rendered files with the real daemons inside a
// throwaway network namespace that holds every node address on its loopback:
//   - three etcd members from the rendered etcd configs must form a cluster;
//   - `patroni --validate-config` must accept every patroni.yml with nothing
//     to say (its port and etcd checks pass because the addresses are real);
//   - pg-1 bootstraps from its patroni.yml (the post-bootstrap script creates
//     the app role and database), pg-2 joins as a streaming replica over
//     TLS, and HAProxy routes 5000 to the leader and 5001 to the replica, or
//     to the leader while no replica is up.
//
// It needs root for the namespace and to run PostgreSQL as postgres.
func TestRealCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and runs daemons as postgres")
	}
	for _, tool := range []string{"ip", "setpriv", "etcd", "etcdctl", "patroni", "haproxy"} {
		lookTool(t, tool)
	}
	c := defaultCluster(t)
	// Every node address is on one loopback here, so each connection
	// leaves from the address it goes to: source addresses do not tell the
	// nodes apart (TestLabPgHBA proves the rules where they do).
	c.SharedStack = []netip.Prefix{c.Plan.VPC}
	pw := testPasswords()
	secrets, err := RenderSecretsEnv(c, pw)
	require.NoError(t, err)
	env := parseEnv(t, secrets)

	base := rootDir(t)
	ns := netns(t, c)
	dial, err := access.Netns(ns)
	require.NoError(t, err)
	tt := newTestTLS(t, base)
	rootCert = tt.caFile
	client := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: tt.client(t)}, Timeout: 5 * time.Second}

	// etcd: three members from the rendered files.
	var endpoints []string
	for _, n := range c.Plan.ByRole(topology.RoleEtcd) {
		p := labPaths(base, n.Name)
		files, err := NodeFiles(c, n.Name, p)
		require.NoError(t, err)
		install(t, files, "")
		tt.install(t, c, n.Name, p, "")
		start(t, base, n.Name, ns, nil, "etcd", "--config-file", p.EtcdConfigFile)
		endpoints = append(endpoints, fmt.Sprintf("https://%s:2379", n.IP))
	}
	etcdctl := func(args ...string) (string, error) {
		return run(ns, nil, "etcdctl", append(tt.etcdctlTLS(), args...)...)
	}
	t.Run("etcd forms a cluster", func(t *testing.T) {
		eventually(t, 60*time.Second, "etcd endpoint health", func() error {
			_, err := etcdctl("--endpoints="+strings.Join(endpoints, ","), "--command-timeout=3s", "endpoint", "health")
			return err
		})
		out, err := etcdctl("--endpoints="+endpoints[0], "member", "list", "-w", "simple")
		require.NoError(t, err, out)
		for i, n := range c.Plan.ByRole(topology.RoleEtcd) {
			assert.Contains(t, out, fmt.Sprintf(", started, %s, https://%s:2380, %s", n.Name, n.IP, endpoints[i]))
		}
		assert.Equal(t, 3, strings.Count(out, ", started, "), out)
		// Patroni's etcd3 client uses the JSON gateway, not gRPC.
		resp, err := client.Post(endpoints[1]+"/v3/cluster/member/list", "application/json", strings.NewReader("{}"))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "etcd's gRPC gateway must be on for Patroni")
	})

	for _, n := range c.Plan.ByRole(topology.RolePatroni) {
		tt.install(t, c, n.Name, labPaths(base, n.Name), "postgres")
	}
	t.Run("patroni --validate-config", func(t *testing.T) {
		for _, profile := range Profiles() {
			pc := c
			pc.Profile = profile.Name
			pc.SynchronousMode = profile.Name != "fast"
			if profile.Name != "fast" {
				pc.Watchdog = WatchdogAutomatic // AWS's default
			}
			for _, n := range pc.Plan.ByRole(topology.RolePatroni) {
				p := labPaths(base, n.Name)
				cfg, err := RenderPatroniConfig(pc, n.Name, p)
				require.NoError(t, err)
				f := filepath.Join(base, n.Name+"-"+profile.Name+"-validate.yml")
				require.NoError(t, os.WriteFile(f, cfg, 0o644))
				out, err := run(ns, env, "patroni", "--validate-config", f)
				require.NoError(t, err, "%s/%s: %s", profile.Name, n.Name, out)
				// No tolerated messages: the environment is real, so
				// anything the validator says is a defect of the file.
				assert.Empty(t, out, "%s/%s", profile.Name, n.Name)
			}
		}
		// With backups: archive_command, archive_mode and restore_command
		// must pass the validator too.
		bc := c
		bc.Backup = testBackup()
		for _, n := range bc.Plan.ByRole(topology.RolePatroni) {
			cfg, err := RenderPatroniConfig(bc, n.Name, labPaths(base, n.Name))
			require.NoError(t, err)
			require.Contains(t, string(cfg), "archive-push %p")
			f := filepath.Join(base, n.Name+"-backup-validate.yml")
			require.NoError(t, os.WriteFile(f, cfg, 0o644))
			out, err := run(ns, env, "patroni", "--validate-config", f)
			require.NoError(t, err, "%s with backups: %s", n.Name, out)
			assert.Empty(t, out, "%s with backups", n.Name)
		}
		// Every workload on every golden size passes too.
		for _, sz := range tuningSizes {
			for _, w := range Workloads {
				tc := c
				tc.PostgresSize, tc.Workload = sz.size, w
				cfg, err := RenderPatroniConfig(tc, "pg-1", labPaths(base, "pg-1"))
				require.NoError(t, err)
				f := filepath.Join(base, "pg-1-"+sz.name+"-"+w+"-validate.yml")
				require.NoError(t, os.WriteFile(f, cfg, 0o644))
				out, err := run(ns, env, "patroni", "--validate-config", f)
				require.NoError(t, err, "%s %s: %s", sz.name, w, out)
				assert.Empty(t, out, "%s %s", sz.name, w)
			}
		}
		// And it does check: a member whose etcd hosts are all wrong fails.
		p := labPaths(base, "pg-1")
		cfg, err := RenderPatroniConfig(c, "pg-1", p)
		require.NoError(t, err)
		bad := strings.ReplaceAll(string(cfg), ":2379", ":2390")
		f := filepath.Join(base, "bad-validate.yml")
		require.NoError(t, os.WriteFile(f, []byte(bad), 0o644))
		out, err := run(ns, env, "patroni", "--validate-config", f)
		assert.Error(t, err)
		assert.Contains(t, out, "is not reachable")
	})

	pg1, _ := c.Plan.Node("pg-1")
	pg2, _ := c.Plan.Node("pg-2")
	startPatroni := func(n topology.Node, logName string) *daemon {
		p := labPaths(base, n.Name)
		files, err := NodeFiles(c, n.Name, p)
		require.NoError(t, err)
		install(t, files, "postgres")
		for _, d := range []string{p.PGSocketDir, p.PGLogDir, filepath.Dir(p.PGDataDir)} {
			require.NoError(t, os.MkdirAll(d, 0o750))
			chownPostgres(t, d)
		}
		chownPostgres(t, filepath.Join(base, n.Name))
		return start(t, base, logName, ns, env, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
			"env", "HOME="+filepath.Join(base, n.Name), "PYTHONPATH="+p.PythonPath, "patroni", p.PatroniConfigFile)
	}

	var pg1Daemon *daemon
	t.Run("leader bootstraps", func(t *testing.T) {
		pg1Daemon = startPatroni(pg1, "pg-1")
		eventually(t, 120*time.Second, "pg-1 /primary", func() error {
			return wantStatus(client, "OPTIONS", pg1, "/primary", nil, http.StatusOK)
		})
		ctx := context.Background()

		// The post-bootstrap script created app and its database; app logs
		// in with its password over TLS from inside the VPC.
		app := connect(t, dial, pg1.IP.String(), 5432, "app", "app", pw["app"], "verify-full")
		var user string
		var ssl bool
		require.NoError(t, app.QueryRow(ctx, `SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&user, &ssl))
		assert.Equal(t, "app", user)
		assert.True(t, ssl)
		var owner string
		require.NoError(t, app.QueryRow(ctx, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'`).Scan(&owner))
		assert.Equal(t, "app", owner)
		_, err := app.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
		require.NoError(t, err)

		// Non-TLS connections from the VPC are refused by pg_hba.
		_, err = connectErr(dial, pg1.IP.String(), 5432, "app", "app", pw["app"], "disable")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no pg_hba.conf entry")
		// A wrong password is refused.
		_, err = connectErr(dial, pg1.IP.String(), 5432, "app", "app", "wrong-password", "verify-full")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "password authentication failed")

		su := connect(t, dial, pg1.IP.String(), 5432, "postgres", "postgres", pw["superuser"], "verify-full")
		settings := map[string]string{}
		for _, name := range []string{"data_checksums", "password_encryption", "wal_level", "wal_log_hints", "ssl", "server_encoding", "wal_retrieve_retry_interval"} {
			var v string
			require.NoError(t, su.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v))
			settings[name] = v
		}
		assert.Equal(t, map[string]string{
			"data_checksums": "on", "password_encryption": "scram-sha-256", "wal_level": "replica",
			"wal_log_hints": "on", "ssl": "on", "server_encoding": "UTF8", "wal_retrieve_retry_interval": "1s",
		}, settings)
		roles := map[string]bool{}
		rows, err := su.Query(ctx, `SELECT rolname, rolreplication FROM pg_roles WHERE rolname IN ('replicator', 'rewinder', 'app', 'pgha_monitor', 'pgha_pooler')`)
		require.NoError(t, err)
		for rows.Next() {
			var name string
			var repl bool
			require.NoError(t, rows.Scan(&name, &repl))
			roles[name] = repl
		}
		require.NoError(t, rows.Err())
		assert.Equal(t, map[string]bool{"replicator": true, "rewinder": false, "app": false, "pgha_monitor": false, "pgha_pooler": false}, roles)
		var scram int
		require.NoError(t, su.QueryRow(ctx, `SELECT count(*) FROM pg_authid WHERE rolpassword LIKE 'SCRAM-SHA-256$%'`).Scan(&scram))
		assert.Equal(t, 6, scram, "postgres, replicator, rewinder, app, pgha_monitor and pgha_pooler all have SCRAM secrets")

		// The profile reached the DCS.
		var dcs map[string]any
		require.NoError(t, getJSON(client, pg1, "/config", &dcs))
		fast, err := LookupProfile("fast") // the cluster's profile (defaultCluster)
		require.NoError(t, err)
		assert.EqualValues(t, fast.TTL, dcs["ttl"])
		assert.EqualValues(t, fast.LoopWait, dcs["loop_wait"])
		assert.EqualValues(t, fast.RetryTimeout, dcs["retry_timeout"])
		assert.Equal(t, true, dcs["failsafe_mode"])

		// Unsafe REST endpoints need the REST API credentials.
		assert.NoError(t, wantStatus(client, "POST", pg1, "/reload", nil, http.StatusUnauthorized))
		assert.NoError(t, wantStatus(client, "POST", pg1, "/reload", &[2]string{"patroni", "wrong"}, http.StatusUnauthorized))
		assert.NoError(t, wantStatus(client, "POST", pg1, "/reload", &[2]string{"patroni", pw["restapi"]}, http.StatusAccepted))
	})

	t.Run("every hop refuses another CA, plain text and a missing client certificate", func(t *testing.T) {
		other := newTestTLS(t, t.TempDir())
		etcd1 := c.Plan.ByRole(topology.RoleEtcd)[0]
		get := func(cfg *tls.Config, url string) (int, error) {
			hc := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: cfg}, Timeout: 5 * time.Second}
			resp, err := hc.Get(url)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		etcdURL := fmt.Sprintf("https://%s:2379/health", etcd1.IP)
		restURL := fmt.Sprintf("https://%s:8008/health", pg1.IP)
		// The verified paths work...
		code, err := get(tt.client(t), etcdURL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		code, err = get(tt.client(t), restURL)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
		// ...a client that trusts another CA does not believe the servers...
		for _, u := range []string{etcdURL, restURL} {
			_, err := get(other.client(t), u)
			require.Error(t, err, u)
			assert.Contains(t, err.Error(), "certificate signed by unknown authority", u)
		}
		rootCert = other.caFile
		_, err = connectErr(dial, pg1.IP.String(), 5432, "app", "app", pw["app"], "verify-full")
		rootCert = tt.caFile
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate signed by unknown authority")
		// ...nor a server that is not the one it asked for (verify-full).
		conn, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=5432 user=app dbname=app sslmode=require", pg1.IP))
		require.NoError(t, err)
		conn.Password, conn.DialFunc = pw["app"], pgconn.DialFunc(dial)
		conn.TLSConfig = tt.client(t)
		conn.TLSConfig.ServerName = "pg-2"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = pgx.ConnectConfig(ctx, conn)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not pg-2")
		// etcd admits no client without a certificate of the cluster CA.
		noCert := tt.client(t)
		noCert.Certificates = nil
		_, err = get(noCert, etcdURL)
		require.Error(t, err, "etcd must refuse a client without a certificate")
		foreign := tt.client(t)
		foreign.Certificates = other.client(t).Certificates
		_, err = get(foreign, etcdURL)
		require.Error(t, err, "etcd must refuse a client certificate of another CA")
		out, err := run(ns, nil, "etcdctl", "--endpoints="+endpoints[0], "--cacert="+tt.caFile, "--command-timeout=3s", "get", "/service", "--prefix", "--keys-only")
		require.Error(t, err, "etcdctl without a client certificate: %s", out)
		// Plain text is refused on both.
		for _, u := range []string{etcdURL, restURL} {
			plain := strings.Replace(u, "https://", "http://", 1)
			code, err := get(nil, plain)
			if err == nil {
				assert.NotEqual(t, http.StatusOK, code, plain)
			}
		}
		_, err = connectErr(dial, pg1.IP.String(), 5432, "app", "app", pw["app"], "disable")
		require.Error(t, err)
	})

	// HAProxy from the rendered file, with the stats password in its
	// environment only.
	hp := labPaths(base, "haproxy-1")
	files, err := NodeFiles(c, "haproxy-1", hp)
	require.NoError(t, err)
	install(t, files, "")
	tt.install(t, c, "haproxy-1", hp, "")
	start(t, base, "haproxy-1", ns, env, "haproxy", "-db", "-f", hp.HAProxyConfigFile)
	haproxy1, _ := c.Plan.Node("haproxy-1")
	role := func(port int) (string, error) {
		// verify-full by HAProxy's address: each PostgreSQL node's
		// certificate names the HAProxy nodes it is reached through.
		conn, err := connectErr(dial, haproxy1.IP.String(), port, "app", "app", pw["app"], "verify-full")
		if err != nil {
			return "", err
		}
		defer conn.Close(context.Background())
		var addr string
		var replica bool
		err = conn.QueryRow(context.Background(), `SELECT host(inet_server_addr()), pg_is_in_recovery()`).Scan(&addr, &replica)
		return fmt.Sprintf("%s replica=%v", addr, replica), err
	}
	want := func(port int, what string) func() error {
		return func() error {
			got, err := role(port)
			if err != nil {
				return err
			}
			if got != what {
				return fmt.Errorf("port %d reached %s, want %s", port, got, what)
			}
			return nil
		}
	}
	leader := pg1.IP.String() + " replica=false"
	replica := pg2.IP.String() + " replica=true"

	t.Run("haproxy routes to the leader, and reads to it while no replica is up", func(t *testing.T) {
		eventually(t, 30*time.Second, "5000 to the leader", want(5000, leader))
		eventually(t, 30*time.Second, "5001 to the leader as backup", want(5001, leader))
		// Stats page: credentials required, and they work.
		stats := func(cred *[2]string) (int, error) {
			req, _ := http.NewRequest("GET", "https://"+haproxy1.IP.String()+":7000/;csv", nil)
			if cred != nil {
				req.SetBasicAuth(cred[0], cred[1])
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		code, err := stats(nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, code)
		code, err = stats(&[2]string{"stats", pw["stats"]})
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, code)
	})

	// PgBouncer on haproxy-1 from the rendered ini, in front of HAProxy's
	// leader port: clients log in with SCRAM through the auth_query
	// function post-bootstrap made, over verify-full TLS on both sides.
	var pooled *pgx.Conn
	startPgBouncer(t, c, base, ns, "haproxy-1", hp, pw)
	t.Run("pgbouncer pools through haproxy's leader port", func(t *testing.T) {
		pooled = checkPooler(t, c, dial, pw, leader)
	})
	if pooled != nil {
		t.Cleanup(func() { pooled.Close(context.Background()) })
	}

	t.Run("replica joins over TLS and takes the reads", func(t *testing.T) {
		startPatroni(pg2, "pg-2")
		eventually(t, 120*time.Second, "pg-2 /replica", func() error {
			return wantStatus(client, "OPTIONS", pg2, "/replica", nil, http.StatusOK)
		})
		su := connect(t, dial, pg1.IP.String(), 5432, "postgres", "postgres", pw["superuser"], "verify-full")
		eventually(t, 60*time.Second, "pg-2 streaming over TLS", func() error {
			var state string
			var ssl bool
			err := su.QueryRow(context.Background(), `SELECT r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'pg-2'`).Scan(&state, &ssl)
			if err != nil {
				return err
			}
			if state != "streaming" || !ssl {
				return fmt.Errorf("state %s ssl %v", state, ssl)
			}
			return nil
		})
		var slot string
		require.NoError(t, su.QueryRow(context.Background(), `SELECT slot_name FROM pg_replication_slots WHERE active`).Scan(&slot))
		assert.Equal(t, "pg_2", slot)
		eventually(t, 60*time.Second, "5001 to the replica", want(5001, replica))
		eventually(t, 10*time.Second, "5000 still to the leader", want(5000, leader))
		// The row written on the leader is on the replica.
		app := connect(t, dial, pg2.IP.String(), 5432, "app", "app", pw["app"], "verify-full")
		var n int
		require.NoError(t, app.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n))
		assert.Equal(t, 1, n)
	})

	// A hard leader failure: the replica takes over within the profile's
	// ttl, HAProxy follows, and the old leader rejoins as a replica (through
	// pg_rewind when its timeline diverged, which needs the rewind role's
	// pg_hba entry and TLS).
	t.Run("failover and rejoin", func(t *testing.T) {
		require.NotNil(t, pg1Daemon)
		p1 := labPaths(base, "pg-1")
		pidFile, err := os.ReadFile(filepath.Join(p1.PGDataDir, "postmaster.pid"))
		require.NoError(t, err)
		postmaster, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pg1Daemon.pid, syscall.SIGKILL))
		<-pg1Daemon.done
		require.NoError(t, syscall.Kill(postmaster, syscall.SIGKILL))
		// A query through the pooler while there is no leader waits in
		// PgBouncer (query_wait_timeout) and runs on the next one.
		held := make(chan error, 1)
		if pooled != nil {
			// Once HAProxy has cut PgBouncer's sessions to the old leader.
			waitPoolEmpty(t, c, dial, tt, pw)
			go func() { held <- onServer(pooled, pg2.IP.String()+" replica=false", 90*time.Second) }()
		}

		eventually(t, 90*time.Second, "pg-2 promoted", func() error {
			return wantStatus(client, "OPTIONS", pg2, "/primary", nil, http.StatusOK)
		})
		newLeader := pg2.IP.String() + " replica=false"
		eventually(t, 30*time.Second, "5000 to the new leader", want(5000, newLeader))
		if pooled != nil {
			select {
			case err := <-held:
				require.NoError(t, err, "the query held through the failover")
			case <-time.After(90 * time.Second):
				t.Fatal("the query held through the failover never finished")
			}
		}
		eventually(t, 30*time.Second, "5001 to the new leader as backup", want(5001, newLeader))

		startPatroni(pg1, "pg-1-rejoin")
		eventually(t, 120*time.Second, "pg-1 rejoined as a replica", func() error {
			return wantStatus(client, "OPTIONS", pg1, "/replica", nil, http.StatusOK)
		})
		eventually(t, 60*time.Second, "5001 to the rejoined replica", want(5001, pg1.IP.String()+" replica=true"))
		app := connect(t, dial, pg1.IP.String(), 5432, "app", "app", pw["app"], "verify-full")
		var n int
		require.NoError(t, app.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n))
		assert.Equal(t, 1, n, "the row written before the failover survived")
		// Informational: whether this run needed pg_rewind.
		if b, err := os.ReadFile(filepath.Join(base, "pg-1-rejoin.log")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "rewind") {
					t.Log(line)
				}
			}
		}
	})
}

// labPaths is a per-node layout under base, the way the lab lays nodes out.
func labPaths(base, node string) Paths {
	d := filepath.Join(base, node)
	return Paths{
		EtcdConfigFile:      filepath.Join(d, "etcd.conf.yml"),
		EtcdDataDir:         filepath.Join(d, "etcd-data"),
		PatroniConfigFile:   filepath.Join(d, "patroni.yml"),
		SecretsEnvFile:      filepath.Join(d, "secrets.env"),
		PostBootstrap:       filepath.Join(d, "post-bootstrap.sh"),
		PGDataDir:           filepath.Join(d, "pg", "data"),
		PGSocketDir:         filepath.Join(d, "run"),
		PGPassFile:          filepath.Join(d, "pgpass"),
		PGLogDir:            filepath.Join(d, "log"),
		PythonPath:          filepath.Join(d, "python"),
		TLSCAFile:           filepath.Join(d, "tls", "ca.crt"),
		TLSCertFile:         filepath.Join(d, "tls", "node.crt"),
		TLSKeyFile:          filepath.Join(d, "tls", "node.crt.key"),
		HAProxyConfigFile:   filepath.Join(d, "haproxy.cfg"),
		PgBouncerConfigFile: filepath.Join(d, "pgbouncer.ini"),
		PgBouncerAuthFile:   filepath.Join(d, "pgbouncer-users.txt"),
		PgBouncerKeyFile:    filepath.Join(d, "tls", "pgbouncer.key"),
		PgBackRestConfig:    filepath.Join(d, "pgbackrest.conf"),
		PgBackRestSpool:     filepath.Join(d, "pgbackrest", "spool"),
		PgBackRestLog:       filepath.Join(d, "pgbackrest", "log"),
		PgBackRestLock:      filepath.Join(d, "pgbackrest", "lock"),
	}
}

// rootDir is a scratch directory that the postgres user can traverse
// (t.TempDir is 0700 root).
func rootDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "pgha-ud-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(d, 0o755))
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// netns creates a namespace with every node address on its loopback and
// deletes it when the test ends.
func netns(t *testing.T, c Cluster) string {
	name := fmt.Sprintf("pgha-ud-%d", os.Getpid())
	nstest.New(t, name)
	for _, n := range c.Plan.Nodes {
		nstest.IP(t, "-n", name, "addr", "add", n.IP.String()+"/32", "dev", "lo")
	}
	return name
}

func install(t *testing.T, files []File, owner string) {
	for _, f := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(f.Path), 0o755))
		require.NoError(t, os.WriteFile(f.Path, f.Content, f.Mode))
		require.NoError(t, os.Chmod(f.Path, f.Mode))
		if owner != "" && strings.HasPrefix(f.Owner, owner+":") {
			chownPostgres(t, f.Path)
		}
	}
}

func chownPostgres(t *testing.T, path string) {
	u, err := user.Lookup("postgres")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	require.NoError(t, os.Chown(path, uid, gid))
}

func parseEnv(t *testing.T, b []byte) []string {
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		require.Contains(t, line, "=")
		env = append(env, line)
	}
	return env
}

// baseEnv is a clean environment: no HOME of root's, no stray PATRONI_*.
func baseEnv(extra []string) []string {
	return append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8"}, extra...)
}

// run executes a command inside the namespace and returns its output.
func run(ns string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Env = baseEnv(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs a daemon inside the namespace (`ip netns exec`, setpriv and env
// all exec, so the PID is the daemon's) and stops that PID at cleanup.
type daemon struct {
	pid  int
	done chan struct{}
}

func start(t *testing.T, base, name, ns string, env []string, argv ...string) *daemon {
	logPath := filepath.Join(base, name+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = baseEnv(env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		stop(t, cmd.Process.Pid, done)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (last 3000 bytes) ---\n%s", name, tail(b, 3000))
		}
	})
	return &daemon{pid: cmd.Process.Pid, done: done}
}

// stop sends SIGTERM (Patroni then stops PostgreSQL cleanly), waits, and
// only then SIGKILLs the process; it also makes sure a postmaster left
// behind by a killed Patroni goes too.
func stop(t *testing.T, pid int, done chan struct{}) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(30 * time.Second):
	}
	t.Errorf("pid %d ignored SIGTERM for 30 s; killing it", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-done
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func wantStatus(client *http.Client, method string, n topology.Node, path string, cred *[2]string, want int) error {
	req, err := http.NewRequest(method, fmt.Sprintf("https://%s:8008%s", n.IP, path), nil)
	if err != nil {
		return err
	}
	if cred != nil {
		req.SetBasicAuth(cred[0], cred[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s on %s: status %d, want %d", method, path, n.Name, resp.StatusCode, want)
	}
	return nil
}

func getJSON(client *http.Client, n topology.Node, path string, v any) error {
	resp, err := client.Get(fmt.Sprintf("https://%s:8008%s", n.IP, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// rootCert is the live test's cluster CA, libpq's sslrootcert for
// sslmode=verify-full.
var rootCert string

func connectErr(dial access.DialFunc, host string, port int, user, db, password, sslmode string) (*pgx.Conn, error) {
	conninfo := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=%s connect_timeout=5", host, port, user, db, sslmode)
	if sslmode == "verify-full" {
		conninfo += " sslrootcert=" + rootCert
	}
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	cfg.DialFunc = pgconn.DialFunc(dial)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

func connect(t *testing.T, dial access.DialFunc, host string, port int, user, db, password, sslmode string) *pgx.Conn {
	t.Helper()
	conn, err := connectErr(dial, host, port, user, db, password, sslmode)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
