package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/sshdtest"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/cluster"
	"github.com/pgha/pgha/lab/labtest"
	"github.com/pgha/pgha/validate/internal/fault"
)

// TestValidateOverSSHMatchesDirect brings up a real lab, runs a real sshd
// as the jump host on an HAProxy node (inside its namespace, as on AWS
// where the jump host is a public HAProxy node), and runs the full validate
// twice: once the lab's way (dialing from the client namespace) and once
// with every connection tunnelled through the jump host. The verdicts must
// be the same, and the checks must really have run. A wrong host key must stop validate before it connects.
func TestValidateOverSSHMatchesDirect(t *testing.T) {
	tl := labtest.Start(t, "pghajt", sshdtest.SSHDBin)
	root, validateBin, l := tl.Root, tl.ValidateBin, tl.Cluster
	direct, err := outputs.Load(l.OutputsFile())
	require.NoError(t, err)

	// The jump host: sshd on haproxy-1's address, in haproxy-1's namespace.
	jumpNode := l.Plan.ByRole(topology.RoleHAProxy)[0]
	clientDial, err := access.Netns(direct.Access.Namespace)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := sshdtest.StartSSHD(ctx, sshdtest.SSHDOptions{
		Dir:    t.TempDir(),
		Listen: []string{net.JoinHostPort(jumpNode.IP.String(), "22")},
		Netns:  l.Namespace(jumpNode.Name),
		Dial:   clientDial,
	})
	require.NoError(t, err)
	// Stopped before the lab goes down (cleanups run last-in first-out),
	// so the lab's own check finds nothing of ours in its namespaces.
	t.Cleanup(srv.Stop)

	// Every etcd member runs an sshd too, trusting the stack's key, as every
	// EC2 node does; and its client port is closed to the HAProxy nodes, as
	// the security groups close it on AWS. Over SSH, validate can then only
	// check etcd through a second hop, on each member itself.
	etcdSSHD := map[string]*sshdtest.SSHD{}
	for _, n := range l.Plan.ByRole(topology.RoleEtcd) {
		s, err := sshdtest.StartSSHD(ctx, sshdtest.SSHDOptions{
			Dir:    t.TempDir(),
			Listen: []string{net.JoinHostPort(n.IP.String(), "22")},
			Netns:  l.Namespace(n.Name),
			Dial:   clientDial,
		})
		require.NoError(t, err)
		t.Cleanup(s.Stop)
		require.NoError(t, os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), []byte(authorizedFromPEM(t, srv.ClientKeyPEM)), 0o600))
		etcdSSHD[n.Name] = s
	}
	if closeEtcdToHAProxy(t, l) {
		j, err := access.NewJump(access.SSHConfig{Addr: srv.Addr, User: srv.User, PrivateKey: srv.ClientKeyPEM,
			HostKeys: []string{srv.HostKey}, Dial: clientDial})
		require.NoError(t, err)
		dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
		_, err = j.DialContext(dctx, "tcp", net.JoinHostPort(l.Plan.ByRole(topology.RoleEtcd)[0].IP.String(), "2379"))
		dcancel()
		j.Close()
		require.Error(t, err, "etcd's client port is closed to the jump host, as on AWS")
	}

	viaSSH := direct
	viaSSH.Access = outputs.Access{
		Kind: outputs.AccessSSH, JumpHost: srv.Addr, JumpUser: srv.User,
		JumpHostKeys: []string{srv.HostKey},
		Namespace:    direct.Access.Namespace, // where the jump host is reached from
		LabDir:       direct.Access.LabDir,
	}
	viaSSH.SSHPrivateKey = string(srv.ClientKeyPEM)
	// The members' host keys, as the stack records them at readiness.
	viaSSH.Nodes = append([]outputs.Node(nil), direct.Nodes...)
	for i, n := range viaSSH.Nodes {
		if s, ok := etcdSSHD[n.Name]; ok {
			viaSSH.Nodes[i].HostKeys = []string{s.HostKey}
		}
	}
	sshFile := filepath.Join(t.TempDir(), "outputs-ssh.json")
	require.NoError(t, viaSSH.Write(sshFile))

	validate := func(outputsFile, reportDir string, args ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, validateBin, append([]string{"--outputs", outputsFile, "--report-dir", reportDir, "--yes"}, args...)...)
		cmd.Dir = root
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return buf.String(), ee.ExitCode()
		}
		require.NoError(t, err)
		return buf.String(), 0
	}
	verdicts := func(dir string) map[string]string {
		m := map[string]string{}
		for _, c := range readReport(t, dir).Checks {
			m[c.Name] = c.Verdict
		}
		return m
	}

	// The failover check injects its fault through the lab's own controls
	// (cluster.FromOutputs finds the lab by access.labDir whatever the
	// access path), so both runs include it.
	directDir, sshDir := t.TempDir(), t.TempDir()
	outDirect, codeDirect := validate(l.OutputsFile(), directDir)
	t.Log("direct:\n" + outDirect)
	outSSH, codeSSH := validate(sshFile, sshDir)
	t.Log("over ssh:\n" + outSSH)
	require.Equal(t, 0, codeDirect, "validate fails on a healthy lab the direct way")
	require.Equal(t, codeDirect, codeSSH)
	vd, vs := verdicts(directDir), verdicts(sshDir)
	for _, c := range []string{"etcd", "formation", "routing", "replication", "switchover", "failover"} {
		require.Equal(t, "PASS", vd[c], "direct: %s", c)
	}
	require.Equal(t, vd, vs, "the same verdicts over SSH as direct")
	require.Contains(t, srv.Log(), "Accepted publickey for "+srv.User, "validate really logged in to the jump host")
	for name, s := range etcdSSHD {
		require.Contains(t, s.Log(), "Accepted publickey for "+s.User+" from "+jumpNode.IP.String(),
			"validate checked %s through an SSH hop on it, from the jump host", name)
	}

	// An etcd member that presents another key than the recorded one is
	// refused, and the etcd check says which member and why.
	etcd1 := l.Plan.ByRole(topology.RoleEtcd)[0].Name
	wrongMember := viaSSH
	wrongMember.Nodes = append([]outputs.Node(nil), viaSSH.Nodes...)
	for i, n := range wrongMember.Nodes {
		if n.Name == etcd1 {
			k, _, err := sshdtest.NewKey()
			require.NoError(t, err)
			wrongMember.Nodes[i].HostKeys = []string{k}
		}
	}
	hopLogins := func() int {
		return strings.Count(etcdSSHD[etcd1].Log(), "Accepted publickey for "+srv.User+" from "+jumpNode.IP.String())
	}
	loginsBefore := hopLogins()
	wrongFile := filepath.Join(t.TempDir(), "outputs-wrong-etcd-key.json")
	require.NoError(t, wrongMember.Write(wrongFile))
	wrongDir := t.TempDir()
	out, code := validate(wrongFile, wrongDir, "--only", "etcd")
	t.Log(out)
	require.NotEqual(t, 0, code)
	require.Equal(t, "FAIL", verdicts(wrongDir)["etcd"])
	require.Contains(t, out, "host key mismatch")
	require.Contains(t, out, etcd1)
	require.Equal(t, loginsBefore, hopLogins(), "no login after the refused key")

	// The partition test below runs its own sshd on an etcd node.
	for _, s := range etcdSSHD {
		s.Stop()
	}

	t.Run("the AWS partition fault heals a lab node by itself", func(t *testing.T) {
		partitionHealsItself(t, l, srv, clientDial)
	})

	// A jump host that presents another key is refused, before anything runs.
	other, _, err := sshdtest.NewKey()
	require.NoError(t, err)
	viaSSH.Access.JumpHostKeys = []string{other}
	badFile := filepath.Join(t.TempDir(), "outputs-badkey.json")
	require.NoError(t, viaSSH.Write(badFile))
	out, code = validate(badFile, t.TempDir(), "--only", "etcd")
	t.Log(out)
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "host key mismatch")
}

// partitionHealsItself runs the AWS partition fault on a private lab node
// (etcd-3, whose loss leaves quorum intact) the way it runs on EC2: an sshd
// on the node, reached through the jump host with the node's own host key
// checked. The node is cut, and heals after the bound with nothing done.
func partitionHealsItself(t *testing.T, l *cluster.Lab, jump *sshdtest.SSHD, clientDial access.DialFunc) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not found: apt-get install -y nftables")
	}
	target := l.Plan.ByRole(topology.RoleEtcd)[2]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodeSSHD, err := sshdtest.StartSSHD(ctx, sshdtest.SSHDOptions{
		Dir:    t.TempDir(),
		Listen: []string{net.JoinHostPort(target.IP.String(), "22")},
		Netns:  l.Namespace(target.Name),
		Dial:   clientDial,
	})
	require.NoError(t, err)
	defer nodeSSHD.Stop()
	// The node trusts the jump host's client key, as every EC2 node trusts
	// the stack's key pair.
	require.NoError(t, os.WriteFile(filepath.Join(nodeSSHD.Dir, "authorized_keys"), []byte(authorizedFromPEM(t, jump.ClientKeyPEM)), 0o600))

	j, err := access.NewJump(access.SSHConfig{Addr: jump.Addr, User: jump.User, PrivateKey: jump.ClientKeyPEM,
		HostKeys: []string{jump.HostKey}, Dial: clientDial})
	require.NoError(t, err)
	defer j.Close()
	host := access.Host{Addr: nodeSSHD.Addr, HostKeys: []string{nodeSSHD.HostKey}}
	spec := fault.PartitionSpec{Table: "pgha_partition", Bound: 8 * time.Second, StateDir: t.TempDir()}
	f := fault.NewAWSPartition(j, func(outputs.Node) access.Host { return host }, spec)
	node := outputs.Node{Name: target.Name, Role: "etcd", PrivateIP: target.IP.String()}

	etcd := net.JoinHostPort(target.IP.String(), "2379")
	reachable := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		c, err := clientDial(ctx, "tcp", etcd)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	require.True(t, reachable(), "etcd on %s is reachable before", target.Name)
	start := time.Now()
	require.NoError(t, f.Inject(ctx, node))
	require.False(t, reachable(), "etcd on %s is cut off", target.Name)
	out, err := j.Run(ctx, host, "nft list table inet pgha_partition", nil)
	require.NoError(t, err, "SSH through the jump host still reaches the node")
	require.Contains(t, out, "saddr "+l.Plan.ByRole(topology.RoleHAProxy)[0].IP.String(), "SSH is allowed from the jump host's address")

	time.Sleep(time.Until(start.Add(spec.Bound + 4*time.Second)))
	require.True(t, reachable(), "healed by itself after the bound")
	_, err = j.Run(ctx, host, "nft list table inet pgha_partition", nil)
	require.Error(t, err, "the table is gone")
	// Restore after a self-heal is harmless.
	require.NoError(t, f.Restore(ctx, node))
}

func authorizedFromPEM(t *testing.T, pemKey []byte) string {
	signer, err := ssh.ParsePrivateKey(pemKey)
	require.NoError(t, err)
	return string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
}

// closeEtcdToHAProxy drops etcd's client port (2379) from the HAProxy nodes
// inside each etcd member's namespace, as the AWS security groups do. It
// reports false (and the test goes on without it) where nft is missing.
func closeEtcdToHAProxy(t *testing.T, l *cluster.Lab) bool {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Log("nft not found (apt-get install -y nftables): etcd's port stays open to the jump host in this run")
		return false
	}
	var ha []string
	for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
		ha = append(ha, n.IP.String())
	}
	rules := fmt.Sprintf(`table inet pgha_sg {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr { %s } tcp dport 2379 drop
	}
}
`, strings.Join(ha, ", "))
	for _, n := range l.Plan.ByRole(topology.RoleEtcd) {
		ns := l.Namespace(n.Name)
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "nft in %s: %s", ns, out)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "pgha_sg").Run() })
	}
	return true
}
