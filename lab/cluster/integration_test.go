package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/userdata"
)

// TestLabLifecycle is the lab's end-to-end proof with the real daemons: it
// brings a lab of its own up (a unique name, so a user's lab is never
// touched), checks etcd health and Patroni formation, writes through 5000
// and reads the row back through 5001 from both replicas, kills the leader
// and sees a new one elected and routed to, restarts the killed node and
// sees it stream again, then takes the lab down and checks nothing is left.
//
// It needs root and the Debian packages (etcd-server, etcd-client, patroni,
// postgresql-15, haproxy) and takes about 40-60 s on a 2-core machine; run
// it with go test -timeout 10m ./lab/...
func TestLabLifecycle(t *testing.T) {
	l := testLab(t)
	ctx := context.Background()

	res, err := l.Up(ctx, UpOptions{Profile: "fast"})
	require.NoError(t, err)
	t.Logf("up in %s, leader %s", res.Total, res.Leader)

	t.Run("a second up is refused and leaves the first alone", func(t *testing.T) {
		before, err := l.records()
		require.NoError(t, err)
		_, err = l.Up(ctx, UpOptions{Profile: "fast"})
		require.ErrorIs(t, err, ErrPrerequisites)
		assert.Contains(t, err.Error(), "already up")
		after, err := l.records()
		require.NoError(t, err)
		assert.Equal(t, before, after)
		for name, r := range after {
			assert.True(t, r.Alive(), "%s stopped after the refused up", name)
		}
	})

	t.Run("outputs", func(t *testing.T) {
		s, err := outputs.Load(l.OutputsFile())
		require.NoError(t, err)
		assert.Equal(t, outputs.TargetLab, s.Target)
		assert.Equal(t, outputs.AccessNetns, s.Access.Kind)
		assert.Equal(t, l.ClientNamespace(), s.Access.Namespace)
		assert.Equal(t, "10.42.0.30:5000", s.WriteEndpoint.String())
		st, err := os.Stat(l.OutputsFile())
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the outputs hold passwords")
		back, err := FromOutputs(s)
		require.NoError(t, err)
		assert.Equal(t, l.Dir, back.Dir)
	})

	t.Run("the daemons run the rendered files", func(t *testing.T) {
		recs, err := l.records()
		require.NoError(t, err)
		for _, n := range l.Plan.Nodes {
			files, err := userdata.NodeFiles(l.Spec(), n.Name, l.Paths(n.Name))
			require.NoError(t, err)
			installed := 0
			for _, f := range files {
				if !strings.HasPrefix(f.Path, l.NodeDir(n.Name)+"/") {
					continue // systemd-only files
				}
				b, err := os.ReadFile(f.Path)
				require.NoError(t, err)
				assert.Equal(t, string(f.Content), string(b), f.Path)
				installed++
			}
			assert.NotZero(t, installed, n.Name)
			// The daemon's command line names its config file.
			cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", recs[n.Name].PID))
			require.NoError(t, err)
			assert.Contains(t, string(cmd), recs[n.Name].Marker, n.Name)
		}
	})

	t.Run("etcd: 3 healthy members, 1 leader", func(t *testing.T) {
		require.NoError(t, probeOf(t, l).Etcd(ctx).Err())
		// etcd's own client agrees, from the client namespace, with the
		// tools' client certificate (etcd admits no client without one).
		tlsDir := filepath.Join(l.Dir, "secrets", "tls")
		out, err := exec.Command("ip", "netns", "exec", l.ClientNamespace(), "etcdctl",
			"--cacert="+filepath.Join(tlsDir, "ca.crt"), "--cert="+filepath.Join(tlsDir, "client.crt"), "--key="+filepath.Join(tlsDir, "client.key"),
			"--endpoints=https://10.42.4.10:2379", "--command-timeout=5s", "member", "list").CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, 3, strings.Count(string(out), ", started, "), "%s", out)
	})

	var leader patroni.Member
	t.Run("patroni: 1 leader, 2 replicas streaming", func(t *testing.T) {
		f := probeOf(t, l).Formation(ctx)
		require.NoError(t, f.Err())
		leader = f.Leader
		roles := map[string]int{}
		for _, m := range f.Cluster.Members {
			roles[m.Role]++
		}
		assert.Equal(t, map[string]int{"leader": 1, "replica": 2}, roles)
	})
	require.NotEmpty(t, leader.Name)

	t.Run("write through 5000, read on both replicas through 5001", func(t *testing.T) {
		writeAndReadBack(t, l, leader, "before failover")
	})

	t.Run("Prometheus scrapes every exporter over TLS, and nothing fires", func(t *testing.T) {
		down, err := l.TargetsDown(ctx)
		require.NoError(t, err)
		require.Empty(t, down)
		up, err := l.Query(ctx, "up")
		require.NoError(t, err)
		assert.Len(t, up, 9+3+3+3+2+1+1, "node_exporter on 9 nodes, postgres_exporter, Patroni, etcd on 3, HAProxy on 2, Prometheus, Alertmanager")
		pgUp, err := l.Query(ctx, "pg_up == 1")
		require.NoError(t, err)
		assert.Len(t, pgUp, 3, "postgres_exporter logs in on every node's socket (peer, pg_ident)")
		firing, err := l.Query(ctx, `ALERTS{alertstate="firing"}`)
		require.NoError(t, err)
		assert.Empty(t, firing, "a healthy cluster raises no alert")
		held, err := l.HeldAlerts(ctx)
		require.NoError(t, err, "Alertmanager answers over TLS")
		assert.Empty(t, held)
		// Prometheus admits no client without a certificate of the CA.
		hc, err := l.PrometheusClient()
		require.NoError(t, err)
		hc.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
		_, err = hc.Get(l.PrometheusURL() + "/api/v1/targets")
		require.Error(t, err)
	})

	t.Run("an etcd member lost raises EtcdMemberDown, keeps quorum, and clears", func(t *testing.T) {
		// A follower, so the alert is the only thing the loss changes.
		var member string
		for _, n := range l.Plan.ByRole(topology.RoleEtcd) {
			if st := probeOf(t, l).Etcd(ctx); st.Err() == nil && st.Leader != n.Name {
				member = n.Name
				break
			}
		}
		require.NotEmpty(t, member)
		// Eventually polls from another goroutine: no require in there.
		alert := func(name string) bool {
			s, err := l.Query(ctx, `ALERTS{alertstate="firing",alertname="`+name+`"}`)
			if err != nil {
				t.Logf("asking Prometheus: %v", err)
			}
			return len(s) > 0
		}
		var quorumLost atomic.Bool
		lost := time.Now()
		require.NoError(t, l.Stop(ctx, member))
		restarted := false
		defer func() {
			if !restarted {
				_ = l.Start(ctx, member)
			}
		}()
		require.Eventually(t, func() bool {
			if alert("EtcdQuorumLost") {
				quorumLost.Store(true)
			}
			return alert("EtcdMemberDown")
		}, 5*time.Minute, time.Second, "EtcdMemberDown did not fire")
		assert.False(t, quorumLost.Load(), "two of three members keep quorum: EtcdQuorumLost fired")
		t.Logf("EtcdMemberDown fired %.0f s after %s stopped (for: 1m over a 1m rate)", time.Since(lost).Seconds(), member)
		// Prometheus hands it to Alertmanager, which would page with it.
		held := func(name string) (HeldAlert, bool) {
			as, err := l.HeldAlerts(ctx)
			if err != nil {
				t.Logf("asking Alertmanager: %v", err)
			}
			for _, a := range as {
				if a.Name == name {
					return a, true
				}
			}
			return HeldAlert{}, false
		}
		require.Eventually(t, func() bool { a, ok := held("EtcdMemberDown"); return ok && a.State == "active" },
			30*time.Second, time.Second, "Alertmanager does not hold EtcdMemberDown as active")
		back := time.Now()
		require.NoError(t, l.Start(ctx, member))
		restarted = true
		require.Eventually(t, func() bool { return !alert("EtcdMemberDown") }, 5*time.Minute, time.Second, "EtcdMemberDown did not clear")
		t.Logf("EtcdMemberDown cleared %.0f s after %s started again", time.Since(back).Seconds(), member)
		require.Eventually(t, func() bool { _, ok := held("EtcdMemberDown"); return !ok },
			30*time.Second, time.Second, "Alertmanager still holds EtcdMemberDown after it resolved")
	})

	var newLeader patroni.Member
	t.Run("killing the leader elects a new one", func(t *testing.T) {
		killed := time.Now()
		require.NoError(t, l.Kill(ctx, leader.Name))
		assert.False(t, l.Running(leader.Name))
		_, pmAlive := l.postmaster(leader.Name)
		assert.False(t, pmAlive, "the postmaster must die with Patroni")
		require.NoError(t, waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
			cl, err := probeOf(t, l).Cluster(ctx)
			if err != nil {
				return err
			}
			m, ok := cl.Leader()
			if !ok || m.Name == leader.Name {
				return errors.New("no new leader yet")
			}
			if m.Timeline <= leader.Timeline {
				return fmt.Errorf("new leader %s still on timeline %d", m.Name, m.Timeline)
			}
			newLeader = m
			return nil
		}))
		require.NoError(t, waitFor(ctx, 30*time.Second, probeOf(t, l).Checked))
		t.Logf("new leader %s on timeline %d, routed %s after the kill", newLeader.Name, newLeader.Timeline, time.Since(killed).Round(100*time.Millisecond))
	})
	require.NotEmpty(t, newLeader.Name)

	t.Run("the killed node rejoins as a streaming replica", func(t *testing.T) {
		require.NoError(t, l.Start(ctx, leader.Name))
		require.ErrorIs(t, l.Start(ctx, leader.Name), ErrRunning, "a running node must not be started twice")
		require.NoError(t, waitFor(ctx, 90*time.Second, func(ctx context.Context) error {
			f := probeOf(t, l).Formation(ctx)
			if err := f.Err(); err != nil {
				return err
			}
			if m := f.Leader; m.Name != newLeader.Name {
				return fmt.Errorf("leader is %s, want %s", m.Name, newLeader.Name)
			}
			return nil
		}))
		writeAndReadBack(t, l, newLeader, "after rejoin")
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		var pids []int
		for _, n := range l.Plan.Nodes {
			for _, r := range l.nodeRecords(n.Name) {
				pids = append(pids, r.PID)
			}
		}
		require.NotEmpty(t, pids)
		rep, err := l.Down(ctx)
		require.NoError(t, err)
		assert.True(t, rep.Clean())
		assert.Empty(t, netlab.Existing(l.Name))
		assert.NoDirExists(t, l.Dir)
		for _, pid := range pids {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
			assert.True(t, os.IsNotExist(err) || !isLive(pid), "pid %d survived down", pid)
		}
		// Idempotent.
		rep, err = l.Down(ctx)
		require.NoError(t, err)
		assert.True(t, rep.Clean())
	})
}

// A start-up that fails half-way (here: cut short while etcd is still
// electing) removes everything it made. A few seconds, as root.
func TestFailedUpCleansUp(t *testing.T) {
	l := testLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := l.Up(ctx, UpOptions{Profile: "fast"})
	require.Error(t, err)
	assert.False(t, l.Exists(), "a failed up must remove its namespaces and state")
	assert.Empty(t, proc.CmdlineContains(l.Dir+"/"), "a failed up must stop what it started")

	// Bad input is refused before anything is made.
	_, err = l.Up(context.Background(), UpOptions{Profile: "reckless"})
	require.ErrorContains(t, err, "unknown profile")
	assert.False(t, l.Exists())
}

func isLive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(string(b)[i+2:], "Z")
}

// writeAndReadBack inserts a row through haproxy-1:5000 (which must be the
// leader) and reads it through haproxy-1:5001 until both replicas have
// served it; 5001 must never hand out the leader while replicas are up.
func writeAndReadBack(t *testing.T, l *Lab, leader patroni.Member, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := l.Plan.ByRole(topology.RoleHAProxy)[0].IP.String()
	value := fmt.Sprintf("%s %d", tag, time.Now().UnixNano())

	w, err := appConn(ctx, t, l, h, topology.PortWrite)
	require.NoError(t, err)
	var addr string
	require.NoError(t, w.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr))
	assert.Equal(t, leader.Host, addr, "5000 must reach the leader")
	_, err = w.Exec(ctx, "CREATE TABLE IF NOT EXISTS lab_probe (id bigserial PRIMARY KEY, v text NOT NULL)")
	require.NoError(t, err)
	var id int64
	require.NoError(t, w.QueryRow(ctx, "INSERT INTO lab_probe (v) VALUES ($1) RETURNING id", value).Scan(&id))
	_ = w.Close(ctx)

	replicas := map[string]bool{}
	for _, n := range l.Plan.ByRole(topology.RolePatroni) {
		if n.IP.String() != leader.Host {
			replicas[n.IP.String()] = false
		}
	}
	require.Len(t, replicas, 2)
	for attempt := 0; ; attempt++ {
		done := true
		for _, seen := range replicas {
			done = done && seen
		}
		if done {
			break
		}
		require.NoError(t, ctx.Err(), "row %d not read back from every replica; seen: %v", id, replicas)
		r, err := appConn(ctx, t, l, h, topology.PortRead)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		var got string
		var inRecovery bool
		err = r.QueryRow(ctx, "SELECT host(inet_server_addr()), pg_is_in_recovery()").Scan(&addr, &inRecovery)
		require.NoError(t, err)
		assert.True(t, inRecovery, "5001 reached %s, which is not a replica", addr)
		_, isReplica := replicas[addr]
		assert.True(t, isReplica, "5001 reached %s, which is not one of the replicas", addr)
		if err := r.QueryRow(ctx, "SELECT v FROM lab_probe WHERE id = $1", id).Scan(&got); err == nil {
			assert.Equal(t, value, got)
			replicas[addr] = true
		}
		_ = r.Close(ctx)
	}
}

// testLab names a lab after the test process, so parallel packages and a
// user's own lab never clash, and removes it whatever happens.
func testLab(t *testing.T) *Lab { return namespaceTestLab(t, "pghatest") }

// namespaceTestLab is newTestLab in the default network mode, skipped
// where a lab cannot run: not root, or a daemon (the cluster's, and extra)
// missing.
func namespaceTestLab(t *testing.T, prefix string, extra ...string) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces, daemons as postgres)")
	}
	for _, b := range append([]string{"ip", "setpriv", "etcd", "etcdctl", "patroni", "haproxy", pgBinDir + "/postgres"}, extra...) {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed: %s", b, aptFix)
		}
	}
	return newTestLab(t, prefix, "")
}

// newTestLab sweeps orphans of prefix, makes the lab prefix+pid (in net
// mode, when given) and takes it down when the test ends, checking that
// nothing of it survives: namespaces, processes, machines or mounts.
func newTestLab(t *testing.T, prefix, net string) *Lab {
	t.Helper()
	sweepOrphanLabs(t, prefix)
	l, err := New(fmt.Sprintf("%s%d", prefix, os.Getpid()))
	require.NoError(t, err)
	if net != "" {
		require.NoError(t, l.SetNet(net))
	}
	require.False(t, l.Exists(), "lab %s left over from an earlier run", l.Name)
	l.Log = testWriter{t}
	t.Cleanup(func() {
		if _, err := l.Down(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Nothing may survive, even when the test failed half-way.
		assert.Empty(t, netlab.Existing(l.Name))
		assert.Empty(t, proc.CmdlineContains(l.Dir+"/"))
		assert.Empty(t, l.bootLeftovers())
	})
	return l
}

// sweepOrphanLabs removes labs these tests left behind when their process
// was killed before its cleanup ran (a CI timeout, say): a lab named
// <prefix><pid> whose pid is gone belongs to nobody any more.
func sweepOrphanLabs(t *testing.T, prefix string) {
	ents, _ := os.ReadDir(StateRoot)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its test still runs
		}
		l, err := New(e.Name())
		if err != nil {
			continue
		}
		t.Logf("removing lab %s left by an interrupted test run", l.Name)
		if _, err := l.Down(context.Background()); err != nil {
			t.Logf("removing %s: %v", l.Name, err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
