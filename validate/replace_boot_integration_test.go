package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/internal/wait"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/history"
	"github.com/pgha/pgha/validate/internal/traffic"
)

// replaceUnderTraffic acts out day-2 replacements on a booted lab, as
// `pulumi up` performs them (the old instance destroyed, a new one booted
// from the same user data at the same address, nothing of the old disk
// kept), while a writer and a reader run through HAProxy: the sync
// standby, an etcd member, and the leader after a switchover. Writes stay
// available but for the switchover's gap, the cluster is whole after each
// step, and not one acknowledged write is missing on any node.
func replaceUnderTraffic(t *testing.T, tl *labtest.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
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
	require.NoError(t, traffic.Setup(ctx, e.writeTarget()))
	run := fmt.Sprintf("replace-%d", time.Now().Unix())
	w := &traffic.Writer{Target: e.writeTarget(), RunID: run, Interval: 50 * time.Millisecond, OpTimeout: 2 * time.Second}
	r := &traffic.Reader{Target: e.readTarget(), Interval: 100 * time.Millisecond, OpTimeout: 2 * time.Second}
	sess := traffic.Start(ctx, w, r)
	stopped := false
	defer func() {
		if !stopped {
			_ = sess.Stop()
		}
	}()
	require.NoError(t, sess.Baseline(ctx, 2*time.Second))

	replace := func(node string, args ...string) (time.Time, string) {
		t.Helper()
		at := time.Now()
		out, err := tl.Run(15*time.Minute, append([]string{"replace"}, append(args, node)...)...)
		require.NoError(t, err, "lab replace %s: %s", node, out)
		require.Contains(t, out, "cluster whole", out)
		t.Logf("replace %s: %s", node, strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
		return at, out
	}
	gapSince := func(from time.Time) time.Duration {
		t.Helper()
		g, err := history.Outage(w.Ops(), from)
		require.NoError(t, err, "no write was acknowledged after %s", from.Format(time.TimeOnly))
		return g.Duration
	}

	f := e.probe.Formation(ctx)
	require.True(t, f.OK(), f.Problem())
	leader := f.Leader.Name
	sync, ok := f.Replica(true)
	require.True(t, ok, "synchronous mode has a sync standby")

	// 1. The sync standby: Patroni names another one; writes barely pause.
	at, _ := replace(sync.Name)
	gaps := map[string]time.Duration{"replica " + sync.Name: gapSince(at)}

	// 2. An etcd member: the new machine rejoins as a new member.
	etcdNode := e.stack.ByRole(topology.RoleEtcd)[1].Name
	at, _ = replace(etcdNode)
	gaps["etcd "+etcdNode] = gapSince(at)

	// 3. The leader: refused as it leads; after a switchover it is a
	// replica like any other.
	out, err := tl.Run(time.Minute, "replace", leader)
	require.Error(t, err, "replacing the leader must be refused: %s", out)
	assert.Contains(t, out, "is the Patroni leader; switch over first")
	f = e.probe.Formation(ctx)
	require.True(t, f.OK(), f.Problem())
	cand, ok := f.Replica(true)
	require.True(t, ok)
	at = time.Now()
	ln, _ := e.stack.NodeByName(leader)
	_, err = e.slowPat.Switchover(ctx, ln.PrivateIP, leader, cand.Name)
	require.NoError(t, err)
	require.True(t, wait.Poll(ctx, time.Minute, time.Second, func() bool {
		f := e.probe.Formation(ctx)
		return f.OK() && f.Leader.Name == cand.Name
	}), "%s never led with 2 streaming replicas after the switchover", cand.Name)
	gaps["switchover "+leader+" → "+cand.Name] = gapSince(at)
	at, _ = replace(leader)
	gaps["former leader "+leader] = gapSince(at)

	time.Sleep(2 * time.Second)
	stopped = true
	require.NoError(t, sess.Stop())

	// The replaced etcd member has new host keys: look again with them.
	e = envNow()
	require.NoError(t, e.probe.Etcd(ctx).Err())
	f = e.probe.Formation(ctx)
	require.True(t, f.OK(), f.Problem())

	acked := history.Acked(w.Ops())
	survivors := map[string][]int64{}
	for _, n := range e.pgNodes() {
		var got []int64
		// A replica may trail the leader for a moment.
		require.True(t, wait.Poll(ctx, 30*time.Second, 500*time.Millisecond, func() bool {
			c, err := e.probe.Super(n.PrivateIP).Connect(ctx)
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
	var lines []string
	for what, g := range gaps {
		lines = append(lines, fmt.Sprintf("%s: longest write gap %.2f s", what, g.Seconds()))
	}
	sort.Strings(lines)
	t.Logf("%d writes acknowledged, %d lost:\n  %s", loss.Acked, len(loss.LostAnywhere), strings.Join(lines, "\n  "))
	require.Greater(t, loss.Acked, 100)
	require.True(t, loss.OK(), "acknowledged writes lost: %v", loss.LostAnywhere)
	// Generous bounds: correctness here, the figures go to the benchmarks.
	for what, g := range gaps {
		assert.Less(t, g, 30*time.Second, what)
	}
}
