package userdata

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/pooler"
	"github.com/pgha/pgha/internal/topology"
)

// The poolers' server connections, both of them together, fit what the
// leader has left after the reserved and the monitoring connections, and
// leave a share of it to direct clients of HAProxy's leader port; each
// pooler's also fit its own HAProxy's maxconn towards the leader, through
// which they go.
func TestPoolSizeFitsMaxConnections(t *testing.T) {
	sizes := append([]Size{MinSize, DefaultSize}, Size{MemoryMiB: 65536, VCPUs: 16}, Size{MemoryMiB: 1 << 20, VCPUs: 128})
	for _, sz := range sizes {
		for _, w := range Workloads {
			tu, err := Tune(sz, w)
			require.NoError(t, err)
			for poolers := 1; poolers <= 3; poolers++ {
				p := tu.PoolSize(poolers)
				what := fmt.Sprintf("%s %s, %d poolers", sz, w, poolers)
				require.Positive(t, p.Servers, what)
				used := poolers*p.Servers + reservedConnections + monitorConnections
				assert.Less(t, used, tu.MaxConnections, "%s: the poolers take every connection the leader has", what)
				assert.LessOrEqual(t, p.Servers, tu.HAProxyMaxConn(poolers), "%s: a pooler's connections would queue in its own HAProxy", what)
				assert.Equal(t, PoolerMaxClients, p.Clients)
			}
		}
	}
	// The default node (t3.medium, oltp): max_connections 200, less 10
	// reserved and 5 monitoring, three quarters of that over two poolers.
	tu, err := Tune(DefaultSize, WorkloadOLTP)
	require.NoError(t, err)
	assert.Equal(t, 200, tu.MaxConnections)
	assert.Equal(t, PoolSize{Servers: 69, Clients: 1000}, tu.PoolSize(2))
	assert.Equal(t, 95, tu.HAProxyMaxConn(2), "HAProxy's share per node, which a pooler's 69 fit")
	tu, err = Tune(DefaultSize, WorkloadNone)
	require.NoError(t, err)
	assert.Equal(t, 31, tu.PoolSize(2).Servers, "PostgreSQL's default 100: (100-15)*3/4/2")
}

// A query waits in the pooler through a whole failover of its profile
// (twice the bound), and the bound adds up the steps of a failover.
func TestQueryWaitTimeout(t *testing.T) {
	got := map[string][2]int{}
	for _, p := range Profiles() {
		got[p.Name] = [2]int{p.FailoverBound(), p.QueryWaitTimeout()}
		assert.Greater(t, p.FailoverBound(), p.TTL, "%s: a failover takes at least the lock's lifetime", p.Name)
		assert.GreaterOrEqual(t, p.QueryWaitTimeout(), 2*p.FailoverBound(), p.Name)
	}
	// fast: ttl 9 + loop_wait 1 + 2 + 2 + HAProxy's 300 + 200 ms rounded up.
	assert.Equal(t, map[string][2]int{"fast": {15, 30}, "balanced": {30, 60}, "safe": {48, 96}}, got)
}

func TestPoolMode(t *testing.T) {
	c := defaultCluster(t)
	assert.Equal(t, PoolTransaction, c.Pooling(), "transaction pooling by default")
	for _, m := range []string{PoolTransaction, PoolSession} {
		c.PoolMode = m
		require.NoError(t, c.Validate())
		ini, err := RenderPgBouncerConfig(c, "haproxy-1", CloudPaths())
		require.NoError(t, err)
		assert.Contains(t, string(ini), "\npool_mode = "+m+"\n")
	}
	c.PoolMode = "statement"
	assert.ErrorContains(t, c.Validate(), `cluster PoolMode "statement": use transaction (the default) or session`)
	// The console's user is PgBouncer's alone: it may be no PostgreSQL role.
	c = defaultCluster(t)
	c.Users.PoolerAdmin = c.Users.App
	assert.ErrorContains(t, c.Validate(), `Users.PoolerAdmin "app" is the same role as Users.App`)
}

// The pooler's password is read by the PostgreSQL nodes (post-bootstrap
// creates its role) and the HAProxy nodes (PgBouncer logs in with it); the
// console's only by the HAProxy nodes. Neither is in the other nodes'
// secrets, and both are output credentials (TestEverySecretIsAnOutputCredential).
func TestPoolerSecretReaders(t *testing.T) {
	readers := func(name string) []topology.Role {
		s, ok := SecretByName(name)
		require.True(t, ok, name)
		return s.Roles
	}
	assert.Equal(t, []topology.Role{topology.RolePatroni, topology.RoleHAProxy}, readers("pooler"))
	assert.Equal(t, []topology.Role{topology.RoleHAProxy}, readers("pooler-admin"))
	c := defaultCluster(t)
	for _, n := range append(slices.Clone(c.Plan.Nodes), c.Plan.Monitor()) {
		mc := c
		mc.Monitoring = &Monitoring{}
		fetch := cloudFileContent(t, mc, n.Name, fetchSecrets)
		assert.Equal(t, n.Role != topology.RoleEtcd && n.Role != topology.RoleMonitor,
			strings.Contains(fetch, "fetch "+EnvPoolerPassword+" /pgha/dev/pooler-password\n"), n.Name)
		assert.Equal(t, n.Role == topology.RoleHAProxy,
			strings.Contains(fetch, "fetch "+EnvPoolerAdminPassword+" /pgha/dev/pooler-admin-password\n"), n.Name)
	}
	// The post-bootstrap script reads the pooler's password from the
	// environment, never from a file or argv.
	b, err := RenderPostBootstrap(c, CloudPaths())
	require.NoError(t, err)
	assert.Contains(t, string(b), `\getenv pooler_password `+EnvPoolerPassword+"\n")
	assert.Contains(t, string(b), "-v pooler_user="+c.Users.Pooler+" ")
}

func TestPgBouncerAuthFile(t *testing.T) {
	c := defaultCluster(t)
	pw := testPasswords()
	b, err := RenderPgBouncerAuthFile(c, pw)
	require.NoError(t, err)
	assert.Equal(t, `"pgha_pooler" "`+pw["pooler"]+`"`+"\n"+`"pgha_pooler_admin" "`+pw["pooler-admin"]+`"`+"\n", string(b))
	for _, other := range []string{"superuser", "app", "stats", "monitor"} {
		assert.NotContains(t, string(b), pw[other], "only PgBouncer's own users are in its auth_file")
	}
	pw["pooler"], pw["pooler-admin"] = "", `has"quote`
	_, err = RenderPgBouncerAuthFile(c, pw)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Passwords["pooler"] is empty or has characters outside`)
	assert.Contains(t, err.Error(), `Passwords["pooler-admin"] is empty or has characters outside`)
	assert.NotContains(t, err.Error(), `has"quote`, "a password is never echoed")
}

// The ini and the drop-in travel in the HAProxy nodes' user data only, and
// the drop-in passes systemd's own check against Debian's pgbouncer.service.
func TestPgBouncerFilesAndDropIn(t *testing.T) {
	c := defaultCluster(t)
	for _, n := range c.Plan.Nodes {
		b, err := RenderCloudInit(c, n.Name)
		require.NoError(t, err)
		var doc struct {
			Packages   []string `yaml:"packages"`
			WriteFiles []struct {
				Path  string `yaml:"path"`
				Owner string `yaml:"owner"`
			} `yaml:"write_files"`
		}
		require.NoError(t, yaml.Unmarshal(b, &doc))
		var paths []string
		for _, wf := range doc.WriteFiles {
			paths = append(paths, wf.Path)
		}
		ha := n.Role == topology.RoleHAProxy
		assert.Equal(t, ha, contains(paths, CloudPaths().PgBouncerConfigFile), n.Name)
		assert.Equal(t, ha, contains(paths, PgBouncerDropIn), n.Name)
		assert.Equal(t, ha, contains(doc.Packages, "pgbouncer"), n.Name)
		assert.NotContains(t, paths, CloudPaths().PgBouncerAuthFile, "%s: the auth_file holds passwords: fetched at boot, never in user data", n.Name)
	}

	analyze := lookTool(t, "systemd-analyze")
	unit, err := os.ReadFile("/lib/systemd/system/pgbouncer.service")
	require.NoError(t, err, "Debian's pgbouncer package is not installed")
	dropIn := cloudFileContent(t, c, "haproxy-1", PgBouncerDropIn)
	verify := func(dropIn string) (string, error) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.service"), unit, 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "pgbouncer.service.d"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.service.d", "pgha.conf"), []byte(dropIn), 0o644))
		out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "pgbouncer.service")).CombinedOutput()
		return string(out), err
	}
	out, err := verify(dropIn)
	require.NoError(t, err, out)
	assert.Empty(t, out)
	out, _ = verify(dropIn + "NoSuchSetting=1\n")
	assert.Contains(t, out, "Unknown key", "systemd-analyze must notice a bad drop-in")
	// Debian's unit runs the file pgha writes, as the user whose key copy
	// it reads.
	assert.Contains(t, string(unit), "\nExecStart=/usr/sbin/pgbouncer "+CloudPaths().PgBouncerConfigFile+"\n")
	assert.Contains(t, string(unit), "\nUser="+PoolerUser+"\n")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestPgBouncerRunsTheRenderedConfig starts the real PgBouncer 1.18 from
// every profile's and pool mode's rendered ini (the lab layout's paths),
// as postgres, in a namespace that holds the HAProxy node's address: it
// must start with nothing to warn about, apply the settings pgha chose
// (read back on its admin console, over TLS, as the console user from the
// rendered auth_file), pass the boot script's own TLS check, which a
// server of another CA fails, and serve a renewed certificate after a
// reload. TestRealCluster runs clients through it.
func TestPgBouncerRunsTheRenderedConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and runs PgBouncer as postgres")
	}
	for _, tool := range []string{"ip", "setpriv", "pgbouncer", "openssl"} {
		lookTool(t, tool)
	}
	c := defaultCluster(t)
	ns := fmt.Sprintf("pgha-pgb-%d", os.Getpid())
	nstest.New(t, ns)
	h, _ := c.Plan.Node("haproxy-1")
	nstest.IP(t, "-n", ns, "addr", "add", h.IP.String()+"/32", "dev", "lo")
	dial, err := access.Netns(ns)
	require.NoError(t, err)

	base := rootDir(t)
	tt := newTestTLS(t, base)
	p := labPaths(base, h.Name)
	tt.install(t, c, h.Name, p, "")
	installPoolerKey(t, p)
	pw := testPasswords()
	auth, err := RenderPgBouncerAuthFile(c, pw)
	require.NoError(t, err)
	install(t, []File{{Path: p.PgBouncerAuthFile, Content: auth, Mode: 0o600, Owner: "postgres:postgres"}}, "postgres")
	trust := tt.client(t)

	for _, profile := range Profiles() {
		for _, mode := range []string{PoolTransaction, PoolSession} {
			c.Profile, c.PoolMode = profile.Name, mode
			name := profile.Name + "-" + mode
			ini, err := RenderPgBouncerConfig(c, h.Name, p)
			require.NoError(t, err)
			install(t, []File{{Path: p.PgBouncerConfigFile, Content: ini, Mode: 0o644}}, "")
			d := start(t, base, "pgbouncer-"+name, ns, nil, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
				"pgbouncer", p.PgBouncerConfigFile)
			admin := pg.Target{Host: h.IP.String(), Port: topology.PortPooler, User: c.Users.PoolerAdmin, Password: pw["pooler-admin"],
				Database: "pgbouncer", Dial: dial, ConnectTimeout: 5 * time.Second, TLS: trust}
			var cfg map[string]string
			eventually(t, 20*time.Second, "PgBouncer's console ("+name+")", func() error {
				cfg, err = showConfig(admin)
				return err
			})
			tu, err := c.Tuning()
			require.NoError(t, err)
			pool := tu.PoolSize(2)
			for k, want := range map[string]string{
				"listen_addr": h.IP.String(), "listen_port": strconv.Itoa(topology.PortPooler), "unix_socket_dir": "",
				"pool_mode": mode, "auth_type": "scram-sha-256", "auth_user": c.Users.Pooler, "admin_users": c.Users.PoolerAdmin,
				"client_tls_sslmode": "require", "server_tls_sslmode": "verify-full", "server_tls_ca_file": p.TLSCAFile,
				"default_pool_size": strconv.Itoa(pool.Servers), "max_db_connections": strconv.Itoa(pool.Servers),
				"max_client_conn": strconv.Itoa(pool.Clients), "query_wait_timeout": strconv.Itoa(profile.QueryWaitTimeout()),
				"server_login_retry": "0.25", "server_fast_close": "1", "ignore_startup_parameters": "extra_float_digits",
			} {
				assert.Equal(t, want, cfg[k], "%s: %s", name, k)
			}
			// Up, and nothing to say about its configuration.
			log, err := os.ReadFile(filepath.Join(base, "pgbouncer-"+name+".log"))
			require.NoError(t, err)
			for _, line := range strings.Split(string(log), "\n") {
				assert.NotRegexp(t, `\b(WARNING|ERROR|FATAL)\b`, line, "%s: PgBouncer complains about its configuration", name)
			}
			// A wrong console password is refused.
			bad := admin
			bad.Password = "wrong"
			_, err = showConfig(bad)
			require.Error(t, err, name)
			assert.Contains(t, err.Error(), "SASL authentication failed", name)

			if name == "fast-transaction" {
				checkBootTLSCheck(t, c, ns, base, h.Name)
				checkCertificateRenewal(t, admin, d.pid, func() {
					tt.install(t, c, h.Name, p, "")
					installPoolerKey(t, p)
				}, p.TLSCertFile)
			}
			stop(t, d.pid, d.done)
		}
	}
}

// checkCertificateRenewal follows docs/security.md's renewal of an HAProxy
// node's certificate: the new certificate and key are fetched (renew), and
// PgBouncer is reloaded (systemctl reload pgbouncer: SIGHUP). Until the
// reload new clients get the old certificate; after it they get the new
// one, and a session opened before it goes on.
func checkCertificateRenewal(t *testing.T, admin pg.Target, pid int, renew func(), certFile string) {
	t.Helper()
	ctx := context.Background()
	served := func() (*pgx.Conn, string) {
		t.Helper()
		cfg, err := admin.Config()
		require.NoError(t, err)
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(cctx, cfg)
		require.NoError(t, err)
		tc, ok := conn.PgConn().Conn().(*tls.Conn)
		require.True(t, ok, "PgBouncer's client side is not TLS")
		return conn, tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before, old := served()
	defer before.Close(ctx)

	renew()
	b, err := os.ReadFile(certFile)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk)
	cert, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	renewed := cert.SerialNumber.String()
	require.NotEqual(t, old, renewed)

	conn, serial := served()
	conn.Close(ctx)
	assert.Equal(t, old, serial, "PgBouncer served the new certificate before a reload")

	require.NoError(t, syscall.Kill(pid, syscall.SIGHUP))
	eventually(t, 10*time.Second, "PgBouncer serving the renewed certificate", func() error {
		conn, serial := served()
		conn.Close(ctx)
		if serial != renewed {
			return fmt.Errorf("serves serial %s, the renewed one is %s", serial, renewed)
		}
		return nil
	})
	_, err = before.Exec(ctx, "SHOW VERSION")
	assert.NoError(t, err, "a session opened before the reload was dropped")
}

// installPoolerKey gives PgBouncer (postgres) its copy of the node's key,
// as the fetch script does on a node.
func installPoolerKey(t *testing.T, p Paths) {
	t.Helper()
	key, err := os.ReadFile(p.TLSKeyFile)
	require.NoError(t, err)
	install(t, []File{{Path: p.PgBouncerKeyFile, Content: key, Mode: 0o600, Owner: "postgres:postgres"}}, "postgres")
}

// showConfig reads PgBouncer's SHOW CONFIG on its console (simple
// protocol only there).
func showConfig(t pg.Target) (map[string]string, error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW CONFIG")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		v := rows.RawValues()
		out[string(v[0])] = string(v[1])
	}
	return out, rows.Err()
}

// checkBootTLSCheck runs the HAProxy boot script's own PgBouncer check
// (its pooler_tls function) against the running PgBouncer: it passes, and
// it fails when the CA it verifies with is another one.
func checkBootTLSCheck(t *testing.T, c Cluster, ns, base, node string) {
	t.Helper()
	boot := cloudFileContent(t, c, node, bootScript)
	start := strings.Index(boot, "pooler_tls() {\n")
	require.GreaterOrEqual(t, start, 0, "the boot script checks PgBouncer's TLS")
	end := strings.Index(boot[start:], "\n}\n")
	require.Greater(t, end, 0)
	fn := boot[start : start+end+3]
	p := labPaths(base, node)
	fn = strings.ReplaceAll(fn, CloudPaths().TLSCAFile, p.TLSCAFile)
	out, err := run(ns, nil, "bash", "-c", fn+"pooler_tls")
	require.NoError(t, err, "the boot check fails against a good PgBouncer: %s", out)

	other := newTestTLS(t, t.TempDir())
	fn = strings.ReplaceAll(fn, p.TLSCAFile, other.caFile)
	out, err = run(ns, nil, "bash", "-c", fn+"pooler_tls")
	require.Error(t, err, "the boot check must verify the certificate: %s", out)
}

// startPgBouncer runs PgBouncer on an HAProxy node of the live cluster
// (TestRealCluster) from its rendered files, until the test ends.
func startPgBouncer(t *testing.T, c Cluster, base, ns, node string, p Paths, pw Passwords) {
	t.Helper()
	installPoolerKey(t, p)
	auth, err := RenderPgBouncerAuthFile(c, pw)
	require.NoError(t, err)
	install(t, []File{{Path: p.PgBouncerAuthFile, Content: auth, Mode: 0o640, Owner: "postgres:postgres"}}, "postgres")
	start(t, base, "pgbouncer-"+node, ns, nil, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
		"pgbouncer", p.PgBouncerConfigFile)
}

// checkPooler checks what a client sees through haproxy-1's PgBouncer;
// it returns an application session through it, left open for the caller
// to close.
func checkPooler(t *testing.T, c Cluster, dial access.DialFunc, pw Passwords, leader string) *pgx.Conn {
	t.Helper()
	h, _ := c.Plan.Node("haproxy-1")
	var app *pgx.Conn
	var err error
	eventually(t, 30*time.Second, "the application through PgBouncer", func() error {
		app, err = poolerConnect(dial, h.IP.String(), "app", pw["app"])
		return err
	})
	ctx := context.Background()
	require.NoError(t, onServer(app, leader, 10*time.Second), "PgBouncer reaches the leader through HAProxy")
	var user string
	var ssl bool
	require.NoError(t, app.QueryRow(ctx, `SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&user, &ssl))
	assert.Equal(t, "app", user)
	assert.True(t, ssl, "PgBouncer's server side is TLS")
	_, err = app.Exec(ctx, `CREATE TABLE pooled (id int PRIMARY KEY); INSERT INTO pooled VALUES (1)`)
	require.NoError(t, err)
	var n int
	require.NoError(t, app.QueryRow(ctx, `SELECT count(*) FROM pooled`).Scan(&n))
	assert.Equal(t, 1, n)

	// A wrong password is refused, and so is plain text.
	_, err = poolerConnect(dial, h.IP.String(), "app", "wrong-password")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SASL authentication failed")
	_, err = connectErr(dial, h.IP.String(), topology.PortPooler, "app", "app", pw["app"], "disable")
	require.Error(t, err, "PgBouncer admits no client without TLS")

	// The auth user may read a client's SCRAM secret, never a superuser's
	// or a replication role's, and nobody else may call the function.
	pooler := connect(t, dial, h.IP.String(), topology.PortWrite, c.Users.Pooler, "app", pw["pooler"], "verify-full")
	var secrets int
	require.NoError(t, pooler.QueryRow(ctx, `SELECT count(*) FROM pgbouncer.get_auth('app') WHERE uname = 'app' AND phash LIKE 'SCRAM-SHA-256$%'`).Scan(&secrets))
	assert.Equal(t, 1, secrets)
	for _, role := range []string{"postgres", "replicator"} {
		require.NoError(t, pooler.QueryRow(ctx, `SELECT count(*) FROM pgbouncer.get_auth($1)`, role).Scan(&secrets))
		assert.Zero(t, secrets, role)
	}
	_, err = app.Exec(ctx, `SELECT * FROM pgbouncer.get_auth('postgres')`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "permission denied")
	_, err = connectErr(dial, h.IP.String(), topology.PortWrite, c.Users.Pooler, "postgres", pw["pooler"], "verify-full")
	require.Error(t, err, "the auth user reaches the application database only")
	return app
}

// poolerConnect opens a session through PgBouncer, verify-full by the
// HAProxy node's address. Transaction pooling in PgBouncer 1.18 keeps no
// prepared statement between transactions: the simple protocol.
func poolerConnect(dial access.DialFunc, host, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=app sslmode=verify-full sslrootcert=%s connect_timeout=5",
		host, topology.PortPooler, user, rootCert))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	cfg.DialFunc = pgconn.DialFunc(dial)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// onServer checks which server a session's next transaction runs on
// ("<address> replica=<bool>").
func onServer(conn *pgx.Conn, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var addr string
	var replica bool
	if err := conn.QueryRow(ctx, `SELECT host(inet_server_addr()), pg_is_in_recovery()`).Scan(&addr, &replica); err != nil {
		return err
	}
	if got := fmt.Sprintf("%s replica=%v", addr, replica); got != want {
		return fmt.Errorf("on %s, want %s", got, want)
	}
	return nil
}

// waitPoolEmpty waits until haproxy-1's PgBouncer holds no server
// connection to the application database (its console's SHOW POOLS).
func waitPoolEmpty(t *testing.T, c Cluster, dial access.DialFunc, tt *testTLS, pw Passwords) {
	t.Helper()
	h, _ := c.Plan.Node("haproxy-1")
	console := &pooler.Console{Node: h.Name, Target: pg.Target{Host: h.IP.String(), Port: topology.PortPooler,
		User: c.Users.PoolerAdmin, Password: pw["pooler-admin"], Dial: dial, ConnectTimeout: 5 * time.Second, TLS: tt.client(t)}}
	eventually(t, 30*time.Second, "PgBouncer without server connections", func() error {
		pools, err := console.Pools(context.Background())
		if err != nil {
			return err
		}
		for _, p := range pools {
			if n := p.ServersActive + p.ServersIdle + p.ServersUsed + p.Tested + p.ServersLogin; p.Database == "app" && n > 0 {
				return fmt.Errorf("%s/%s holds %d server connections", p.Database, p.User, n)
			}
		}
		return nil
	})
}
