package traffic

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/pg"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/validate/internal/history"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// server is a throwaway PostgreSQL 15 with TLS and scram-sha-256, the way
// the cluster's nodes accept clients.
type server struct {
	t    *testing.T
	data string
	port int
	tls  *tls.Config // verifies the server's certificate
}

// pgctl runs pg_ctl as postgres. A start must pass -l: a postmaster that
// inherited the output pipe would keep CombinedOutput waiting forever.
func (s *server) pgctl(args ...string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=postgres", "--regid=postgres", "--init-groups", filepath.Join(pgBin, "pg_ctl"), "-D", s.data}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(s.data)}
	out, err := cmd.CombinedOutput()
	require.NoError(s.t, err, "pg_ctl %v: %s", args, out)
}

func startServer(t *testing.T) *server {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL as the postgres user")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Skip("postgresql-15 is not installed")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "pgha-traffic-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chown(dir, uid, gid))

	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("secret\n"), 0o600))
	require.NoError(t, os.Chown(pw, uid, gid))
	s := &server{t: t, data: filepath.Join(dir, "data"), port: freePort(t)}
	cmd := exec.Command("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
		filepath.Join(pgBin, "initdb"), "-D", s.data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)

	certPEM, keyPEM, clientTLS := serverCert(t)
	s.tls = clientTLS
	for name, b := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		p := filepath.Join(s.data, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		require.NoError(t, os.Chown(p, uid, gid))
	}
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nssl = on\nfsync = off\n", s.port, dir)
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(conf)
	require.NoError(t, err)
	f.Close()
	require.NoError(t, os.WriteFile(filepath.Join(s.data, "pg_hba.conf"),
		[]byte("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"), 0o600))
	s.pgctl("-w", "-l", filepath.Join(dir, "log"), "start")
	t.Cleanup(func() { s.pgctl("-m", "immediate", "stop") })
	return s
}

func (s *server) target() pg.Target {
	return pg.Target{Host: "127.0.0.1", Port: s.port, User: "postgres", Password: "secret", Database: "postgres",
		Dial: access.Direct(), ConnectTimeout: time.Second, TLS: s.tls}
}

// A crash in the middle of the traffic: the writer and reader must record
// the failures, reconnect by themselves, and every insert they report as
// acknowledged must be in the table afterwards.
func TestTrafficSurvivesACrashAndRecordsIt(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	require.NoError(t, Setup(ctx, s.target()))
	require.NoError(t, Setup(ctx, s.target()), "Setup is idempotent")

	w := &Writer{Target: s.target(), RunID: "test-1", Interval: 20 * time.Millisecond, OpTimeout: time.Second}
	r := &Reader{Target: s.target(), Interval: 50 * time.Millisecond, OpTimeout: time.Second, WantReplica: true}
	sess := Start(ctx, w, r)
	time.Sleep(time.Second)
	crash := time.Now()
	s.pgctl("-m", "immediate", "stop")
	time.Sleep(700 * time.Millisecond)
	s.pgctl("-w", "-l", filepath.Join(filepath.Dir(s.data), "log"), "start")
	time.Sleep(time.Second)
	require.NoError(t, sess.Stop())

	ops := w.Ops()
	acked := history.Acked(ops)
	require.NotEmpty(t, acked)
	var failed, after int
	for _, o := range ops {
		if !o.OK {
			failed++
			require.NotEmpty(t, o.Err)
		} else {
			require.Equal(t, "127.0.0.1", o.Server)
			if o.Start.After(crash) {
				after++
			}
		}
	}
	require.Positive(t, failed, "the crash shows as failed writes")
	require.Positive(t, after, "the writer reconnected after the crash")
	gap, err := history.Outage(ops, crash)
	require.NoError(t, err)
	require.Greater(t, gap.Duration, 500*time.Millisecond)

	c, err := s.target().Connect(ctx)
	require.NoError(t, err)
	defer c.Close(ctx)
	ids, err := Survivors(ctx, c, "test-1")
	require.NoError(t, err)
	lr := history.CheckLoss(acked, map[string][]int64{"pg": ids})
	require.True(t, lr.OK(), "acknowledged inserts lost: %v", lr.LostAnywhere)

	// The server is a primary, so a reader that wants replicas records
	// every read as failed, with the reason.
	rops := r.Ops()
	require.NotEmpty(t, rops)
	for _, o := range rops {
		require.False(t, o.OK)
	}
	require.Contains(t, rops[0].Err, "not in recovery")
}

func TestWriterRejectsBadRunID(t *testing.T) {
	w := &Writer{RunID: "bad id; drop table", Interval: time.Millisecond}
	require.ErrorContains(t, w.Run(context.Background()), "run id")
}

// HAProxy holds a connection when no server is up: the connect timeout must
// end it.
func TestConnectTimeoutOnAHeldConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept and say nothing, like HAProxy with no server
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	_, _, clientTLS := serverCert(t)
	tg := pg.Target{Host: "127.0.0.1", Port: port, User: "u", Password: "p", Database: "d", Dial: access.Direct(), ConnectTimeout: 500 * time.Millisecond, TLS: clientTLS}
	start := time.Now()
	_, err = tg.Connect(context.Background())
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serverCert is a certificate for 127.0.0.1 from a new CA, and a client
// TLS configuration that verifies it as pgha's clients do.
func serverCert(t *testing.T) (certPEM, keyPEM []byte, client *tls.Config) {
	ca, err := pki.NewCA("traffic test CA")
	require.NoError(t, err)
	certPEM, keyPEM, err = ca.Issue(pki.Leaf{CommonName: "pg", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Server: true})
	require.NoError(t, err)
	client, err = pki.Trust{CA: ca.CertPEM}.Config("")
	require.NoError(t, err)
	return certPEM, keyPEM, client
}
