package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func startSleep(t *testing.T, marker string) Record {
	t.Helper()
	dir := t.TempDir()
	// python3 keeps extra arguments in its command line, as the daemons
	// keep their config path; Patroni needs it anyway. Debian's own binary
	// first: a python3 on PATH may be a shim script that execs again, and
	// a process in the middle of execve briefly has no command line and no
	// memory map to read, which made these tests flaky.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 is not installed")
		}
	}
	r, err := Start(Spec{Argv: []string{py, "-c", "import time; time.sleep(300)", marker}, Log: filepath.Join(dir, "log", "sleep.log"), Marker: marker, Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Kill() })
	return r
}

func TestStartStopAndIdentity(t *testing.T) {
	r := startSleep(t, "pgha-proc-test-marker")
	require.True(t, r.Alive())
	require.FileExists(t, r.Log)

	// A record whose start time or marker does not match is somebody
	// else's process (a reused PID): it is neither alive nor signalled.
	other := r
	other.Start++
	assert.False(t, other.Alive())
	require.NoError(t, other.Kill())
	assert.True(t, r.Alive(), "a mismatched record must not signal the process")
	other = r
	other.Marker = "not-in-the-command-line"
	assert.False(t, other.Alive())

	found := CmdlineContains("pgha-proc-test-marker")
	assert.Contains(t, found, r.PID)
	assert.Contains(t, WithDescendants([]int{r.PID}), r.PID)
	kb, err := PSSKiB(r.PID)
	require.NoError(t, err)
	assert.Greater(t, kb, int64(0))

	require.NoError(t, r.Stop(5*time.Second))
	assert.False(t, r.Alive(), "stopped, and reaped rather than left a zombie that looks alive")
	require.NoError(t, r.Stop(time.Second), "stopping twice is fine")
}

func TestAdoptChecksTheMarker(t *testing.T) {
	r := startSleep(t, "pgha-adopt-marker")
	got, err := Adopt(r.PID, "pgha-adopt-marker")
	require.NoError(t, err)
	assert.Equal(t, r.Start, got.Start)
	_, err = Adopt(r.PID, "some-other-data-dir")
	require.Error(t, err)
}

func TestSaveLoadAndPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pids.json")
	recs, err := Load(path)
	require.NoError(t, err)
	assert.Empty(t, recs)
	want := map[string]Record{"pg-1": {PID: 42, Start: 7, Marker: "/x/patroni.yml", Log: "/x/log"}}
	require.NoError(t, Save(path, want))
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	require.NoError(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("12345\n/var/lib/x\n1700000000\n5432\n"), 0o600))
	pid, err := PostmasterPID(dir)
	require.NoError(t, err)
	assert.Equal(t, 12345, pid)
}

// CwdUnder finds a process by its program and working directory (how a
// loopback lab finds stray PostgreSQL backends), and nothing else.
func TestCwdUnder(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	sleep, err = filepath.EvalSymlinks(sleep)
	require.NoError(t, err)
	dir := t.TempDir()
	work := filepath.Join(dir, "data")
	require.NoError(t, os.Mkdir(work, 0o755))
	cmd := exec.Command(sleep, "30")
	cmd.Dir = work
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	assert.Contains(t, CwdUnder(sleep, dir), cmd.Process.Pid)
	assert.Contains(t, CwdUnder(sleep, work), cmd.Process.Pid)
	assert.NotContains(t, CwdUnder(sleep, dir+"x"), cmd.Process.Pid, "a sibling directory with the same prefix")
	assert.NotContains(t, CwdUnder("/usr/lib/postgresql/15/bin/postgres", dir), cmd.Process.Pid, "another program")
}
