package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/validate/internal/bench"
)

// TestBenchEndToEnd runs `validate bench` for real, at its smallest: one
// profile, one switchover, a short pgbench. It proves the command builds its
// own lab, measures through the real checks, writes the page section, the
// chart and the JSON, and removes the lab again. The full bench is a
// command, not a test: it takes many minutes.
func TestBenchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a lab: not with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces)")
	}
	for _, bin := range []string{"etcd", "patroni", "haproxy", "ip", "/usr/lib/postgresql/15/bin/postgres", bench.PgbenchPath} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed", bin)
		}
	}
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "validate")
	build := exec.Command("go", "build", "-o", bin, "./validate")
	build.Dir = root
	b, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", b)

	prefix := fmt.Sprintf("bt%d", os.Getpid()%100000)
	doc := filepath.Join(dir, "benchmarks.md")
	require.NoError(t, os.WriteFile(doc, []byte("# Benchmarks\n\n## Lab start-up\n\nkept\n"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "--profiles", "fast", "--kinds", "switchover", "--runs", "1",
		"--pgbench-seconds", "3", "--pgbench-rounds", "1", "--name", prefix, "--doc", doc, "--json", filepath.Join(dir, "r.json"))
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Cleanup(func() {
		// Whatever happened, no lab may be left behind.
		if l, err := cluster.New(prefix + "f"); err == nil && l.Exists() {
			t.Errorf("bench left lab %s behind", l.Name)
			_, _ = l.Down(context.Background())
		}
	})
	require.NoError(t, err, "validate bench: %s", out.String())

	var res bench.Result
	jb, err := os.ReadFile(filepath.Join(dir, "r.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(jb, &res))
	require.Len(t, res.Trials, 1)
	tr := res.Trials[0]
	assert.True(t, tr.OK(), "%v", tr.Problems)
	assert.Equal(t, "fast", tr.Profile)
	assert.Equal(t, bench.Switchover, tr.Kind)
	// Generous bounds: a switchover gap is positive and well under a minute.
	assert.Greater(t, tr.Outage, 0.0)
	assert.Less(t, tr.Outage, 60.0)
	assert.Greater(t, tr.Acked, 0.0)
	assert.Equal(t, 0.0, tr.Lost)
	assert.Equal(t, 0, tr.SplitBrain)
	assert.Greater(t, tr.SplitBrainPolls, 0)
	require.Len(t, res.Costs, 2, "pgbench ran both workloads")
	for _, c := range res.Costs {
		assert.Greater(t, c.Ratio(), 0.0, c.Workload)
	}
	// The lab has poolers: the client through them was measured beside
	// the direct one, the switchover held it without an error, and
	// pgbench ran through them too.
	assert.Equal(t, 0.0, tr.PooledWritesFailed)
	assert.Greater(t, tr.PooledWrites, 0.0)
	assert.Greater(t, tr.PooledLongestWrite, 0.0)
	assert.Greater(t, tr.PoolerStall, 0.0)
	assert.False(t, math.IsNaN(tr.LongestWrite))
	require.Len(t, res.PoolerCosts, 1, "pgbench ran through the pooler: %v", res.Notes)
	assert.Greater(t, res.PoolerCosts[0].Ratio(), 0.0)

	page, err := os.ReadFile(doc)
	require.NoError(t, err)
	assert.Contains(t, string(page), "## Lab start-up\n\nkept\n", "other sections are kept")
	assert.Contains(t, string(page), bench.Heading)
	assert.Contains(t, string(page), "go run ./validate bench --profiles fast --runs 1 --kinds switchover")
	svg, err := os.ReadFile(filepath.Join(dir, "benchmarks.svg"))
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(svg, new(struct{})), "chart is well-formed")
	assert.True(t, strings.Contains(string(svg), "<circle"))
}
