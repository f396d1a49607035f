package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/userdata"
)

// TestBenchTuning runs `lab bench --tuning`'s machinery once, at a tiny
// scale and with short runs: both arms come up with what they should run
// with, pgbench measures through HAProxy, a burst through HAProxy queues
// while one straight at the leader is refused, and the section renders.
func TestBenchTuning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces, daemons as postgres)")
	}
	for _, b := range []string{"ip", "setpriv", "etcd", "patroni", "haproxy", "/usr/lib/postgresql/15/bin/postgres", cluster.PgbenchPath} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed", b)
		}
	}
	if testing.Short() {
		t.Skip("brings up two whole labs")
	}
	l, err := cluster.New(fmt.Sprintf("tbtune%d", os.Getpid()%100000))
	require.NoError(t, err)
	require.NoError(t, l.SetNet(cluster.NetNetns))
	require.False(t, l.Exists(), "lab %s left over from an earlier run", l.Name)
	l.Log = testLog{t}
	t.Cleanup(func() {
		// BenchTuning takes its labs down; this is for a test that died
		// half-way.
		if l.Exists() {
			_, err := l.Down(context.Background())
			assert.NoError(t, err)
		}
		assert.Empty(t, netlab.Existing(l.Name))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	o := tuningOptions(1, 1, 2, "fast")
	runs, err := l.BenchTuning(ctx, o)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.False(t, l.Exists(), "every arm's lab is taken down")
	for i, w := range []string{userdata.WorkloadNone, userdata.WorkloadOLTP} {
		r := runs[i]
		assert.Equal(t, w, r.Workload)
		tu, err := userdata.Tune(cluster.LabNodeSize(), w)
		require.NoError(t, err)
		assert.Equal(t, tu.MaxConnections, r.MaxConnections, w)
		assert.Equal(t, tu.HAProxyMaxConn(2), r.HAProxyMaxConn, w)
		assert.Greater(t, r.DBBytes, int64(10<<20), "%s: pgbench -i -s 1 is about 15 MB", w)
		assert.Greater(t, r.SelectTPS, 0.0, w)
		assert.Greater(t, r.TPCBTPS, 0.0, w)

		n := r.MaxConnections + o.BurstExtra
		assert.Equal(t, n, r.ViaHAProxy.Sessions, w)
		assert.Empty(t, r.ViaHAProxy.Errors, "%s: HAProxy queues what PostgreSQL would refuse", w)
		assert.Equal(t, n, r.ViaHAProxy.Ran, w)
		assert.Positive(t, r.Direct.Refused, "%s: PostgreSQL refuses what exceeds max_connections", w)
		assert.Equal(t, n, r.Direct.Ran+len(r.Direct.Errors), w)
		for _, err := range r.Direct.Errors {
			var pe *pgconn.PgError
			if assert.True(t, errors.As(err, &pe), "%s: want a refusal by the server, got %v", w, err) {
				assert.Equal(t, "53300", pe.Code, "%s: too many clients: %v", w, err)
			}
		}
	}
	assert.Equal(t, "128MB", runs[0].SharedBuffers, "none runs with PostgreSQL's default")
	tu, err := userdata.Tune(cluster.LabNodeSize(), userdata.WorkloadOLTP)
	require.NoError(t, err)
	for _, p := range tu.Params {
		if p.Name == "shared_buffers" {
			assert.Equal(t, p.Value, runs[1].SharedBuffers, "oltp runs with its own")
		}
	}

	doc := tuningSection(runs, o, time.Minute, "go run ./lab bench --tuning")
	t.Log("\n" + doc)
	assert.True(t, strings.HasPrefix(doc, tuningHeading+"\n"))
	assert.Contains(t, doc, "| select-only (`-S`) |")
	assert.Contains(t, doc, "| TPC-B-like (default mix) |")
	assert.Contains(t, doc, "Reproduce (as root")
	assert.NotContains(t, doc, "NaN")
	assert.NotContains(t, doc, "Inf")
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
