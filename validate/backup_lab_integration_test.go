package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/userdata"
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
		out, code := runValidate(t, tl, dir, args...)
		return out, code, dir
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

	t.Run("a rebuilt replica restores from the repository", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p, err := tl.Cluster.Probe()
		require.NoError(t, err)
		f := p.Formation(ctx)
		require.NoError(t, f.Err())
		replica, ok := f.Replica(false)
		if !ok {
			replica, ok = f.Replica(true)
		}
		require.True(t, ok)
		const rebuilt = "replica has been created using pgbackrest"
		count := func() int {
			b, err := os.ReadFile(tl.Cluster.DaemonLog(replica.Name))
			require.NoError(t, err)
			return strings.Count(string(b), rebuilt)
		}
		before := count()
		pw, err := tl.Cluster.Passwords()
		require.NoError(t, err)
		dial, err := access.Netns(tl.Cluster.ClientNamespace())
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(replica.Host, "8008")+"/reinitialize", strings.NewReader(`{"force": true}`))
		require.NoError(t, err)
		req.SetBasicAuth(userdata.DefaultUsers().RestAPI, pw["restapi"])
		resp, err := access.HTTPClient(dial, 30*time.Second).Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "POST /reinitialize on %s", replica.Name)
		require.True(t, wait.Poll(ctx, 2*time.Minute, 500*time.Millisecond, func() bool { return count() > before }),
			"%s was not rebuilt from the repository (its log never says %q): copied from the leader instead?", replica.Name, rebuilt)
		_, whole := p.WaitFormation(ctx, 2*time.Minute, nil, t.Logf)
		require.True(t, whole, "the cluster is whole again after rebuilding %s", replica.Name)
	})

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
