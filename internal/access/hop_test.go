package access

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/internal/sshdtest"
)

// TestSSHHopReachesWhatOnlyTheNodeCan mirrors the AWS path to etcd: the jump
// host and a private node are two network namespaces joined by a veth pair,
// and the test's own namespace reaches only the jump host (through a
// namespace dialer, as an operator reaches a public address). A web server on
// the node answers with the address it sees the client come from. Through
// the jump alone the node sees the jump host; through the hop it sees itself,
// and the node's own loopback, which nothing else can reach, answers too.
func TestSSHHopReachesWhatOnlyTheNodeCan(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	id := os.Getpid() % 100000
	nsJump, nsNode := fmt.Sprintf("pgha-hopj-%d", id), fmt.Sprintf("pgha-hopn-%d", id)
	const jumpIP, nodeIP = "10.250.0.1", "10.250.0.2"
	ip := func(args ...string) { t.Helper(); nstest.IP(t, args...) }
	nstest.New(t, nsJump)
	nstest.New(t, nsNode)
	// The veth pair is created inside the jump's namespace with its peer
	// in the node's: the host's own interfaces are never touched.
	vj, vn := fmt.Sprintf("hopj%d", id), fmt.Sprintf("hopn%d", id)
	ip("-n", nsJump, "link", "add", vj, "type", "veth", "peer", "name", vn, "netns", nsNode)
	ip("-n", nsJump, "addr", "add", jumpIP+"/30", "dev", vj)
	ip("-n", nsNode, "addr", "add", nodeIP+"/30", "dev", vn)
	ip("-n", nsJump, "link", "set", vj, "up")
	ip("-n", nsNode, "link", "set", vn, "up")

	toJump, err := Netns(nsJump)
	require.NoError(t, err)
	toNode, err := Netns(nsNode)
	require.NoError(t, err)
	jump := sshdtest.Start(t, sshdtest.Options{Listen: []string{jumpIP + ":22"}, Netns: nsJump, Dial: toJump})
	node := sshdtest.Start(t, sshdtest.Options{Listen: []string{nodeIP + ":22"}, Netns: nsNode, Dial: toNode})
	trustKeyOf(t, node, jump.ClientKeyPEM)

	// One server on the node's VPC-like address and one on its loopback.
	for _, addr := range []string{nodeIP + ":7000", "127.0.0.1:7000"} {
		ln := nstest.Listen(t, filepath.Join(NetnsDir, nsNode), addr)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			_, _ = io.WriteString(w, host)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}

	cfg := sshCfg(jump)
	cfg.Dial = toJump
	j, err := NewJump(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	seenFrom := func(dial DialFunc, url string) (string, error) {
		resp, err := HTTPClient(dial, 10*time.Second).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	// Through the jump alone: the node sees the jump host, and the node's
	// loopback is out of reach (the jump host's own loopback has nothing).
	got, err := seenFrom(j.DialContext, "http://"+nodeIP+":7000/")
	require.NoError(t, err)
	require.Equal(t, jumpIP, got)
	_, err = seenFrom(j.DialContext, "http://127.0.0.1:7000/")
	require.Error(t, err, "the node's loopback must not be reachable from the jump host")

	// Through the hop: the node is the source.
	hop, err := j.Hop(Host{Addr: nodeIP + ":22", HostKeys: []string{node.HostKey}})
	require.NoError(t, err)
	defer hop.Close()
	got, err = seenFrom(hop.DialContext, "http://"+nodeIP+":7000/")
	require.NoError(t, err)
	require.Equal(t, nodeIP, got, "the hop's connections start on the node")
	got, err = seenFrom(hop.DialContext, "http://127.0.0.1:7000/")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", got, "the node's own loopback answers through the hop")

	// The hop logged in to the node from the jump host, once, and reuses
	// that connection for every dial.
	logins := func() int { return strings.Count(node.Log(), "Accepted publickey for "+node.User+" from "+jumpIP) }
	require.Equal(t, 1, logins())

	// Commands run on the node itself.
	out, err := hop.Run(ctx, Host{}, "ip -o addr show dev "+vn, nil)
	require.NoError(t, err)
	require.Contains(t, out, nodeIP+"/30")

	// A dead hop is replaced; so is a dead first leg under it.
	hc, err := hop.Client(ctx)
	require.NoError(t, err)
	hc.Close()
	got, err = seenFrom(hop.DialContext, "http://127.0.0.1:7000/")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", got)
	jc, err := j.Client(ctx)
	require.NoError(t, err)
	jc.Close()
	got, err = seenFrom(hop.DialContext, "http://127.0.0.1:7000/")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", got)
	require.Equal(t, 3, logins(), "one login per hop connection")

	// A closed port on the node says where it was dialed from.
	_, err = hop.DialContext(ctx, "tcp", "127.0.0.1:9")
	require.ErrorContains(t, err, "via jump host "+nodeIP+":22")

	// The node's host key is pinned: another key is refused, clearly, and
	// no connection reaches the node's servers.
	bad, err := j.Hop(Host{Addr: nodeIP + ":22", HostKeys: node.OtherHostKeys})
	require.NoError(t, err)
	defer bad.Close()
	_, err = seenFrom(bad.DialContext, "http://127.0.0.1:7000/")
	var hk *HostKeyError
	require.ErrorAs(t, err, &hk)
	require.Equal(t, nodeIP+":22", hk.Addr)
	require.Contains(t, err.Error(), "refusing to connect")
	t.Log(err)
	require.Equal(t, 3, logins(), "a refused host key means no login")

	// And a node without recorded keys is refused before any connection.
	_, err = j.Hop(Host{Addr: nodeIP + ":22"})
	require.ErrorContains(t, err, "refusing to trust")
}

// TestSSHHopPinsTheNodeKeyOnLoopback runs the same two-hop chain without
// root: both sshds on loopback, so it proves the chain and the pinning, not
// the reachability (that needs the namespaces above).
func TestSSHHopPinsTheNodeKeyOnLoopback(t *testing.T) {
	jump := sshdtest.Start(t, sshdtest.Options{})
	node := sshdtest.Start(t, sshdtest.Options{})
	trustKeyOf(t, node, jump.ClientKeyPEM)
	target := echoServer(t)
	j, err := NewJump(sshCfg(jump))
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	hop, err := j.Hop(Host{Addr: node.Addr, HostKeys: []string{node.HostKey}})
	require.NoError(t, err)
	c, err := hop.DialContext(ctx, "tcp", target)
	require.NoError(t, err)
	roundTrip(t, c, "through two hops")
	c.Close()
	require.Contains(t, node.Log(), "Accepted publickey for "+node.User, "the second hop logged in to the node")

	// The jump host's key is not the node's.
	bad, err := j.Hop(Host{Addr: node.Addr, HostKeys: []string{jump.HostKey}})
	require.NoError(t, err)
	_, err = bad.DialContext(ctx, "tcp", target)
	var hk *HostKeyError
	require.True(t, errors.As(err, &hk), "want a HostKeyError, got %v", err)
	require.Equal(t, node.Addr, hk.Addr)

	// HopConfig states what is missing.
	cfg := sshCfg(jump)
	cfg.Private = []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")}
	_, err = HopConfig(cfg, Host{HostKeys: []string{node.HostKey}}, j.DialContext)
	require.ErrorContains(t, err, "address is required")
	_, err = HopConfig(cfg, Host{Addr: node.Addr, HostKeys: []string{node.HostKey}}, nil)
	require.ErrorContains(t, err, "no dial function")
	_, err = HopConfig(cfg, Host{Addr: node.Addr, HostKeys: []string{"ssh-ed25519 garbled"}}, j.DialContext)
	require.ErrorContains(t, err, "authorized_keys format")
	hc, err := HopConfig(cfg, Host{Addr: node.Addr, HostKeys: []string{node.HostKey}}, j.DialContext)
	require.NoError(t, err)
	require.Equal(t, node.Addr, hc.Addr)
	require.Equal(t, []string{node.HostKey}, hc.HostKeys)
	require.Equal(t, cfg.User, hc.User)
	require.Empty(t, hc.Private, "a hop dials every address from its own host, none from the first jump")
}

// trustKeyOf lets the holder of clientPEM log in to s, as every EC2 node
// trusts the stack's key pair.
func trustKeyOf(t *testing.T, s *sshdtest.Server, clientPEM []byte) {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(clientPEM)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600))
}
