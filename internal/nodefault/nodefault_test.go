package nodefault

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/userdata"
)

func TestSpecFor(t *testing.T) {
	p := userdata.CloudPaths()
	k, err := SpecFor("patroni", p)
	require.NoError(t, err)
	assert.Equal(t, KillSpec{Unit: "patroni", Match: "bin/patroni " + p.PatroniConfigFile, DataDir: p.PGDataDir}, k)
	_, err = SpecFor("bastion", p)
	require.ErrorContains(t, err, `"bastion" is not one of patroni, etcd, haproxy`)
}

func TestQuote(t *testing.T) {
	out, err := exec.Command("bash", "-c", "printf %s "+Quote(`it's $HOME; "x"`)).Output()
	require.NoError(t, err)
	assert.Equal(t, `it's $HOME; "x"`, string(out))
}

// TestKillPostgresScript kills the PID a postmaster.pid names, and says so
// when there is none rather than passing.
func TestKillPostgresScript(t *testing.T) {
	dir := t.TempDir()
	run := func() (string, error) {
		b, err := exec.Command("bash", "-c", KillPostgresScript(dir)).CombinedOutput()
		return string(b), err
	}
	out, err := run()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	assert.Equal(t, 3, ee.ExitCode())
	assert.Contains(t, out, "PostgreSQL is not running")

	pm := exec.Command("sleep", "300")
	require.NoError(t, pm.Start())
	t.Cleanup(func() { _ = pm.Process.Kill() })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"),
		[]byte(strconv.Itoa(pm.Process.Pid)+"\n"+dir+"\n"), 0o600))
	out, err = run()
	require.NoError(t, err, out)
	err = pm.Wait()
	require.True(t, errors.As(err, &ee), "%v", err)
	ws := ee.Sys().(syscall.WaitStatus)
	assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "ended by %v", ws)
}

// The drill's arguments reach it as single words whatever they hold, and
// the script is one the shell parses.
func TestRestoreDrillRun(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 14, 0, 123456000, time.FixedZone("x", 3600))
	s := RestoreDrillRun(at, "app", "SELECT 'it''s' FROM t")
	assert.Contains(t, s, `--target '2026-12-02 02:14:00.123456+00' --database 'app' --query 'SELECT '\''it'\'''\''s'\'' FROM t'`)
	out, err := exec.Command("sh", "-n", "-c", s).CombinedOutput()
	require.NoError(t, err, string(out))
}
