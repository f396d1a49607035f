package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
)

// TestCopyNodeLogs: the logs of a failed run survive the lab's rebuild.
func TestCopyNodeLogs(t *testing.T) {
	l, err := cluster.New("copylogs")
	require.NoError(t, err)
	l.Dir = t.TempDir()
	for _, node := range []string{"pg-1", "etcd-2"} {
		p := l.DaemonLog(node)
		require.NoError(t, os.MkdirAll(filepath.Join(filepath.Dir(p), "postgresql"), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(node+" log\n"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(l.DaemonLog("pg-1")), "postgresql", "pg.log"), []byte("pg\n"), 0o644))
	dst := filepath.Join(t.TempDir(), "kept")
	require.NoError(t, copyNodeLogs(l, dst))
	b, err := os.ReadFile(filepath.Join(dst, "pg-1", filepath.Base(l.DaemonLog("pg-1"))))
	require.NoError(t, err)
	assert.Equal(t, "pg-1 log\n", string(b))
	b, err = os.ReadFile(filepath.Join(dst, "pg-1", "postgresql", "pg.log"))
	require.NoError(t, err)
	assert.Equal(t, "pg\n", string(b))
	_, err = os.Stat(filepath.Join(dst, "etcd-2"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(dst, "pg-2"))
	assert.True(t, os.IsNotExist(err), "a node without logs is skipped")
}

func TestParseBenchOptions(t *testing.T) {
	o, err := parseBenchOptions([]string{"--profiles", "fast", "--kinds", "kill", "--runs", "2", "--doc", "x/b.md"}, os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, []string{"fast"}, o.profiles)
	assert.Equal(t, []string{"kill"}, o.kinds)
	assert.Equal(t, filepath.Join("x", "benchmarks.svg"), o.svg)
	assert.Equal(t, "go run ./validate bench --profiles fast --runs 2 --kinds kill --doc x/b.md", reproduceBench(o))
	for _, bad := range [][]string{
		{"--profiles", "turbo"}, {"--kinds", "stop"}, {"--runs", "0"}, {"--name", "Bad-Name"}, {"extra"},
	} {
		_, err := parseBenchOptions(bad, os.Stderr)
		require.Error(t, err, "%v", bad)
		assert.True(t, isUserError(err), "%v: %v", bad, err)
	}
}
