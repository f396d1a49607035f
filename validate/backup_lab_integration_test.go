package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

	// A short archive-lag window keeps the check quick; the bench runs a
	// long one (docs/benchmarks.md).
	const lagWindow = 15 * time.Second
	out, code, dir := validate(t, "--only", "backup", "--archive-lag-window", lagWindow.String())
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

	// The archive lag under the writer: measured, and bounded. The window
	// starts with a WAL switch, so the lag cannot exceed the window (plus
	// a poll) unless the measurement is wrong; a healthy archive never
	// lets it pass archive_timeout plus a minute.
	for _, k := range []string{"archive_lag_p50_s", "archive_lag_p99_s", "archive_lag_max_s", "archive_timeout_s", "archive_lag_writes"} {
		f, ok := c.Figure(k)
		require.True(t, ok, k)
		assert.Positive(t, f.Value, k)
	}
	p50, _ := c.Figure("archive_lag_p50_s")
	maxLag, _ := c.Figure("archive_lag_max_s")
	timeout, _ := c.Figure("archive_timeout_s")
	assert.LessOrEqual(t, p50.Value, maxLag.Value)
	assert.Less(t, maxLag.Value, lagWindow.Seconds()+5, "the lag is at most the window since its WAL switch")
	assert.Less(t, maxLag.Value, timeout.Value+60)
	failures, ok := c.Figure("archive_failures")
	require.True(t, ok)
	assert.Zero(t, failures.Value, "no archiving failures while the repository is up")
	state, _ := c.Figure("archive_state")
	assert.Contains(t, state.Text, "archiving kept up")
	require.Len(t, c.Series, 1, "the lag is charted")
	assert.Greater(t, len(c.Series[0].Points), int(lagWindow/time.Second)*2, "polled about every 250 ms")
	svg, err := os.ReadFile(filepath.Join(dir, "timeline.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), `id="series-backup-archive_lag"`)

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
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+net.JoinHostPort(replica.Host, "8008")+"/reinitialize", strings.NewReader(`{"force": true}`))
		require.NoError(t, err)
		req.SetBasicAuth(userdata.DefaultUsers().RestAPI, pw["restapi"])
		resp, err := access.HTTPSClient(dial, 30*time.Second, p.TLS).Do(req)
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
		// Archiving fails once a segment is ready: close one and wait
		// for the failure, so the check finds archiving failing.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p, err := tl.Cluster.Probe()
		require.NoError(t, err)
		f := p.Formation(ctx)
		require.NoError(t, f.Err())
		conn, err := p.Monitor(f.Leader.Host).Connect(ctx)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var before int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT failed_count FROM pg_stat_archiver").Scan(&before))
		app, err := p.App(p.Stack.WriteEndpoint.Host, p.Stack.WriteEndpoint.Port).Connect(ctx)
		require.NoError(t, err)
		_, err = app.Exec(ctx, "CREATE TABLE IF NOT EXISTS pgha_rpo_test (at timestamptz DEFAULT now()); INSERT INTO pgha_rpo_test DEFAULT VALUES")
		app.Close(context.Background())
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SELECT pg_switch_wal()")
		require.NoError(t, err)
		require.True(t, wait.Poll(ctx, 2*time.Minute, time.Second, func() bool {
			var n int64
			return conn.QueryRow(ctx, "SELECT failed_count FROM pg_stat_archiver").Scan(&n) == nil && n > before
		}), "archiving never failed with the repository gone")

		out, code, dir := validate(t, "--only", "replication,backup", "--archive-lag-window", lagWindow.String())
		t.Log(out)
		require.NotEqual(t, 0, code, "with the repository gone the backup check must fail")
		assert.Contains(t, out, "was not archived within 60 s")
		assert.Contains(t, out, "archiving is FAILING", "validate says the archive is failing")
		assert.Regexp(t, `replication\s+PASS`, out, "the cluster keeps taking writes without its repository")
		rep := readReport(t, dir)
		bc, ok := rep.Check("backup")
		require.True(t, ok)
		state, ok := bc.Figure("archive_state")
		require.True(t, ok)
		assert.Regexp(t, `FAILING: .* the newest data in the archive is [0-9.]+ s old at least, and [0-9.]+ MiB of WAL waits for it`, state.Text,
			"the report says how far behind the archive is")
		behind, ok := bc.Figure("archive_behind_max_bytes")
		require.True(t, ok)
		assert.Positive(t, behind.Value)

		require.NoError(t, tl.Cluster.StartObjectStore(context.Background()))
		stopped = false
		out, code, _ = validate(t, "--only", "backup", "--archive-lag-window", lagWindow.String())
		t.Log(out)
		require.Equal(t, 0, code, "archiving catches up once the repository is back: %s", out)
	})
}
