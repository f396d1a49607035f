package pooler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/pki"
)

// The daemons these tests run: PostgreSQL 15 and PgBouncer 1.18 from
// Debian's packages, as the postgres user (both refuse root), on loopback.
const (
	pgBin        = "/usr/lib/postgresql/15/bin"
	pgbouncerBin = "/usr/sbin/pgbouncer"

	superPassword  = "Super-Password-0123"
	appPassword    = "App-Password-0123"
	poolerPassword = "Pooler-Password-0123" // auth_user
	adminPassword  = "Admin-Password-0123"  // admin_users
)

// env is what every test of a run shares: the postgres user and a CA.
type env struct {
	t         *testing.T
	uid, gid  int
	ca        *pki.CA
	clientTLS *tls.Config // verifies the daemons' certificates
	appHash   string      // the app role's SCRAM secret, the same on every server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	for _, bin := range []string{pgBin + "/initdb", pgBin + "/postgres", pgbouncerBin} {
		if _, err := os.Stat(bin); err != nil {
			if os.Geteuid() == 0 {
				t.Fatalf("%s is missing: scripts/install-deps.sh installs it", bin)
			}
			t.Skipf("%s is not installed", bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL and PgBouncer as the postgres user")
	}
	u, err := user.Lookup("postgres")
	require.NoError(t, err)
	e := &env{t: t}
	e.uid, _ = strconv.Atoi(u.Uid)
	e.gid, _ = strconv.Atoi(u.Gid)
	e.ca, err = pki.NewCA("pooler test CA")
	require.NoError(t, err)
	e.clientTLS, err = pki.Trust{CA: e.ca.CertPEM}.Config("")
	require.NoError(t, err)
	e.appHash, err = SCRAMSecret(appPassword)
	require.NoError(t, err)
	return e
}

// dir is a directory the postgres user owns, removed when the test ends.
func (e *env) dir(prefix string) string {
	d, err := os.MkdirTemp("", "pgha-pooler-"+prefix+"-")
	require.NoError(e.t, err)
	e.t.Cleanup(func() { os.RemoveAll(d) })
	require.NoError(e.t, os.Chmod(d, 0o700))
	require.NoError(e.t, os.Chown(d, e.uid, e.gid))
	return d
}

func (e *env) write(path string, b []byte) {
	require.NoError(e.t, os.WriteFile(path, b, 0o600))
	require.NoError(e.t, os.Chown(path, e.uid, e.gid))
}

// certs writes a server certificate for 127.0.0.1 and the CA into dir.
func (e *env) certs(dir string) (crt, key, ca string) {
	c, k, err := e.ca.Issue(pki.Leaf{CommonName: "127.0.0.1", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true})
	require.NoError(e.t, err)
	crt, key, ca = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt")
	e.write(crt, c)
	e.write(key, k)
	e.write(ca, e.ca.CertPEM)
	return crt, key, ca
}

// as is a command run as postgres with a clean environment; setpriv
// execs, so the process's PID is the daemon's.
func (e *env) as(dir string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", append([]string{"--reuid=postgres", "--regid=postgres", "--init-groups", "--", name}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"}
	cmd.Dir = dir
	return cmd
}

// daemon starts cmd with its output in logPath and stops it by its PID
// when the test ends: sig, then SIGKILL if it lingers.
func (e *env) daemon(cmd *exec.Cmd, logPath string, sig syscall.Signal) {
	log, err := os.Create(logPath)
	require.NoError(e.t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(e.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done); log.Close() }()
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			e.t.Errorf("%v did not stop within 20s of %v: killing it", cmd.Args, sig)
			_ = cmd.Process.Kill()
			<-done
		}
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("%s:\n%s", logPath, tail(string(b), 40))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a PostgreSQL 15 that admits TLS and scram-sha-256 only, with
// the application's database and role, and PgBouncer's auth user.
type server struct {
	port int
	dir  string
}

func (e *env) startPostgres() *server {
	t := e.t
	dir := e.dir("pg")
	s := &server{port: freePort(t), dir: dir}
	pw := filepath.Join(dir, "pw")
	e.write(pw, []byte(superPassword+"\n"))
	data := filepath.Join(dir, "data")
	out, err := e.as(dir, pgBin+"/initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw).CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	e.certs(data)
	e.write(filepath.Join(data, "pg_hba.conf"), []byte("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"))
	e.daemon(e.as(dir, pgBin+"/postgres", "-D", data, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "ssl=on", "-c", "fsync=off", "-c", "max_connections=50"),
		filepath.Join(dir, "postgres.log"), syscall.SIGINT) // SIGINT: fast shutdown

	ctx := context.Background()
	var c *pgx.Conn
	require.Eventually(t, func() bool {
		c, err = e.target(s.port, "postgres", superPassword, "postgres").Connect(ctx)
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "PostgreSQL on %d: %v", s.port, err)
	defer c.Close(ctx)
	// app's password is a SCRAM secret computed here: the same on every
	// server, as replication makes it on a cluster (PgBouncer's SCRAM
	// pass-through needs the very same secret), and a check of SCRAMSecret.
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE app LOGIN PASSWORD '%s'", e.appHash),
		fmt.Sprintf("CREATE ROLE pgha_pooler LOGIN PASSWORD '%s'", poolerPassword),
		"CREATE DATABASE app OWNER app",
	} {
		_, err := c.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	c2, err := e.target(s.port, "postgres", superPassword, "app").Connect(ctx)
	require.NoError(t, err)
	defer c2.Close(ctx)
	for _, q := range []string{
		// PgBouncer's documented secure auth_query: a SECURITY DEFINER
		// function only the auth user may call.
		"CREATE SCHEMA pgbouncer AUTHORIZATION postgres",
		`CREATE FUNCTION pgbouncer.get_auth(p_usename text, OUT uname text, OUT phash text) RETURNS record
		 LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
		 $$ SELECT rolname::text, rolpassword FROM pg_authid WHERE rolname = p_usename AND rolcanlogin AND NOT rolsuper $$`,
		"REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC",
		"GRANT USAGE ON SCHEMA pgbouncer TO pgha_pooler",
		"GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgha_pooler",
		"CREATE TABLE public.ops (id bigserial PRIMARY KEY, worker int, n int)",
		"ALTER TABLE public.ops OWNER TO app",
	} {
		_, err := c2.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	// The secret computed here logs in: SCRAMSecret agrees with PostgreSQL.
	direct, err := e.target(s.port, "app", appPassword, "app").Connect(ctx)
	require.NoError(t, err, "app logs in with the password whose secret SCRAMSecret computed")
	direct.Close(ctx)
	return s
}

// target is a verified TLS session to 127.0.0.1:port.
func (e *env) target(port int, user, password, db string) pg.Target {
	return pg.Target{Host: "127.0.0.1", Port: port, User: user, Password: password, Database: db,
		Dial: access.Direct(), ConnectTimeout: 5 * time.Second, TLS: e.clientTLS}
}

// bouncer is a running PgBouncer.
type bouncer struct {
	port    int
	dir     string
	console *Console
}

type bouncerOpts struct {
	authUserSecret bool   // the auth_user's SCRAM secret in auth_file instead of its password
	poolMode       string // pool_mode; empty is transaction
}

// startPgBouncer runs PgBouncer in front of backend (host:port), as the
// nodes will: TLS on both sides (verify-full towards the server), SCRAM,
// auth_query through an auth user, transaction pooling.
func (e *env) startPgBouncer(backendPort int, o bouncerOpts) *bouncer {
	t := e.t
	if o.poolMode == "" {
		o.poolMode = "transaction"
	}
	dir := e.dir("bouncer-" + o.poolMode)
	crt, key, ca := e.certs(dir)
	b := &bouncer{port: freePort(t), dir: dir}
	adminHash, err := SCRAMSecret(adminPassword)
	require.NoError(t, err)
	// The auth user logs into PostgreSQL itself, with no client's SCRAM
	// keys to pass through: PgBouncer needs its password, not a secret.
	authUser := poolerPassword
	if o.authUserSecret {
		authUser, err = SCRAMSecret(poolerPassword)
		require.NoError(t, err)
	}
	users := filepath.Join(dir, "userlist.txt")
	e.write(users, []byte(AuthFileLine("pgha_admin", adminHash)+AuthFileLine("pgha_pooler", authUser)))
	ini := fmt.Sprintf(`[databases]
app = host=127.0.0.1 port=%d dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
auth_user = pgha_pooler
auth_query = SELECT uname, phash FROM pgbouncer.get_auth($1)
admin_users = pgha_admin
pool_mode = %s
default_pool_size = 4
max_client_conn = 100
server_login_retry = 1
query_wait_timeout = 120
client_tls_sslmode = require
client_tls_cert_file = %s
client_tls_key_file = %s
server_tls_sslmode = verify-full
server_tls_ca_file = %s
`, backendPort, b.port, users, o.poolMode, crt, key, ca)
	path := filepath.Join(dir, "pgbouncer.ini")
	e.write(path, []byte(ini))
	// SIGTERM: PgBouncer's immediate shutdown.
	e.daemon(e.as(dir, pgbouncerBin, path), filepath.Join(dir, "pgbouncer.log"), syscall.SIGTERM)
	b.console = &Console{Node: "pgbouncer:" + strconv.Itoa(b.port), Target: e.target(b.port, "pgha_admin", adminPassword, "")}
	require.Eventually(t, func() bool {
		_, err = b.console.Databases(context.Background())
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "PgBouncer on %d: %v", b.port, err)
	return b
}

// client opens an application session through PgBouncer. Transaction
// pooling in 1.18 keeps no prepared statement, so clients use the simple
// protocol.
func (e *env) client(ctx context.Context, b *bouncer) (*pgx.Conn, error) {
	cfg, err := e.target(b.port, "app", appPassword, "app").Config()
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// proxy stands in for HAProxy's leader port: it forwards to one backend,
// and moving it cuts the sessions to the old one, as
// on-marked-down shutdown-sessions does.
type proxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend int
	conns   map[net.Conn]int // client side → backend port
}

func startProxy(t *testing.T, backend int) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.cut(func(int) bool { return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	port := p.backend
	p.conns[c] = port
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	s, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
}

// point sends new sessions to port and cuts the others.
func (p *proxy) point(port int) {
	p.mu.Lock()
	p.backend = port
	p.mu.Unlock()
	p.cut(func(b int) bool { return b != port })
}

func (p *proxy) cut(which func(int) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, b := range p.conns {
		if which(b) {
			c.Close()
		}
	}
}

// serverPort asks the server a session landed on for its port.
func serverPort(ctx context.Context, c *pgx.Conn) (int, error) {
	var port string
	if err := c.QueryRow(ctx, "SELECT current_setting('port')").Scan(&port); err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}

// load runs clients through PgBouncer, each in a loop of small
// transactions, and records every failure and which server answered.
type load struct {
	mu     sync.Mutex
	errs   []error
	byPort map[int]int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (e *env) startLoad(b *bouncer, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{byPort: map[int]int{}, cancel: cancel}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var c *pgx.Conn
			defer func() {
				if c != nil {
					c.Close(context.Background())
				}
			}()
			for n := 0; ctx.Err() == nil; n++ {
				if c == nil {
					var err error
					if c, err = e.client(ctx, b); err != nil {
						l.fail(ctx, err)
						continue
					}
				}
				port, err := l.op(ctx, c, w, n)
				if ctx.Err() != nil {
					return // stopping, not a failure
				}
				if err != nil {
					l.fail(ctx, err)
					c.Close(context.Background())
					c = nil
					continue
				}
				l.mu.Lock()
				l.byPort[port]++
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// op is a transaction of several round trips, which PAUSE must wait for.
func (l *load) op(ctx context.Context, c *pgx.Conn, w, n int) (int, error) {
	octx, cancel := context.WithTimeout(ctx, 60*time.Second) // a stall, however long, is not a failure
	defer cancel()
	tx, err := c.Begin(octx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(octx, fmt.Sprintf("INSERT INTO ops (worker, n) VALUES (%d, %d)", w, n)); err != nil {
		return 0, err
	}
	var port string
	if err := tx.QueryRow(octx, "SELECT current_setting('port')").Scan(&port); err != nil {
		return 0, err
	}
	if err := tx.Commit(octx); err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}

func (l *load) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
}

func (l *load) on(port int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPort[port]
}

func (l *load) failures() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// requireResumed asks the real PgBouncer whether anything is paused, and
// proves it by a query through it from a new session.
func (e *env) requireResumed(b *bouncer) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	paused, err := b.console.Paused(ctx)
	require.NoError(e.t, err)
	require.Empty(e.t, paused, "PgBouncer reports paused databases")
	c, err := e.client(ctx, b)
	require.NoError(e.t, err, "a new client through PgBouncer")
	defer c.Close(ctx)
	var one int
	require.NoError(e.t, c.QueryRow(ctx, "SELECT 1").Scan(&one), "a query through PgBouncer")
}

var errInjected = errors.New("injected failure")
