package fault

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/sshdtest"
	"github.com/pgha/pgha/userdata"
)

func jumpTo(t *testing.T, srv *sshdtest.Server, dial access.DialFunc) *access.Jump {
	t.Helper()
	j, err := access.NewJump(access.SSHConfig{Addr: srv.Addr, User: srv.User, PrivateKey: srv.ClientKeyPEM,
		HostKeys: []string{srv.HostKey}, Dial: dial})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	return j
}

// TestAWSKillOverSSH kills a stand-in Patroni (matched by its command line,
// as on EC2 without systemd's help) and the postmaster named in
// postmaster.pid, through a real sshd.
func TestAWSKillOverSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fault runs its script as root")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	jump := jumpTo(t, srv, nil)
	dir := t.TempDir()
	paths := userdata.Paths{PatroniConfigFile: filepath.Join(dir, "config.yml"), PGDataDir: filepath.Join(dir, "data")}
	require.NoError(t, os.MkdirAll(paths.PGDataDir, 0o700))

	patroni := exec.Command("bash", "-c", `exec -a "/usr/bin/python3 /usr/bin/patroni `+paths.PatroniConfigFile+`" sleep 300`)
	postmaster := exec.Command("sleep", "301")
	for _, c := range []*exec.Cmd{patroni, postmaster} {
		require.NoError(t, c.Start())
		c := c
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	require.NoError(t, os.WriteFile(filepath.Join(paths.PGDataDir, "postmaster.pid"),
		[]byte(fmt.Sprintf("%d\n%s\n1700000000\n5432\n", postmaster.Process.Pid, paths.PGDataDir)), 0o600))
	// Let bash exec so the command line carries the patroni name.
	time.Sleep(200 * time.Millisecond)

	f := &awsKill{remote: jump, host: func(outputs.Node) access.Host { return access.Host{} }, paths: paths}
	node := outputs.Node{Name: "pg-1", Role: "patroni", PrivateIP: "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, f.Inject(ctx, node))
	for name, c := range map[string]*exec.Cmd{"patroni": patroni, "postmaster": postmaster} {
		err := c.Wait()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "%s: %v", name, err)
		ws := ee.Sys().(syscall.WaitStatus)
		require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "%s ended by %v, want SIGKILL", name, ws)
	}
	// Nothing left to kill is an error that says so, not a silent pass.
	err := f.Inject(ctx, node)
	require.ErrorContains(t, err, "nothing to kill")
	// Without systemd there is nothing that could restart Patroni.
	err = f.Restore(ctx, node)
	require.ErrorContains(t, err, "does not run systemd")

	_, err = nodefault.SpecFor("bastion", paths)
	require.ErrorContains(t, err, "bastion")
}

// netnsPair makes two network namespaces joined by a veth pair, both ends
// inside them, so nothing on the host changes: C (10.213.0.1, where
// validate dials from) and N (10.213.0.2, the node).
func netnsPair(t *testing.T) (client, node string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not found: apt-get install -y nftables")
	}
	client = fmt.Sprintf("pghaf-c-%d", os.Getpid())
	node = fmt.Sprintf("pghaf-n-%d", os.Getpid())
	nstest.New(t, client)
	nstest.New(t, node)
	run := func(args ...string) { t.Helper(); nstest.IP(t, args...) }
	run("-n", client, "link", "add", "veth-c", "type", "veth", "peer", "name", "veth-n", "netns", node)
	run("-n", client, "addr", "add", "10.213.0.1/24", "dev", "veth-c")
	run("-n", node, "addr", "add", "10.213.0.2/24", "dev", "veth-n")
	run("-n", client, "link", "set", "veth-c", "up")
	run("-n", node, "link", "set", "veth-n", "up")
	return client, node
}

func reachable(dial access.DialFunc, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// outbound reports how a connection from the node to the client namespace
// ends: "refused" (nothing listens: the network works) or "timeout" (the
// SYN was dropped: partitioned).
func outbound(t *testing.T, ctx context.Context, j *access.Jump) string {
	t.Helper()
	out, _ := j.Run(ctx, access.Host{}, `timeout 3 bash -c 'echo > /dev/tcp/10.213.0.1/9' 2>/dev/null; echo "rc=$?"`, nil)
	switch strings.TrimSpace(out) {
	case "rc=124":
		return "timeout"
	case "rc=1":
		return "refused"
	}
	return "unexpected: " + out
}

// TestAWSPartitionHealsItself cuts a real node (an sshd in a namespace of
// its own, reached over a veth from another namespace) with the nftables
// script, checks that only SSH from the jump passes, and then, without any
// further action from the test, sees the node heal itself after the bound.
//
// The two halves use different bounds on purpose. What must hold while the
// node is cut off is checked under a bound far longer than the checks take
// on any machine; the self-heal is then timed on its own, with a short
// bound, by polling. (One bound for both made the test race its own timer
// on a busy machine: the checks outlived the bound and the node healed
// under them.)
func TestAWSPartitionHealsItself(t *testing.T) {
	clientNS, nodeNS := netnsPair(t)
	dial, err := access.Netns(clientNS)
	require.NoError(t, err)
	srv := sshdtest.Start(t, sshdtest.Options{Netns: nodeNS, Listen: []string{"10.213.0.2:22", "10.213.0.2:2222"}, Dial: dial})
	jump := jumpTo(t, srv, dial)
	stack := outputs.Stack{Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: "10.213.0.2:22"}}
	stateDir := t.TempDir()
	pidFile := filepath.Join(stateDir, "pgha_partition-heal.pid")
	partition := func(bound time.Duration) *awsPartition {
		return &awsPartition{remote: jump, host: stackHosts(stack),
			spec: PartitionSpec{Table: "pgha_partition", Bound: bound, StateDir: stateDir}}
	}
	node := outputs.Node{Name: "pg-1", Role: "patroni", PrivateIP: "10.213.0.2"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const service = "10.213.0.2:2222" // any port but SSH
	require.True(t, reachable(dial, service), "reachable before the partition")
	require.Equal(t, "refused", outbound(t, ctx, jump))

	// 1. While cut off: only SSH with the jump host passes, and the
	// self-heal is armed. Restore heals at once and disarms it.
	long := partition(10 * time.Minute)
	require.NoError(t, long.Inject(ctx, node))
	pid, err := os.ReadFile(pidFile)
	require.NoError(t, err, "the self-heal timer recorded its PID")
	require.False(t, reachable(dial, service), "inbound traffic other than SSH is cut")
	require.Equal(t, "timeout", outbound(t, ctx, jump), "outbound traffic is cut")
	out, err := jump.Run(ctx, access.Host{}, "nft list table inet pgha_partition", nil)
	require.NoError(t, err, "SSH from the jump host still works")
	require.Contains(t, out, "policy drop")
	// A fresh SSH connection from the jump host is admitted too.
	fresh := jumpTo(t, srv, dial)
	_, err = fresh.Run(ctx, access.Host{}, "true", nil)
	require.NoError(t, err)
	require.NoError(t, long.Restore(ctx, node))
	require.True(t, reachable(dial, service), "healed by Restore")
	require.Equal(t, "refused", outbound(t, ctx, jump))
	_, err = os.Stat(pidFile)
	require.True(t, os.IsNotExist(err), "Restore removed the timer's PID file")
	timer, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return gone(timer) }, 10*time.Second, 100*time.Millisecond,
		"Restore ended the timer (pid %d)", timer)
	// Restore on a healthy node is harmless.
	require.NoError(t, long.Restore(ctx, node))

	// 2. Left alone, the node heals itself once the bound has passed, not
	// before, and the timer cleans up after itself.
	const bound = 5 * time.Second
	short := partition(bound)
	start := time.Now()
	require.NoError(t, short.Inject(ctx, node))
	var healed time.Time
	for healed.IsZero() && time.Since(start) < bound+time.Minute {
		if reachable(dial, service) {
			healed = time.Now()
		} else {
			time.Sleep(200 * time.Millisecond)
		}
	}
	require.False(t, healed.IsZero(), "the node did not heal itself within a minute past the bound")
	require.GreaterOrEqual(t, healed.Sub(start), bound, "healed before the bound")
	t.Logf("healed by itself %.1fs after the partition (bound %s)", healed.Sub(start).Seconds(), bound)
	require.Equal(t, "refused", outbound(t, ctx, jump))
	_, err = jump.Run(ctx, access.Host{}, "nft list table inet pgha_partition", nil)
	require.Error(t, err, "the table is gone")
	require.Eventually(t, func() bool {
		_, err := os.Stat(pidFile)
		return os.IsNotExist(err)
	}, 10*time.Second, 100*time.Millisecond, "the timer removed its PID file")
}

// gone reports whether pid has exited (a zombie nobody reaped yet counts:
// it runs nothing).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestPartitionScriptShape(t *testing.T) {
	s := PartitionScript(DefaultPartitionSpec(), netipMust("10.0.1.10"))
	// The self-heal is armed before any rule is installed.
	require.Less(t, strings.Index(s, "systemd-run"), strings.Index(s, `"$nft" -f -`))
	require.Less(t, strings.Index(s, "setsid"), strings.Index(s, `"$nft" -f -`))
	require.Contains(t, s, "--on-active=\"${bound}s\"")
	require.Contains(t, s, "bound=300")
	require.Contains(t, s, "ip saddr 10.0.1.10 tcp dport 22 accept")
	s6 := PartitionScript(DefaultPartitionSpec(), netipMust("fd00::5"))
	require.Contains(t, s6, "ip6 saddr fd00::5")
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAWSProviderOffersEveryFault(t *testing.T) {
	// Only the stack's key, not whatever this shell offers.
	t.Setenv(access.EnvSSHKey, "")
	t.Setenv(access.EnvSSHAgent, "")
	s := outputs.Stack{
		Target: outputs.TargetAWS, Region: "eu-west-1",
		Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: "203.0.113.7:22", JumpUser: "admin",
			JumpHostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}},
		SSHPrivateKey: string(sshdtest.NewPrivateKeyPEM(t)),
	}
	set, err := ForTarget(s)
	require.NoError(t, err)
	require.Equal(t, []string{Kill, KillPostgres, Partition, Stop}, set.Names())

	hosts := stackHosts(s)
	require.Equal(t, access.Host{Addr: "10.0.1.5:22", JumpAddr: "203.0.113.7:22"}, hosts(outputs.Node{PublicIP: "203.0.113.7", PrivateIP: "10.0.1.5"}), "the jump host itself")
	require.Equal(t, access.Host{Addr: "10.0.2.30:22", HostKeys: []string{"k2"}, JumpAddr: "198.51.100.9:22"},
		hosts(outputs.Node{PublicIP: "198.51.100.9", PrivateIP: "10.0.2.30", HostKeys: []string{"k2"}}), "the other jump host")
	require.Equal(t, access.Host{Addr: "10.0.2.5:22", HostKeys: []string{"k"}}, hosts(outputs.Node{PrivateIP: "10.0.2.5", HostKeys: []string{"k"}}))

	// A stack built with the operator's own public key has no private key
	// output: the faults then need the key from a file or an agent.
	s.SSHPrivateKey = ""
	_, err = ForTarget(s)
	require.ErrorIs(t, err, access.ErrNoSSHKey)
	require.ErrorContains(t, err, access.EnvSSHKey)

	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	require.NoError(t, os.WriteFile(keyFile, sshdtest.NewPrivateKeyPEM(t), 0o600))
	t.Setenv(access.EnvSSHKey, keyFile)
	set, err = ForTarget(s)
	require.NoError(t, err)
	require.Equal(t, []string{Kill, KillPostgres, Partition, Stop}, set.Names())
}
