package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// etcdCluster runs three real etcd members on 127.0.57.1-3, on the plan's
// ports, and returns the stack that names them and each member's process.
func etcdCluster(t *testing.T) (outputs.Stack, map[string]*exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (apt-get install -y etcd-server)")
	}
	var s outputs.Stack
	var initial []string
	// The members run with the cluster's TLS: certificates of a CA of the
	// test's own, and client certificates required on both ports.
	ca, err := pki.NewCA("probe test CA")
	require.NoError(t, err)
	cert, key, err := ca.Issue(pki.ClientLeaf())
	require.NoError(t, err)
	s.CACertificate, s.ClientTLS = string(ca.CertPEM), &outputs.ClientTLS{Certificate: string(cert), PrivateKey: string(key)}
	// Every member's address, and 127.0.0.1, which connections between
	// addresses of the loopback leave from: etcd checks a peer's source.
	all := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("127.0.57.%d", i)
		all = append(all, netip.MustParseAddr(ip))
		s.Nodes = append(s.Nodes, outputs.Node{Name: fmt.Sprintf("etcd-%d", i), Role: topology.RoleEtcd, PrivateIP: ip})
		initial = append(initial, fmt.Sprintf("etcd-%d=https://%s", i, hostPort(ip, topology.PortEtcdPeer)))
	}
	procs := map[string]*exec.Cmd{}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM, 0o644))
	for _, n := range s.Nodes {
		cert, key, err := ca.Issue(pki.Leaf{CommonName: n.Name, DNSNames: []string{n.Name}, IPs: all, Server: true, Client: true})
		require.NoError(t, err)
		certFile, keyFile := filepath.Join(dir, n.Name+".crt"), filepath.Join(dir, n.Name+".key")
		require.NoError(t, os.WriteFile(certFile, cert, 0o644))
		require.NoError(t, os.WriteFile(keyFile, key, 0o600))
		client, peer := "https://"+hostPort(n.PrivateIP, topology.PortEtcdClient), "https://"+hostPort(n.PrivateIP, topology.PortEtcdPeer)
		cmd := exec.Command(bin, "--name", n.Name, "--data-dir", filepath.Join(dir, n.Name), "--logger=zap",
			"--cert-file", certFile, "--key-file", keyFile, "--trusted-ca-file", caFile, "--client-cert-auth",
			"--peer-cert-file", certFile, "--peer-key-file", keyFile, "--peer-trusted-ca-file", caFile, "--peer-client-cert-auth",
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "probe-test")
		log, err := os.Create(filepath.Join(dir, n.Name+".log"))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = log, log
		require.NoError(t, cmd.Start())
		procs[n.Name] = cmd
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			log.Close()
		})
	}
	return s, procs
}

// TestEtcdGatewayOfDebiansEtcd settles which endpoints Debian's etcd 3.4
// serves: the v3 API as JSON through the gRPC gateway, by POST only (GET
// answers 405, which once passed for "no gateway"), /health, and /metrics.
// The probe then sees three healthy members agreeing on one leader, and a
// lost member by name.
func TestEtcdGatewayOfDebiansEtcd(t *testing.T) {
	s, procs := etcdCluster(t)
	p := New(s, access.Direct())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var st EtcdState
	require.Eventually(t, func() bool { st = p.Etcd(ctx); return st.OK() }, 30*time.Second, 200*time.Millisecond,
		"three healthy members: %v", st.Problems)
	assert.Equal(t, []string{"etcd-1", "etcd-2", "etcd-3"}, st.Listed)
	assert.Contains(t, []string{"etcd-1", "etcd-2", "etcd-3"}, st.Leader)
	for _, m := range st.Members {
		assert.True(t, strings.HasPrefix(m.Version, "3.4."), "%s version %q", m.Node.Name, m.Version)
		assert.NotEmpty(t, m.RaftTerm)
		assert.NotEmpty(t, m.MemberID)
	}

	url := etcdURL(s.Nodes[0], "/v3/maintenance/status")
	resp, err := p.HTTP.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "the gateway takes POST only")
	resp, err = p.HTTP.Get(etcdURL(s.Nodes[0], "/metrics"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Lose a member that is not the leader: the others keep their leader,
	// and the state names the lost one.
	victim := "etcd-1"
	if st.Leader == victim {
		victim = "etcd-2"
	}
	require.NoError(t, procs[victim].Process.Kill())
	_ = procs[victim].Wait()
	st = p.Etcd(ctx)
	require.False(t, st.OK())
	assert.Contains(t, st.Problems[0], victim)
	assert.NotEmpty(t, st.Leader, "two of three keep a leader")
	assert.Error(t, st.Err())
}
