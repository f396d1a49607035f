package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/patroni"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/proc"
)

// TestLoopbackLabLifecycle is TestLabLifecycle for --net loopback: every
// node on its own 127.0.x.y with the standard ports, no namespaces. It
// forms, takes a write through 5000 and reads it back through 5001 from
// both replicas, fails over when the leader is killed, refuses partition
// and a second loopback lab, and goes down leaving nothing (processes,
// listeners on its addresses, directories). Root, about a minute.
func TestLoopbackLabLifecycle(t *testing.T) {
	l := loopbackTestLab(t)
	ctx := context.Background()

	res, err := l.Up(ctx, UpOptions{Profile: "fast", Net: NetLoopback})
	require.NoError(t, err)
	require.True(t, l.Loopback())
	t.Logf("up in %s, leader %s", res.Total, res.Leader)

	t.Run("outputs: direct access to the loopback addresses", func(t *testing.T) {
		s, err := outputs.Load(l.OutputsFile())
		require.NoError(t, err)
		assert.Equal(t, outputs.AccessDirect, s.Access.Kind)
		assert.Equal(t, l.Dir, s.Access.LabDir)
		assert.Equal(t, "127.0.0.30:5000", s.WriteEndpoint.String())
		assert.Equal(t, "127.0.0.30:5001", s.ReadEndpoint.String())
		assert.Equal(t, LoopbackVPC, s.VPCCIDR)
		for _, n := range s.Nodes {
			assert.True(t, strings.HasPrefix(n.PrivateIP, "127.0."), "%s %s", n.Name, n.PrivateIP)
		}
		back, err := FromOutputs(s)
		require.NoError(t, err)
		assert.Equal(t, l.Dir, back.Dir)
		assert.True(t, back.Loopback())
		require.ErrorIs(t, back.PartitionUnavailable(), ErrNoPartition)
	})

	t.Run("every node listens on its own address and standard ports", func(t *testing.T) {
		listening := map[string]bool{}
		for _, a := range listeningTCP4Ports() {
			listening[a] = true
		}
		for _, n := range l.Plan.Nodes {
			for _, p := range n.Role.Ports() {
				a := net.JoinHostPort(n.IP.String(), strconv.Itoa(p))
				assert.True(t, listening[a], "%s: nothing listens on %s", n.Name, a)
			}
		}
	})

	t.Run("a second loopback lab is refused: the addresses are taken", func(t *testing.T) {
		other, err := New(l.Name + "b")
		require.NoError(t, err)
		_, err = other.Up(ctx, UpOptions{Profile: "fast", Net: NetLoopback})
		require.ErrorIs(t, err, ErrPrerequisites)
		assert.Contains(t, err.Error(), "already in use")
		assert.False(t, other.Exists(), "the refused lab made nothing")
		require.NoError(t, probeOf(t, l).Etcd(ctx).Err(), "the running lab is untouched")
	})

	t.Run("etcd: 3 healthy members, 1 leader", func(t *testing.T) {
		require.NoError(t, probeOf(t, l).Etcd(ctx).Err())
		// With the tools' client certificate: etcd admits no client without one.
		tlsDir := filepath.Join(l.Dir, "secrets", "tls")
		out, err := exec.Command("etcdctl", "--cacert="+filepath.Join(tlsDir, "ca.crt"), "--cert="+filepath.Join(tlsDir, "client.crt"),
			"--key="+filepath.Join(tlsDir, "client.key"), "--endpoints=https://127.0.4.10:2379", "--command-timeout=5s", "member", "list").CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, 3, strings.Count(string(out), ", started, "), "%s", out)
	})

	var leader patroni.Member
	t.Run("patroni: 1 leader, 2 replicas streaming", func(t *testing.T) {
		f := probeOf(t, l).Formation(ctx)
		require.NoError(t, f.Err())
		leader = f.Leader
	})
	require.NotEmpty(t, leader.Name)

	t.Run("write through 5000, read on both replicas through 5001", func(t *testing.T) {
		writeAndReadBack(t, l, leader, "loopback")
		// pg_hba admits the VPC; every loopback connection comes from
		// 127.0.0.1, which the loopback VPC contains.
		c, err := appConn(ctx, t, l, l.Plan.ByRole(topology.RoleHAProxy)[1].IP.String(), topology.PortWrite)
		require.NoError(t, err)
		defer c.Close(ctx)
		var client string
		require.NoError(t, c.QueryRow(ctx, "SELECT host(inet_client_addr())").Scan(&client))
		assert.Equal(t, "127.0.0.1", client)
	})

	t.Run("partition is refused with the reason", func(t *testing.T) {
		err := l.Partition(ctx, leader.Name)
		require.ErrorIs(t, err, ErrNoPartition)
		assert.Contains(t, err.Error(), "--net netns")
		require.NoError(t, l.Heal(ctx, leader.Name), "nothing to heal is not an error")
	})

	t.Run("killing the leader elects a new one", func(t *testing.T) {
		require.NoError(t, l.Kill(ctx, leader.Name))
		require.NoError(t, waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
			cl, err := probeOf(t, l).Cluster(ctx)
			if err != nil {
				return err
			}
			if m, ok := cl.Leader(); !ok || m.Name == leader.Name {
				return errors.New("no new leader yet")
			}
			return nil
		}))
		require.NoError(t, waitFor(ctx, 30*time.Second, probeOf(t, l).Checked))
		require.NoError(t, l.Start(ctx, leader.Name))
	})

	t.Run("down leaves nothing", func(t *testing.T) {
		rep, err := l.Down(ctx)
		require.NoError(t, err)
		assert.True(t, rep.Clean())
		assert.NotZero(t, rep.Stopped)
		names := map[string]bool{}
		for _, c := range rep.Checks {
			names[c.Name] = true
		}
		for _, want := range []string{"no lab process runs", "no listening port on a lab address", "state directory removed"} {
			assert.True(t, names[want], "down did not check %q", want)
		}
		assert.Empty(t, l.hostListeners())
		assert.Empty(t, l.stragglers(nil))
		assert.NoDirExists(t, l.Dir)
	})
}

// listeningTCP4Ports is listeningTCP4 with ports, for the test's own check.
func listeningTCP4Ports() []string {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		var a, port uint32
		if _, err := fmt.Sscanf(f[1], "%8X:%4X", &a, &port); err != nil {
			continue
		}
		out = append(out, fmt.Sprintf("%d.%d.%d.%d:%d", a&0xff, a>>8&0xff, a>>16&0xff, a>>24, port))
	}
	return out
}

// TestLoopbackLabWithoutRoot runs the built lab command as an unprivileged
// user (nobody, through setpriv) with its own HOME and XDG_STATE_HOME:
// up picks loopback by itself and says why, status shows the cluster, and
// down verifies nothing is left. This is what a user without sudo gets.
func TestLoopbackLabWithoutRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up a whole lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user for the test")
	}
	requireLabPackages(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	if _, err := user.LookupGroup("nogroup"); err != nil {
		t.Skip("no group nogroup")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	// Everything nobody needs lives in a directory it can reach: the
	// binary (0755) and a home it owns.
	top, err := os.MkdirTemp("", "pghanoroot")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(top) })
	require.NoError(t, os.Chmod(top, 0o755))
	home := filepath.Join(top, "home")
	require.NoError(t, os.Mkdir(home, 0o700))
	require.NoError(t, os.Chown(home, uid, gid))
	bin := filepath.Join(top, "lab")
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	build := exec.Command("go", "build", "-o", bin, "./lab")
	build.Dir = root
	b, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./lab: %s", b)

	name := fmt.Sprintf("pghanr%d", os.Getpid()%100000)
	state := filepath.Join(home, "state")
	labDir := filepath.Join(state, "pgha-lab", name)
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		argv := append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "XDG_STATE_HOME=" + state,
			bin}, append(args, "--name", name)...)
		cmd := exec.CommandContext(ctx, "setpriv", argv...)
		cmd.Dir = top
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	t.Cleanup(func() {
		if _, err := os.Stat(labDir); err == nil {
			if out, err := run(2*time.Minute, "down"); err != nil {
				t.Errorf("cleanup down: %v\n%s", err, out)
			}
		}
		assert.Empty(t, proc.CmdlineContains(labDir+"/"))
	})

	out, err := run(4*time.Minute, "up")
	t.Log(out)
	require.NoError(t, err)
	assert.Contains(t, out, "network mode loopback: not root")
	assert.Contains(t, out, "is up in")

	// The daemons run as nobody, none as root or as the daemons' users.
	var pids []int
	for _, pid := range proc.CmdlineContains(labDir + "/") {
		st, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		if err != nil {
			continue
		}
		pids = append(pids, pid)
		assert.Equal(t, uint32(uid), statUID(st), "pid %d does not run as nobody", pid)
	}
	assert.GreaterOrEqual(t, len(pids), 8, "etcd x3, patroni x3, haproxy x2 (and postmasters)")

	out, err = run(time.Minute, "status")
	t.Log(out)
	require.NoError(t, err)
	assert.Contains(t, out, "network loopback")
	leaders := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "pg-") && strings.Contains(line, " leader ") {
			leaders++
		}
	}
	assert.Equal(t, 1, leaders, "one Patroni leader in:\n%s", out)
	assert.Contains(t, out, labDir+"/nodes/pg-1/log/patroni.log", "status shows where the logs are")

	out, err = run(time.Minute, "partition", "pg-1")
	require.Error(t, err)
	assert.Contains(t, out, "cannot partition")

	out, err = run(2*time.Minute, "down")
	t.Log(out)
	require.NoError(t, err)
	assert.Contains(t, out, "teardown verified")
	assert.NoDirExists(t, labDir)
	for _, pid := range pids {
		assert.False(t, isLive(pid), "pid %d survived down", pid)
	}
	l, err := newIn(filepath.Join(state, "pgha-lab"), name)
	require.NoError(t, err)
	assert.Empty(t, l.hostListeners())
}

func statUID(st os.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}

func requireLabPackages(t *testing.T) {
	t.Helper()
	for _, b := range []string{"setpriv", "etcd", "etcdctl", "patroni", "haproxy", pgBinDir + "/postgres"} {
		if _, err := lookBin(b); err != nil {
			t.Skipf("%s is not installed: %s", b, aptFix)
		}
	}
}

// loopbackTestLab is testLab for a loopback lab (root, so its daemons run
// as postgres, etcd and haproxy as in netns mode).
func loopbackTestLab(t *testing.T) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("brings up a whole lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("this test runs the lab as root; TestLoopbackLabWithoutRoot covers an unprivileged user")
	}
	requireLabPackages(t)
	return newTestLab(t, "pghalb", NetLoopback)
}
