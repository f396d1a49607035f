package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/labtest"
)

// TestBackupsAgainstLab brings up a namespace lab whose PostgreSQL nodes
// archive to and back up into the lab's S3 endpoint with the real
// pgBackRest, and runs validate's backup check: a switched WAL segment is
// archived, a full backup is taken, and a point-in-time restore into a
// scratch server holds exactly the 50 rows committed before the target.
// Then the repository goes away: the check fails saying the WAL is not
// archived while the cluster keeps taking writes; once the repository is
// back, archiving catches up and the check passes again.
func TestBackupsAgainstLab(t *testing.T) {
	tl := labtest.StartWith(t, "pghabk", "--backups")
	validate := func(t *testing.T, args ...string) (string, int, string) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tl.ValidateBin, append([]string{"--outputs", tl.OutputsFile, "--report-dir", dir}, args...)...)
		cmd.Dir = tl.Root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return buf.String(), code, dir
	}

	out, code, dir := validate(t, "--only", "backup")
	t.Log(out)
	require.Equal(t, 0, code, out)
	r := readReport(t, dir)
	require.Len(t, r.Checks, 1)
	c := r.Checks[0]
	require.Equal(t, "PASS", c.Verdict)
	restored, ok := c.Figure("restored")
	require.True(t, ok, "the restored rows are reported")
	assert.Equal(t, "50|0|1|50", restored.Text, "exactly the rows committed before the target")
	for _, k := range []string{"archive_s", "backup_s", "restore_s"} {
		f, ok := c.Figure(k)
		require.True(t, ok, k)
		assert.Positive(t, f.Value, k)
	}

	t.Run("repository unreachable, then back", func(t *testing.T) {
		require.NoError(t, tl.Cluster.StopObjectStore())
		stopped := true
		defer func() {
			if stopped {
				assert.NoError(t, tl.Cluster.StartObjectStore(context.Background()))
			}
		}()
		out, code, _ := validate(t, "--only", "replication,backup")
		t.Log(out)
		require.NotEqual(t, 0, code, "with the repository gone the backup check must fail")
		assert.Contains(t, out, "was not archived within 60 s")
		assert.Regexp(t, `replication\s+PASS`, out, "the cluster keeps taking writes without its repository")

		require.NoError(t, tl.Cluster.StartObjectStore(context.Background()))
		stopped = false
		out, code, _ = validate(t, "--only", "backup")
		t.Log(out)
		require.Equal(t, 0, code, "archiving catches up once the repository is back: %s", out)
	})
}
