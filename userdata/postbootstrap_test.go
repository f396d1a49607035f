package userdata

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPostBootstrapOverTheDefaultSocket runs the post-bootstrap script as
// an EC2 node runs it: PostgreSQL's socket in Debian's default directory
// (/var/run/postgresql), and $PGPASSFILE written the way Patroni 3.0.2
// writes it, for host "/var/run/postgresql" and without a final newline.
// libpq looks a connection over the default directory up as "localhost",
// so a plain psql finds no password there (Patroni issue 3134); the script
// must still log in. The lab's own nodes use socket directories of their
// own and never met this: only the booted lab did.
func TestPostBootstrapOverTheDefaultSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: PostgreSQL runs as postgres, with its socket in /var/run/postgresql")
	}
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Skip("postgresql-15 is not installed")
	}
	pgUser, err := user.Lookup("postgres")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	sock := CloudPaths().PGSocketDir
	require.NoError(t, os.MkdirAll(sock, 0o2775))
	require.NoError(t, os.Chown(sock, uid, gid))

	dir := t.TempDir()
	require.NoError(t, os.Chown(dir, uid, gid))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755)) // postgres must reach it
	const port, password = "54329", "Bootstrap-Superuser-0123"
	as := func(env []string, name string, args ...string) *exec.Cmd {
		cmd := exec.Command("setpriv", append([]string{"--reuid=postgres", "--regid=postgres", "--init-groups", "--", name}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"}, env...)
		cmd.Dir = dir
		return cmd
	}
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chown(p, uid, gid))
		return p
	}
	pwfile := write("pwfile", password+"\n", 0o600)
	data := filepath.Join(dir, "data")
	out, err := as(nil, bin+"/initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile, "--auth-local=scram-sha-256", "--auth-host=scram-sha-256").CombinedOutput()
	require.NoError(t, err, "%s", out)
	pg := as(nil, bin+"/postgres", "-D", data, "-p", port, "-c", "unix_socket_directories="+sock, "-c", "listen_addresses=")
	log, err := os.Create(filepath.Join(dir, "postgres.log"))
	require.NoError(t, err)
	pg.Stdout, pg.Stderr = log, log
	require.NoError(t, pg.Start())
	t.Cleanup(func() { _ = pg.Process.Signal(os.Interrupt); _ = pg.Wait() })
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(sock, ".s.PGSQL."+port))
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)

	// Exactly what Patroni writes, and the connection string it passes.
	pgpass := write("pgpass", fmt.Sprintf("%s:%s:*:postgres:%s", sock, port, password), 0o600)
	conn := fmt.Sprintf("dbname=postgres user=postgres host=%s port=%s", sock, port)

	// The libpq quirk itself: a plain psql finds no password.
	plain := as([]string{"PGPASSFILE=" + pgpass}, "psql", conn, "-w", "-c", "SELECT 1")
	out, err = plain.CombinedOutput()
	require.Error(t, err, "psql found the password after all (%s): the workaround would no longer be needed", out)

	b, err := RenderPostBootstrap(defaultCluster(t), CloudPaths())
	require.NoError(t, err)
	script := write("post-bootstrap.sh", string(b), 0o755)
	cmd := as([]string{"PGPASSFILE=" + pgpass, EnvAppPassword + "=App-Password-0123456789",
		EnvMonitorPassword + "=Monitor-Password-0123456789", EnvPoolerPassword + "=Pooler-Password-0123456789"}, script, conn)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "post-bootstrap: %s", out)
	check := as([]string{"PGPASSWORD=" + password}, "psql", conn, "-tA", "-c", "SELECT rolname FROM pg_roles WHERE rolname = 'app'")
	out, err = check.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "app", strings.TrimSpace(string(out)))

	// The monitor: in pg_monitor, may connect to the application database
	// and close a WAL segment, and nothing more there.
	appConn := strings.Replace(conn, "dbname=postgres", "dbname=app", 1)
	check = as([]string{"PGPASSWORD=" + password}, "psql", appConn, "-tA", "-c", `SELECT
		pg_has_role('pgha_monitor', 'pg_monitor', 'member'),
		has_database_privilege('pgha_monitor', 'app', 'connect'),
		has_function_privilege('pgha_monitor', 'pg_switch_wal()', 'execute'),
		has_database_privilege('pgha_monitor', 'app', 'create'),
		has_database_privilege('pgha_monitor', 'app', 'temporary'),
		(SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication FROM pg_roles WHERE rolname = 'pgha_monitor')`)
	out, err = check.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "t|t|t|f|f|f", strings.TrimSpace(string(out)))

	// PgBouncer's auth user: may connect to the application database and
	// call get_auth there, a SECURITY DEFINER function of the superuser
	// that nobody else may call; it may create nothing and has no role
	// attribute.
	check = as([]string{"PGPASSWORD=" + password}, "psql", appConn, "-tA", "-c", `SELECT
		has_database_privilege('pgha_pooler', 'app', 'connect'),
		has_function_privilege('pgha_pooler', 'pgbouncer.get_auth(text)', 'execute'),
		(SELECT prosecdef AND pg_get_userbyid(proowner) = 'postgres' AND proconfig = '{search_path=pg_catalog}'
		 FROM pg_proc WHERE oid = 'pgbouncer.get_auth(text)'::regprocedure),
		has_function_privilege('app', 'pgbouncer.get_auth(text)', 'execute'),
		has_function_privilege('pgha_monitor', 'pgbouncer.get_auth(text)', 'execute'),
		has_database_privilege('pgha_pooler', 'app', 'create'),
		has_database_privilege('pgha_pooler', 'app', 'temporary'),
		has_schema_privilege('pgha_pooler', 'pgbouncer', 'create'),
		has_database_privilege('pgha_pooler', 'postgres', 'connect'),
		(SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication FROM pg_roles WHERE rolname = 'pgha_pooler')`)
	out, err = check.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "t|t|t|f|f|f|f|f|t|f", strings.TrimSpace(string(out)),
		"postgres is PUBLIC-connectable as PostgreSQL sets it up; pg_hba admits the pooler to the application database only")
}
