package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/scenario"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// rollUnderTraffic acts out the runbook's image roll on a booted lab: every
// node replaced as `pulumi up` replaces an instance (the old machine and
// its root disk destroyed, a new one booted from the same user data at the
// same address with the node's data volume), one at a time in the safe
// order (HAProxy, etcd, replicas, a switchover, the former leader), each
// gated on a whole cluster, while a writer and a reader run through the
// outputs' connection URIs. Replacing the leader without a switchover is
// refused. Every step's longest write gap and the total time are reported;
// the cluster ends whole, every etcd and PostgreSQL node came back with
// its data volume, and not one acknowledged write is missing on any node.
func rollUnderTraffic(t *testing.T, tl *labtest.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	envNow := func() *env {
		o := &options{outputsFile: tl.OutputsFile}
		s, err := loadStack(ctx, o)
		require.NoError(t, err)
		dial, err := dialerFor(s)
		require.NoError(t, err)
		return newEnv(s, o, dial, io.Discard)
	}
	e := envNow()
	// The application connects to the HAProxy nodes as a client does,
	// from the lab's client network, not through validate's SSH jump: the
	// jump pins host keys, and every replaced node has new ones.
	clientDial, err := access.Netns(e.stack.Access.Namespace)
	require.NoError(t, err)
	wt := scenario.AppTarget(e.stack, clientDial, true, 3*time.Second)
	rt := scenario.AppTarget(e.stack, clientDial, false, 3*time.Second)
	require.NotEmpty(t, wt.Fallbacks, "the writer lists both HAProxy nodes")
	require.NoError(t, traffic.Setup(ctx, wt, e.stack.Credentials.MonitorName))
	run := fmt.Sprintf("roll-%d", time.Now().Unix())
	w := &traffic.Writer{Target: wt, RunID: run, Interval: 50 * time.Millisecond, OpTimeout: 2 * time.Second}
	r := &traffic.Reader{Target: rt, Interval: 100 * time.Millisecond, OpTimeout: 2 * time.Second}
	sess := traffic.Start(ctx, w, r)
	stopped := false
	defer func() {
		if !stopped {
			_ = sess.Stop()
		}
	}()
	require.NoError(t, sess.Baseline(ctx, 2*time.Second))

	f := e.probe.Formation(ctx)
	require.True(t, f.OK(), f.Problem())
	before := volumeEvidence(ctx, t, e, run)
	out, err := tl.Run(time.Minute, "replace", f.Leader.Name)
	require.Error(t, err, "replacing the leader must be refused: %s", out)
	assert.Contains(t, out, "is the Patroni leader; switch over first")

	start := time.Now()
	out, err = tl.Run(60*time.Minute, "roll")
	took := time.Since(start)
	t.Logf("lab roll took %s:\n%s", took.Round(time.Second), out)
	require.NoError(t, err, out)
	require.Contains(t, out, "roll: 9 steps")

	// Each step's window runs from its start to its end (gate included).
	stepRE := regexp.MustCompile(`(?m)^  (.+?) +started (\S+), took ([0-9.]+)s$`)
	var gaps []string
	var worst time.Duration
	for _, m := range stepRE.FindAllStringSubmatch(out, -1) {
		from, err := time.Parse(time.RFC3339Nano, m[2])
		require.NoError(t, err, m[0])
		secs, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err, m[0])
		g := longestGap(w.Ops(), from, from.Add(time.Duration(secs*float64(time.Second))))
		gaps = append(gaps, fmt.Sprintf("%-32s %5.1fs, longest write gap %.2fs", m[1], secs, g.Seconds()))
		worst = max(worst, g)
	}
	require.Len(t, gaps, 9, "one gap per step")

	time.Sleep(2 * time.Second)
	stopped = true
	require.NoError(t, sess.Stop())

	// Replaced nodes have new host keys: look again with them.
	e = envNow()
	require.NoError(t, e.probe.Etcd(ctx).Err())
	f = e.probe.Formation(ctx)
	require.True(t, f.OK(), f.Problem())

	// The data volumes outlived their machines: every PostgreSQL node
	// still has the file written beside its data directory before the
	// roll, and the data directory itself was never copied again (a clone
	// from the leader rewrites PG_VERSION); every etcd member has its old
	// member ID (a member that lost its data rejoins under a new one).
	after := volumeEvidence(ctx, t, e, "")
	for node, want := range before {
		assert.Equal(t, want, after[node], "%s: the data volume did not come back with the node", node)
	}
	t.Logf("data volumes kept across the roll: %v", after)

	acked := history.Acked(w.Ops())
	survivors := map[string][]int64{}
	for _, n := range e.pgNodes() {
		var got []int64
		// A replica may trail the leader for a moment.
		require.True(t, wait.Poll(ctx, 30*time.Second, 500*time.Millisecond, func() bool {
			c, err := e.probe.Monitor(n.PrivateIP).Connect(ctx)
			if err != nil {
				return false
			}
			defer c.Close(context.Background())
			got, err = traffic.Survivors(ctx, c, run)
			return err == nil && len(got) >= len(acked)
		}), "%s never held the %d acknowledged writes (has %d)", n.Name, len(acked), len(got))
		survivors[n.Name] = got
	}
	loss := history.CheckLoss(acked, survivors)
	t.Logf("roll of all 8 nodes in %s under traffic: %d writes acknowledged, %d lost, reads failed %d of %d:\n  %s",
		took.Round(time.Second), loss.Acked, len(loss.LostAnywhere),
		history.Reads(r.Ops(), start, time.Time{}).Failed, history.Reads(r.Ops(), start, time.Time{}).Total, strings.Join(gaps, "\n  "))
	require.Greater(t, loss.Acked, 100)
	require.True(t, loss.OK(), "acknowledged writes lost: %v", loss.LostAnywhere)
	// A generous bound: correctness here, the figures go to the benchmarks.
	assert.Less(t, worst, 30*time.Second)
}

// volumeEvidence reads, per node, what only a kept data volume carries: on
// a PostgreSQL node a marker file beside the data directory (written
// first when mark is not empty) and the time PG_VERSION was written; on an
// etcd member its member ID.
func volumeEvidence(ctx context.Context, t *testing.T, e *env, mark string) map[string]string {
	t.Helper()
	out := map[string]string{}
	// Server-side COPY and pg_read_file are the superuser's, whom pg_hba
	// admits only from the PostgreSQL nodes: the SQL runs on the node, as
	// the OS user postgres on its socket, over SSH as an operator would.
	cfg, err := access.SSHConfigFromStack(e.stack)
	require.NoError(t, err)
	jump, err := access.NewJump(cfg)
	require.NoError(t, err)
	defer jump.Close()
	psql := func(n outputs.Node, sql string) (string, error) {
		h := access.Host{Addr: net.JoinHostPort(n.PrivateIP, "22"), HostKeys: n.HostKeys}
		out, err := jump.RunRoot(ctx, h, fmt.Sprintf("sudo -u postgres psql -X -A -t -v ON_ERROR_STOP=1 -d %s -c %s",
			e.stack.Credentials.AppDatabase, "'"+strings.ReplaceAll(sql, "'", `'\''`)+"'"))
		return strings.TrimSpace(out), err
	}
	for _, n := range e.pgNodes() {
		const marker = "/var/lib/postgresql/pgha-volume-marker"
		if mark != "" {
			// Server-side COPY writes as the postgres user, on the node.
			o, err := psql(n, fmt.Sprintf("COPY (SELECT '%s %s') TO '%s'", n.Name, mark, marker))
			require.NoError(t, err, "%s: %s", n.Name, o)
		}
		got, err := psql(n, fmt.Sprintf("SELECT replace(pg_read_file('%s'), chr(10), '') || ' / PG_VERSION ' || (pg_stat_file('PG_VERSION')).modification::text", marker))
		require.NoError(t, err, "%s: the marker on its data volume: %s", n.Name, got)
		out[n.Name] = got
	}
	st := e.probe.Etcd(ctx)
	require.NoError(t, st.Err())
	for _, m := range st.Members {
		require.NotEmpty(t, m.MemberID, m.Node.Name)
		out[m.Node.Name] = "member " + m.MemberID
	}
	return out
}

// longestGap is the longest stretch without an acknowledged write that
// overlaps [from, to]: from the last ack before a gap to the first after
// it, or to the window's end when none came.
func longestGap(ops []history.Op, from, to time.Time) time.Duration {
	var acks []time.Time
	for _, o := range ops {
		if o.OK {
			acks = append(acks, o.End)
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	prev := from
	var worst time.Duration
	for _, a := range acks {
		if !a.After(from) {
			prev = a
			continue
		}
		worst = max(worst, a.Sub(prev))
		prev = a
		if a.After(to) {
			return worst
		}
	}
	return max(worst, to.Sub(prev))
}

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ops := []history.Op{{OK: true, End: at(0)}, {OK: true, End: at(1)}, {OK: false, End: at(2)}, {OK: true, End: at(4)}, {OK: true, End: at(4.5)}}
	assert.Equal(t, 3*time.Second, longestGap(ops, at(0.5), at(5)), "from the ack before the window to the next")
	assert.Equal(t, 500*time.Millisecond, longestGap(ops, at(4.2), at(4.4)), "a window inside a gap still reports the gap across it")
	assert.Equal(t, 5500*time.Millisecond, longestGap(ops, at(5), at(10)), "no ack after the window's start: until its end")
}
