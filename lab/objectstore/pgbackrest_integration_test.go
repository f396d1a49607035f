package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/awsapi"
)

// The repository as the clusters would configure it. The endpoint is a
// .test name (RFC 6761: it never resolves on a real network); the test's
// commands resolve it to 127.0.0.1 through an /etc/hosts of their own.
const (
	pgBin       = "/usr/lib/postgresql/15/bin"
	prEndpoint  = "s3.pgha.test"
	prBucket    = "pgha-backup"
	prRegion    = "eu-west-1"
	prKeyID     = "AKIAPGHALAB000000001"
	prKeySecret = "pgha-lab-secret-0000000000000000000000000"
	prRepoPath  = "/pgbackrest"
	prStanza    = "test"
	pgPort1     = 5432 // PostgreSQL listens on no TCP port: these only name
	pgPort2     = 5433 // sockets in the test's own directory, so never clash
)

// pitrEnv is one test's object store, PostgreSQL instances and pgBackRest
// configuration, all under base.
type pitrEnv struct {
	t        *testing.T
	base     string
	uid, gid int
	hosts    string // the /etc/hosts pgBackRest and PostgreSQL see
	caFile   string
	conf     string
	sock     string
	ca       *awsapi.CA
	storeDir string
	repoPath string // repo1-path
	addr     string // the store's address, kept across restarts
	stop     func() // stops the running store; nil when stopped
	// netns is the network namespace the commands run in ("" for this
	// host's), and caBundle, when set, replaces the system CA bundle for
	// them (a machine that trusts the lab CA in its system store).
	netns    string
	caBundle string
}

func newPITREnv(t *testing.T, extraGlobal ...string) *pitrEnv {
	t.Helper()
	e := newBaseEnv(t)
	e.hosts = filepath.Join(e.base, "hosts")
	require.NoError(t, os.WriteFile(e.hosts, []byte(fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.0.1\t%s %s.%s\n",
		prEndpoint, prBucket, prEndpoint)), 0o644))

	e.startStore("127.0.0.1:0")
	_, port, err := net.SplitHostPort(e.addr)
	require.NoError(t, err)

	conf := fmt.Sprintf(`[global]
repo1-type=s3
repo1-path=%s
repo1-s3-bucket=%s
repo1-s3-endpoint=%s
repo1-s3-region=%s
repo1-s3-key=%s
repo1-s3-key-secret=%s
repo1-s3-uri-style=path
repo1-storage-port=%s
repo1-storage-ca-file=%s
`, prRepoPath, prBucket, prEndpoint, prRegion, prKeyID, prKeySecret, port, e.caFile)
	e.writeConf(conf, extraGlobal...)
	return e
}

// writeConf writes the configuration: the repository's options, then
// what every test shares.
func (e *pitrEnv) writeConf(repo string, extraGlobal ...string) {
	t := e.t
	conf := repo + fmt.Sprintf(`repo1-retention-full=2
archive-async=y
spool-path=%s
log-path=%s
lock-path=%s
log-level-file=detail
start-fast=y
%s
[%s]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
`, filepath.Join(e.base, "spool"), filepath.Join(e.base, "log"), filepath.Join(e.base, "lock"),
		strings.Join(extraGlobal, "\n"), prStanza, e.dataDir("data1"), pgPort1, e.sock)
	e.conf = filepath.Join(e.base, "pgbackrest.conf")
	require.NoError(t, os.WriteFile(e.conf, []byte(conf), 0o640))
	require.NoError(t, os.Chown(e.conf, 0, e.gid))
}

// newBaseEnv checks the tools and makes the directories and the CA.
func newBaseEnv(t *testing.T) *pitrEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: PostgreSQL and pgBackRest run as the postgres user, in a mount namespace of their own")
	}
	for _, bin := range []string{pgBin + "/initdb", pgBin + "/postgres", "pgbackrest", "unshare", "setpriv", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (needs postgresql-15, pgbackrest, util-linux)", bin)
		}
	}
	out, err := exec.Command("pgbackrest", "version").Output()
	require.NoError(t, err)
	require.Equal(t, "pgBackRest 2.45", strings.TrimSpace(string(out)), "this test pins the behaviour of Debian 12's pgBackRest")
	pgUser, err := user.Lookup("postgres")
	require.NoError(t, err)
	e := &pitrEnv{t: t, repoPath: prRepoPath}
	e.uid, _ = strconv.Atoi(pgUser.Uid)
	e.gid, _ = strconv.Atoi(pgUser.Gid)

	e.base, err = os.MkdirTemp("", "objectstore-pgbackrest-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(e.base) })
	require.NoError(t, os.Chmod(e.base, 0o755)) // postgres must reach its directories
	t.Cleanup(e.dumpLogsOnFailure)
	t.Cleanup(e.killStrays)
	for _, d := range []string{"log", "lock", "spool", "sock"} {
		e.postgresDir(d)
	}
	e.sock = filepath.Join(e.base, "sock")
	e.storeDir = filepath.Join(e.base, "store")

	e.ca, err = awsapi.NewCA("objectstore pgbackrest test CA")
	require.NoError(t, err)
	e.caFile = filepath.Join(e.base, "ca.pem")
	require.NoError(t, os.WriteFile(e.caFile, e.ca.CertPEM, 0o644))
	return e
}

func (e *pitrEnv) postgresDir(name string) string {
	p := filepath.Join(e.base, name)
	require.NoError(e.t, os.Mkdir(p, 0o700))
	require.NoError(e.t, os.Chown(p, e.uid, e.gid))
	return p
}

func (e *pitrEnv) dataDir(name string) string { return filepath.Join(e.base, name) }

// startStore serves the store on addr ("127.0.0.1:0" the first time, then
// the same address again).
func (e *pitrEnv) startStore(addr string) {
	t := e.t
	t.Helper()
	require.Nil(t, e.stop, "the store is already running")
	cfg, err := TLSConfig(e.ca, prEndpoint, "*."+prEndpoint, "127.0.0.1")
	require.NoError(t, err)
	s, err := New(e.storeDir, WithAccessKey(prKeyID), WithRegion(prRegion), WithTLS(cfg),
		WithVirtualHosts(prEndpoint), WithLogf(t.Logf))
	require.NoError(t, err)
	require.NoError(t, s.CreateBucket(prBucket))
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	e.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	e.stop = func() {
		cancel()
		require.NoError(t, <-served)
		e.stop = nil
	}
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
}

// command runs name as postgres in a mount namespace of its own whose
// /etc/hosts maps the endpoint to 127.0.0.1; PostgreSQL passes it on to
// the archive_command and restore_command it runs.
func (e *pitrEnv) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	script := `mount --bind "$1" /etc/hosts && shift && if [ -n "$1" ]; then mount --bind "$1" /etc/ssl/certs/ca-certificates.crt; fi && shift && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", e.hosts, e.caBundle, name}, args...)
	if e.netns != "" {
		argv = append([]string{"nsenter", "--net=" + e.netns, "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + e.base, "LANG=C.UTF-8", "TZ=UTC"}
	cmd.Dir = e.base
	return cmd
}

// pgbackrest runs one pgBackRest command with the test's configuration.
func (e *pitrEnv) pgbackrest(env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv := append([]string{"--config=" + e.conf, "--stanza=" + prStanza, "--log-level-console=info"}, args...)
	cmd := e.command(ctx, "pgbackrest", argv...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *pitrEnv) mustPgbackrest(args ...string) string {
	e.t.Helper()
	start := time.Now()
	out, err := e.pgbackrest(nil, args...)
	require.NoError(e.t, err, "pgbackrest %s:\n%s", strings.Join(args, " "), out)
	e.t.Logf("pgbackrest %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}

type pgInstance struct {
	t    *testing.T
	cmd  *exec.Cmd
	conn *pgx.Conn
	done chan struct{}
}

// initdb makes a new cluster in base/name.
func (e *pitrEnv) initdb(name string) string {
	e.t.Helper()
	dir := e.postgresDir(name)
	out, err := e.command(context.Background(), pgBin+"/initdb", "-D", dir, "-U", "postgres", "--auth-local=trust",
		"--auth-host=reject", "--no-sync").CombinedOutput()
	require.NoError(e.t, err, "initdb: %s", out)
	return dir
}

// startPG starts postgres on dir as a child of the test (no pg_ctl: its
// PID is the postmaster's, which every exit path stops).
func (e *pitrEnv) startPG(dir string, port int, settings ...string) *pgInstance {
	t := e.t
	t.Helper()
	args := []string{"-D", dir, "-c", fmt.Sprintf("port=%d", port), "-c", "listen_addresses=",
		"-c", "unix_socket_directories=" + e.sock, "-c", "fsync=off", "-c", "shared_buffers=16MB"}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	cmd := e.command(context.Background(), pgBin+"/postgres", args...)
	logf, err := os.Create(filepath.Join(e.base, filepath.Base(dir)+".log"))
	require.NoError(t, err)
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	pg := &pgInstance{t: t, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(pg.done) }()
	t.Cleanup(func() { pg.stop(syscall.SIGQUIT) }) // immediate shutdown if still running
	conn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=5", e.sock, port)
	require.Eventually(t, func() bool {
		select {
		case <-pg.done:
			return true // fails below
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, conn)
		if err != nil {
			return false
		}
		pg.conn = c
		return true
	}, 60*time.Second, 200*time.Millisecond, "postgres on %s did not accept connections", dir)
	require.NotNil(t, pg.conn, "postgres on %s exited", dir)
	return pg
}

// stop sends sig (SIGINT: fast shutdown) to the postmaster and waits;
// SIGKILL after 30 s.
func (pg *pgInstance) stop(sig syscall.Signal) {
	if pg.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = pg.conn.Close(ctx)
		cancel()
		pg.conn = nil
	}
	select {
	case <-pg.done:
		return
	default:
	}
	_ = pg.cmd.Process.Signal(sig)
	select {
	case <-pg.done:
	case <-time.After(30 * time.Second):
		_ = pg.cmd.Process.Kill()
		<-pg.done
	}
}

func (pg *pgInstance) exec(sql string, args ...any) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pg.conn.Exec(ctx, sql, args...)
	require.NoError(pg.t, err, "%s", sql)
}

func (pg *pgInstance) queryRow(sql string, dest ...any) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(pg.t, pg.conn.QueryRow(ctx, sql).Scan(dest...), "%s", sql)
}

// switchWAL writes a row (a switch with nothing written is no switch) and
// closes the current segment; it returns that segment's name.
func (pg *pgInstance) switchWAL() string {
	pg.t.Helper()
	pg.exec("INSERT INTO filler DEFAULT VALUES")
	var seg string
	pg.queryRow("SELECT pg_walfile_name(pg_switch_wal())", &seg)
	return seg
}

// archivedSegments lists the WAL segments in the repository, read from
// the store's directory.
func (e *pitrEnv) archivedSegments() []string {
	var segs []string
	dir := filepath.Join(e.storeDir, bucketsDir, prBucket, filepath.FromSlash(strings.TrimPrefix(e.repoPath, "/")), "archive", prStanza, "15-1")
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	for _, m := range matches {
		if b := filepath.Base(m); len(b) > 24 && b[24] == '-' {
			segs = append(segs, b[:24])
		}
	}
	sort.Strings(segs)
	return segs
}

func (e *pitrEnv) isArchived(seg string) bool {
	for _, s := range e.archivedSegments() {
		if s == seg {
			return true
		}
	}
	return false
}

func (e *pitrEnv) waitArchived(seg string, within time.Duration) {
	e.t.Helper()
	start := time.Now()
	require.Eventually(e.t, func() bool { return e.isArchived(seg) }, within, 200*time.Millisecond,
		"WAL segment %s did not reach the repository", seg)
	e.t.Logf("segment %s archived after %s", seg, time.Since(start).Round(time.Millisecond))
}

// killStrays stops, by PID, any process still running from this test's
// directory (its path is in their command lines): pgBackRest's async
// archive processes detach from PostgreSQL, so no parent waits for them.
func (e *pitrEnv) killStrays() {
	for _, pid := range e.pidsUnderBase() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		e.t.Logf("stopping leftover process %d: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.pidsUnderBase()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := e.pidsUnderBase(); len(left) > 0 {
		e.t.Errorf("processes %v are still running", left)
	}
}

func (e *pitrEnv) pidsUnderBase() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(e.base+"/")) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue // a zombie: already exited
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func (e *pitrEnv) dumpLogsOnFailure() {
	if !e.t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(e.base, "*.log"))
	more, _ := filepath.Glob(filepath.Join(e.base, "log", "*.log"))
	for _, f := range append(logs, more...) {
		b, _ := os.ReadFile(f)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		e.t.Logf("--- %s (tail)\n%s", filepath.Base(f), b)
	}
}

func archiveCommand(conf string) string {
	return fmt.Sprintf("archive_command=pgbackrest --config=%s --stanza=%s archive-push %%p", conf, prStanza)
}

// TestPgBackRestPointInTimeRecovery backs a PostgreSQL 15 up to the store
// with the real pgBackRest, archives WAL, and restores to a point in time
// into a new directory.
func TestPgBackRestPointInTimeRecovery(t *testing.T) {
	e := newPITREnv(t)
	data1 := e.initdb("data1")
	pg := e.startPG(data1, pgPort1, "archive_mode=on", archiveCommand(e.conf))
	pg.exec("CREATE TABLE filler (id bigserial PRIMARY KEY)")
	pg.exec("CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL)")
	// 12 MB that does not compress: the backup and the WAL then hold files
	// over repo-storage-upload-chunk-size (5 MiB), which pgBackRest uploads
	// in parts (multipart upload).
	pg.exec(`CREATE TABLE blob (id int PRIMARY KEY, data bytea NOT NULL)`)
	pg.exec(`INSERT INTO blob SELECT i, (SELECT string_agg(decode(md5(random()::text || i || j), 'hex'), ''::bytea)
		FROM generate_series(1, 128) j) FROM generate_series(1, 6000) i`)
	var blobSum string
	pg.queryRow("SELECT md5(string_agg(data, ''::bytea ORDER BY id)) FROM blob", &blobSum)

	e.mustPgbackrest("stanza-create")
	e.mustPgbackrest("check")
	out := e.mustPgbackrest("--type=full", "backup")
	require.Contains(t, out, "new backup label")
	// pgBackRest keeps a backup's stop time in whole seconds and restores
	// --type=time only from a backup that stopped in an earlier second.
	time.Sleep(1100 * time.Millisecond)

	pg.exec("INSERT INTO items SELECT i, 'before' FROM generate_series(1, 100) i")
	var target string
	pg.queryRow("SELECT now()::text", &target) // a transaction that starts after the commit above
	time.Sleep(300 * time.Millisecond)
	pg.exec("INSERT INTO items SELECT i, 'after' FROM generate_series(101, 200) i")
	seg := pg.switchWAL()
	e.waitArchived(seg, 60*time.Second)

	t.Run("virtual-host addressing", func(t *testing.T) {
		out, err := e.pgbackrest([]string{"PGBACKREST_REPO1_S3_URI_STYLE=host"}, "repo-ls", "backup/"+prStanza)
		require.NoError(t, err, "%s", out)
		require.Contains(t, out, "backup.info")
	})
	t.Run("a wrong key is refused", func(t *testing.T) {
		out, err := e.pgbackrest([]string{"PGBACKREST_REPO1_S3_KEY=AKIAWRONG"}, "repo-ls")
		require.Error(t, err)
		require.Contains(t, out, "failed with 403 (Forbidden)")
	})
	t.Run("storage-host by address fails the name check", func(t *testing.T) {
		// pgBackRest 2.45 checks the certificate against the host it
		// connects to, and against DNS names only: an IP address SAN
		// does not count, though the certificate has 127.0.0.1 as one.
		// Hence the endpoint resolves by name instead.
		out, err := e.pgbackrest([]string{"PGBACKREST_REPO1_STORAGE_HOST=127.0.0.1"}, "--io-timeout=1", "repo-ls")
		require.Error(t, err, "%s", out)
		require.Contains(t, out, "unable to find hostname '127.0.0.1' in certificate")
	})

	pg.stop(syscall.SIGINT)

	data2 := e.postgresDir("data2")
	e.mustPgbackrest("--pg1-path="+data2, "--type=time", "--target="+target, "--target-action=promote", "restore")
	auto, err := os.ReadFile(filepath.Join(data2, "postgresql.auto.conf"))
	require.NoError(t, err)
	require.Contains(t, string(auto), "restore_command = 'pgbackrest --config="+e.conf,
		"the restored cluster fetches WAL with the same configuration file")
	t.Logf("postgresql.auto.conf of the restored cluster:\n%s", auto)
	pg2 := e.startPG(data2, pgPort2)
	require.Eventually(t, func() bool {
		var inRecovery bool
		pg2.queryRow("SELECT pg_is_in_recovery()", &inRecovery)
		return !inRecovery
	}, 60*time.Second, 200*time.Millisecond, "the restored cluster did not promote")

	var n, lo, hi int
	var notes []string
	pg2.queryRow("SELECT count(*), min(id), max(id), array_agg(DISTINCT note) FROM items", &n, &lo, &hi, &notes)
	require.Equal(t, []any{100, 1, 100, []string{"before"}}, []any{n, lo, hi, notes},
		"exactly the rows committed before %s", target)
	var restoredSum string
	pg2.queryRow("SELECT md5(string_agg(data, ''::bytea ORDER BY id)) FROM blob", &restoredSum)
	require.Equal(t, blobSum, restoredSum, "the table uploaded in parts came back whole")
}

// TestPgBackRestArchiveOutage stops the store while PostgreSQL archives:
// archiving fails and PostgreSQL keeps taking writes; once the store is
// back on the same directory and address, archiving catches up with no
// segment missing.
func TestPgBackRestArchiveOutage(t *testing.T) {
	// Fail fast while the store is away: the foreground archive-push waits
	// archive-timeout for the async process, which retries io-timeout.
	e := newPITREnv(t, "archive-timeout=5", "io-timeout=5")
	data1 := e.initdb("data1")
	pg := e.startPG(data1, pgPort1, "archive_mode=on", archiveCommand(e.conf))
	pg.exec("CREATE TABLE filler (id bigserial PRIMARY KEY)")
	e.mustPgbackrest("stanza-create")
	e.mustPgbackrest("check")
	first := pg.switchWAL()
	e.waitArchived(first, 30*time.Second)

	var failedBefore int64
	pg.queryRow("SELECT failed_count FROM pg_stat_archiver", &failedBefore)
	e.stop()

	var during []string
	for i := 0; i < 3; i++ {
		start := time.Now()
		during = append(during, pg.switchWAL())
		require.Less(t, time.Since(start), 10*time.Second, "a write waited on the archive")
	}
	require.Eventually(t, func() bool {
		var failed int64
		pg.queryRow("SELECT failed_count FROM pg_stat_archiver", &failed)
		return failed > failedBefore
	}, 30*time.Second, 250*time.Millisecond, "archiving did not fail while the store was down")
	for _, seg := range during {
		require.False(t, e.isArchived(seg), "segment %s archived while the store was down", seg)
	}
	var failedWAL string
	pg.queryRow("SELECT last_failed_wal FROM pg_stat_archiver", &failedWAL)
	t.Logf("archiving failed as expected (last failed: %s); writes continued", failedWAL)

	e.startStore(e.addr)
	last := pg.switchWAL() // new WAL wakes the archiver, as any write would
	e.waitArchived(last, 45*time.Second)

	segs := e.archivedSegments()
	require.Contains(t, segs, first)
	for _, seg := range during {
		require.Contains(t, segs, seg)
	}
	for i := 1; i < len(segs); i++ {
		require.Equal(t, nextSegment(t, segs[i-1]), segs[i], "a gap in the archive")
	}
	// The async process pushes ahead of PostgreSQL's archiver, which
	// records each segment when its archive_command returns.
	require.Eventually(t, func() bool {
		var lastArchived string
		pg.queryRow("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", &lastArchived)
		return len(lastArchived) >= 24 && lastArchived[:24] >= last
	}, 30*time.Second, 200*time.Millisecond, "PostgreSQL's archiver did not reach %s", last)
	e.mustPgbackrest("check")
}

// nextSegment is the WAL segment after seg (16 MiB segments).
func nextSegment(t *testing.T, seg string) string {
	tli, err1 := strconv.ParseUint(seg[:8], 16, 32)
	log, err2 := strconv.ParseUint(seg[8:16], 16, 32)
	n, err3 := strconv.ParseUint(seg[16:], 16, 32)
	require.NoError(t, errors.Join(err1, err2, err3), seg)
	if n++; n == 0x100 {
		log, n = log+1, 0
	}
	return fmt.Sprintf("%08X%08X%08X", tli, log, n)
}
