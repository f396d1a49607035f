package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/alertproof"
	"github.com/pgha/pgha/validate/internal/promgraph"
	"github.com/pgha/pgha/validate/internal/report"
	"github.com/pgha/pgha/validate/internal/scenario"
)

// TestScenariosAgainstLab brings up one lab of its own (synchronous mode)
// and runs every resilience scenario against it: each
// must pass with no acknowledged write lost, no poll seeing two primaries
// and no single-history violation, and the report must list them all. It
// then interrupts a scenario in the middle of its fault (Ctrl-C) and checks
// that the fault was undone. The lab is always taken down. About 4 minutes.
// The lab's Prometheus watched it all: each scenario's alerts must match
// its expectation (package alertproof) and clear by the end.
func TestScenariosAgainstLab(t *testing.T) {
	tl := labtest.Start(t, "pghasc", scenario.Pgbench)
	root, validateBin, outputsFile, l := tl.Root, tl.ValidateBin, tl.OutputsFile, tl.Cluster

	var run, want []string
	for _, n := range scenario.Names() {
		run = append(run, n)
		want = append(want, "scenario:"+n)
	}

	t.Run("every scenario passes and is reported", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, validateBin, "--outputs", outputsFile, "--report-dir", dir, "--scenario", strings.Join(run, ","))
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		start := time.Now()
		err := cmd.Run()
		t.Logf("validate --scenario … took %s:\n%s", time.Since(start).Round(time.Second), buf.String())
		require.NoError(t, err, "validate --scenario failed")
		require.Contains(t, buf.String(), "RESULT: PASS")

		r := readReport(t, dir)
		require.True(t, r.Passed)
		require.Equal(t, want, namesOf(r.Checks), "the report lists every scenario run, in order")
		md, err := os.ReadFile(filepath.Join(dir, "report.md"))
		require.NoError(t, err)
		for _, c := range r.Checks {
			require.Equal(t, report.Pass, c.Verdict, "%s: %s", c.Name, c.Summary)
			require.Contains(t, string(md), "## "+c.Name+": PASS")
			fig := func(key string) float64 {
				f, ok := c.Figure(key)
				require.True(t, ok, "%s reports %s", c.Name, key)
				return f.Value
			}
			require.Zero(t, fig("lost_writes"), "%s lost acknowledged writes", c.Name)
			require.Positive(t, fig("acked_writes"), "%s ran under write traffic", c.Name)
			require.Zero(t, fig("split_brain_instants"), "%s saw two primaries", c.Name)
			require.Positive(t, fig("primary_polls"), "%s polled /primary", c.Name)
			require.Zero(t, fig("history_problems"), "%s", c.Name)
			require.Positive(t, fig("reads_total"), "%s ran under read traffic", c.Name)
			fig("write_gap_s")
			fig("recovered_s")
			require.NotNil(t, c.Timeline)
			require.NotEmpty(t, c.Timeline.Reads)
		}
		// Where the leader is lost, writes go down and come back: an RTO
		// exists and stays within a generous bound.
		for _, n := range []string{"leader-kill", "leader-partition", "double-failover"} {
			c, _ := r.Check("scenario:" + n)
			rto, ok := c.Figure("rto_s")
			require.True(t, ok, "%s reports an RTO", n)
			require.Less(t, rto.Value, 60.0, n)
		}
		// A client of the pooler wrote through every scenario, and the
		// switchover under load, held behind the poolers, failed none of
		// pgbench's transactions nor of that client's writes.
		for _, c := range r.Checks {
			f, ok := c.Figure("pooled_writes_total")
			require.True(t, ok, "%s: no writer through the pooler", c.Name)
			require.Positive(t, f.Value, c.Name)
		}
		sl, _ := r.Check("scenario:switchover-load")
		for _, key := range []string{"load_failed", "pooled_writes_failed"} {
			f, ok := sl.Figure(key)
			require.True(t, ok, "switchover-load reports %s", key)
			require.Zero(t, f.Value, "switchover-load: %s", key)
		}
		_, ok := sl.Figure("pooler_stall_s")
		require.True(t, ok, "switchover-load was held behind the poolers")
		require.Contains(t, sl.Summary, "through the pooler")
		// Where nothing may change for clients, nothing did.
		for _, n := range []string{"etcd-member-lost", "etcd-quorum-lost"} {
			c, _ := r.Check("scenario:" + n)
			f, _ := c.Figure("writes_failed")
			require.Zero(t, f.Value, "%s: writes failed", n)
		}
		// The cut-off leader was seen to stop answering /primary and to stop
		// taking writes while still cut off, before the heal.
		c, _ := r.Check("scenario:leader-partition")
		for _, key := range []string{"demote_s", "demote_writable_s"} {
			f, ok := c.Figure(key)
			require.True(t, ok, "leader-partition reports %s", key)
			require.Positive(t, f.Value, key)
		}
		require.NotEmpty(t, r.After.Members)
		// What the lab's Prometheus alerted: each scenario raised what it
		// should, fired nothing it should not, and everything cleared.
		requireAlertsAsExpected(t, l, r)
	})

	t.Run("Ctrl-C in the middle of a fault undoes it", func(t *testing.T) {
		cmd := exec.Command(validateBin, "--outputs", outputsFile, "--report-dir", t.TempDir(), "--scenario", "leader-partition")
		cmd.Dir = root
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		require.NoError(t, cmd.Start())
		var log strings.Builder
		faulted := make(chan string, 1)
		read := make(chan struct{})
		go func() {
			defer close(read)
			re := regexp.MustCompile(`event fault: partition of (\S+)`)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					faulted <- m[1]
				}
			}
		}()
		var victim string
		select {
		case victim = <-faulted:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("the scenario never injected its fault")
		}
		time.Sleep(2 * time.Second)
		cut, err := l.Partitioned(victim)
		require.NoError(t, err)
		require.True(t, cut, "%s is partitioned while the scenario runs", victim)
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		err = cmd.Wait()
		pw.Close()
		<-read
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "validate exits non-zero when interrupted: %v", err)
		require.Equal(t, 130, ee.ExitCode(), log.String())
		cut, err = l.Partitioned(victim)
		require.NoError(t, err)
		require.False(t, cut, "the interrupted scenario healed %s:\n%s", victim, log.String())
		// And the cluster heals back to 1+2 by itself.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := probeFor(t, outputsFile).Formation(ctx).Err()
			cancel()
			if err == nil {
				break
			}
			require.False(t, time.Now().After(deadline), "the lab did not form again after the interrupted scenario: %v", err)
			time.Sleep(2 * time.Second)
		}
	})
}

// requireAlertsAsExpected waits until the lab's Prometheus has no alert
// pending or firing (but the disks', which follow the host's disk), then reads each destructive check's alert history up
// to that moment and judges it against the check's expectation, clearing
// included.
func requireAlertsAsExpected(t *testing.T, l *cluster.Lab, r report.Report) {
	t.Helper()
	require.True(t, l.Monitored(), "the namespace lab runs Prometheus")
	hc, err := l.PrometheusClient()
	require.NoError(t, err)
	cl := &promgraph.Client{BaseURL: l.PrometheusURL(), HTTP: hc}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	var active []string
	quiet := wait.Poll(ctx, 3*time.Minute, time.Second, func() bool {
		res, err := cl.Query(ctx, "ALERTS", time.Time{})
		if err != nil {
			active = []string{err.Error()}
			return false
		}
		active = active[:0]
		for _, s := range res.Series {
			if !slices.Contains(alertproof.Unrelated, s.Labels["alertname"]) {
				active = append(active, s.Labels["alertname"]+" "+s.Labels["alertstate"])
			}
		}
		return len(active) == 0
	})
	require.True(t, quiet, "alerts still active 3 min after the run: %v", active)
	t.Logf("every alert cleared %s after validate ended", time.Since(start).Round(time.Second))
	until := time.Now()
	checked := 0
	for _, c := range r.Checks {
		x, ok := alertproof.For(c.Name)
		if !ok {
			continue
		}
		checked++
		require.NotNil(t, c.Alerts, "%s: the report has its alert history", c.Name)
		require.Empty(t, c.Alerts.Note, "%s", c.Name)
		require.NotEmpty(t, c.Alerts.Expect, "%s: judged in the report", c.Name)
		a := *c.Alerts
		require.NoError(t, promgraph.FollowAlerts(ctx, cl, &a, until))
		t.Logf("%s alerts (times from the fault):\n  %s", c.Name, strings.Join(a.Lines(), "\n  "))
		assert.Empty(t, alertproof.Judge(x, &a, true), "%s: alerts not as expected (%s)", c.Name, x)
	}
	require.Positive(t, checked, "the run had destructive checks")
}
