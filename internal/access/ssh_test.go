package access

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/sshdtest"
)

// echoServer answers each line with "echo: " + line, so a test can tell that
// bytes really crossed the tunnel both ways.
func echoServer(t *testing.T) string { return echoServerOn(t, "127.0.0.1") }

func echoServerOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo: "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(c, msg+"\n")
	require.NoError(t, err)
	got, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "echo: "+msg+"\n", got)
}

func sshCfg(s *sshdtest.Server) SSHConfig {
	return SSHConfig{Addr: s.Addr, User: s.User, PrivateKey: s.ClientKeyPEM, HostKeys: []string{s.HostKey}}
}

func TestSSHJumpDialsThroughRealSSHD(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	target := echoServer(t)
	j, err := NewJump(sshCfg(srv))
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := j.DialContext(ctx, "tcp", target)
	require.NoError(t, err)
	// The connection is a forwarded channel, not a direct socket.
	require.NotEqual(t, "*net.TCPConn", typeName(c))
	roundTrip(t, c, "hello through the jump")
	// pgx and net/http abandon stuck reads through deadlines.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "want a timeout, got %v", err)
	c.Close()

	// A dead jump connection is replaced on the next dial.
	first, err := j.Client(ctx)
	require.NoError(t, err)
	first.Close()
	c, err = j.DialContext(ctx, "tcp", target)
	require.NoError(t, err)
	roundTrip(t, c, "after reconnect")
	c.Close()
	second, err := j.Client(ctx)
	require.NoError(t, err)
	require.NotSame(t, first, second)

	// A closed port behind the jump is the target's problem and says so.
	_, err = j.DialContext(ctx, "tcp", sshdtest.FreeLoopbackAddr(t))
	require.Error(t, err)
	require.Contains(t, err.Error(), "via jump host")

	// The DialFunc form works with net/http's and pgx's signature.
	dial, err := SSH(sshCfg(srv))
	require.NoError(t, err)
	c, err = dial(ctx, "tcp", target)
	require.NoError(t, err)
	roundTrip(t, c, "via DialFunc")
	c.Close()
}

func TestSSHJumpRunsCommands(t *testing.T) {
	// A second port stands in for a node behind the jump host.
	nodeAddr := sshdtest.FreeLoopbackAddr(t)
	srv := sshdtest.Start(t, sshdtest.Options{Listen: []string{sshdtest.FreeLoopbackAddr(t), nodeAddr}})
	j, err := NewJump(sshCfg(srv))
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	out, err := j.Run(ctx, Host{}, "echo jump-$((40+2))", nil)
	require.NoError(t, err)
	require.Equal(t, "jump-42\n", out)

	// A "node" behind the jump (here the same sshd, reached through the
	// tunnel) with its own host-key check.
	node := Host{Addr: nodeAddr, HostKeys: []string{srv.HostKey}}
	out, err = j.Run(ctx, node, "cat", strings.NewReader("from stdin"))
	require.NoError(t, err)
	require.Equal(t, "from stdin", out)

	_, err = j.Run(ctx, Host{}, "echo oops >&2; exit 3", nil)
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), "oops")
	require.Contains(t, err.Error(), "status 3")

	out, err = j.RunRoot(ctx, Host{}, "id -u\n")
	if srv.User == "root" {
		require.NoError(t, err)
		require.Equal(t, "0\n", out)
	}

	// A node presenting a key the stack did not record is refused.
	bad := Host{Addr: nodeAddr, HostKeys: srv.OtherHostKeys}
	_, err = j.Run(ctx, bad, "true", nil)
	var hk *HostKeyError
	require.ErrorAs(t, err, &hk)
}

func TestSSHJumpRefusesWrongHostKey(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	cfg := sshCfg(srv)
	cfg.HostKeys = srv.OtherHostKeys
	j, err := NewJump(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = j.DialContext(ctx, "tcp", echoServer(t))
	require.Error(t, err)
	var hk *HostKeyError
	require.True(t, errors.As(err, &hk), "want a HostKeyError, got %v", err)
	msg := err.Error()
	require.Contains(t, msg, "host key mismatch")
	require.Contains(t, msg, srv.Addr)
	require.Contains(t, msg, "SHA256:")
	require.Contains(t, msg, "refusing to connect")
	t.Log(msg)
}

func TestSSHConfigErrors(t *testing.T) {
	srvKey := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for name, tc := range map[string]struct {
		cfg  SSHConfig
		want string
	}{
		"no host keys": {SSHConfig{Addr: "h:22", User: "u", PrivateKey: testKey(t)}, "refusing to trust"},
		"garbled key":  {SSHConfig{Addr: "h:22", User: "u", PrivateKey: testKey(t), HostKeys: []string{"ssh-ed25519 nope"}}, "authorized_keys format"},
		"bad private":  {SSHConfig{Addr: "h:22", User: "u", PrivateKey: []byte("nope"), HostKeys: []string{srvKey}}, "sshPrivateKey"},
		"no user":      {SSHConfig{Addr: "h:22", PrivateKey: testKey(t), HostKeys: []string{srvKey}}, "user"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewJump(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func testKey(t *testing.T) []byte { return sshdtest.NewPrivateKeyPEM(t) }

func typeName(v any) string { return fmt.Sprintf("%T", v) }

// TestPublicEndpointsAreDialedFromHere: on AWS the jump host reaches the
// VPC's addresses, but a public endpoint (the NLB, an Elastic IP) only
// from its own public address, which no security group admits; validate
// dials those from its own machine, as a client does. Here 127.0.0.1 is
// the "VPC" and 127.0.0.3 a public address.
func TestPublicEndpointsAreDialedFromHere(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	private, public := echoServer(t), echoServerOn(t, "127.0.0.3")
	var mu sync.Mutex
	var dialedHere []string
	cfg := sshCfg(srv)
	cfg.Private = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialedHere = append(dialedHere, addr)
		mu.Unlock()
		return Direct()(ctx, network, addr)
	}
	j, err := NewJump(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := j.DialContext(ctx, "tcp", private)
	require.NoError(t, err)
	require.NotEqual(t, "*net.TCPConn", typeName(c), "a VPC address goes through the jump host")
	roundTrip(t, c, "private")
	c.Close()
	require.Equal(t, []string{srv.Addr}, dialedHere, "only the jump host itself was dialed from here")

	c, err = j.DialContext(ctx, "tcp", public)
	require.NoError(t, err)
	require.Equal(t, "*net.TCPConn", typeName(c), "a public endpoint is dialed from here")
	roundTrip(t, c, "public")
	c.Close()
	require.Equal(t, []string{srv.Addr, public}, dialedHere)

	// Unreachable from here: the message points at the stack's allowedCidrs.
	closed := net.JoinHostPort("127.0.0.3", strings.Split(sshdtest.FreeLoopbackAddr(t), ":")[1])
	_, err = j.DialContext(ctx, "tcp", closed)
	require.ErrorContains(t, err, "from this machine")
	require.ErrorContains(t, err, "pgha:allowedCidrs")

	for addr, pub := range map[string]bool{
		"10.42.0.30:5000": false, "[::ffff:10.42.0.30]:5000": false, "10.42.0.30": false,
		"203.0.113.7:5000": true, "pgha-nlb-0123.elb.eu-west-1.amazonaws.com:5000": true,
	} {
		j := &Jump{cfg: SSHConfig{Private: []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")}}}
		require.Equal(t, pub, j.public(addr), addr)
	}
	require.False(t, (&Jump{}).public("203.0.113.7:5000"), "without private addresses everything goes through the jump host")
}

func TestSSHConfigFromStack(t *testing.T) {
	noKeyEnv(t)
	s := outputs.Stack{
		Access:        outputs.Access{Kind: outputs.AccessSSH, JumpHost: "203.0.113.7", JumpUser: "admin", JumpHostKeys: []string{"k"}},
		SSHPrivateKey: "pem",
	}
	cfg, err := SSHConfigFromStack(s)
	require.NoError(t, err)
	require.Equal(t, "203.0.113.7:22", cfg.Addr, "port 22 by default")
	require.Nil(t, cfg.Dial)
	require.Empty(t, cfg.Private)

	s.VPCCIDR = "10.42.0.0/16"
	cfg, err = SSHConfigFromStack(s)
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16")}, cfg.Private, "the VPC goes through the jump host")
	s.VPCCIDR = "10.42.0.0"
	_, err = SSHConfigFromStack(s)
	require.ErrorContains(t, err, `output "vpcCidr"`)
	s.VPCCIDR = ""

	s.Access.Namespace = "no-such-namespace-pgha"
	_, err = SSHConfigFromStack(s)
	require.ErrorContains(t, err, "network namespace")

	s.Access.Namespace = ""
	s.SSHPrivateKey = ""
	_, err = SSHConfigFromStack(s)
	require.ErrorIs(t, err, ErrNoSSHKey)
	require.ErrorContains(t, err, "--show-secrets")

	s.Access.Kind = outputs.AccessNetns
	_, err = SSHConfigFromStack(s)
	require.ErrorContains(t, err, "not reached over SSH")
}

// TestJumpFallsBackToTheOtherJumpHost: when the jump host in use goes away
// (its instance stopped, its AZ lost), the next dial goes through the
// other one, with that one's own host keys pinned, and commands for the
// lost node no longer run "on the jump host".
func TestJumpFallsBackToTheOtherJumpHost(t *testing.T) {
	first := sshdtest.Start(t, sshdtest.Options{})
	second := sshdtest.Start(t, sshdtest.Options{})
	// One stack key logs in to both, as on AWS.
	signer, err := ssh.ParsePrivateKey(first.ClientKeyPEM)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(second.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600))
	// The first is reached through a proxy the test can pull, the way a
	// stopped instance takes its established connections with it.
	proxy, pull := cuttableProxy(t, first.Addr)
	cfg := sshCfg(first)
	cfg.Addr = proxy
	cfg.Fallbacks = []JumpHost{{Addr: second.Addr, HostKeys: []string{second.HostKey}}}
	cfg.KeepAlive = 200 * time.Millisecond
	j, err := NewJump(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target := echoServer(t)

	c, err := j.DialContext(ctx, "tcp", target)
	require.NoError(t, err)
	roundTrip(t, c, "via the first")
	c.Close()
	require.Equal(t, proxy, j.Current())

	pull()
	require.Eventually(t, func() bool {
		c, err := j.DialContext(ctx, "tcp", target)
		if err != nil {
			return false
		}
		defer c.Close()
		roundTrip(t, c, "via the second")
		return true
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, second.Addr, j.Current())
	// A command for the second jump host runs on it directly now.
	out, err := j.Run(ctx, Host{Addr: "192.0.2.1:22", JumpAddr: second.Addr}, "echo direct", nil)
	require.NoError(t, err)
	require.Equal(t, "direct\n", out)

	// The fallback's keys are its own: a fallback presenting another key is refused.
	bad := sshCfg(first)
	bad.Addr = "127.0.0.1:1" // nothing listens
	bad.Fallbacks = []JumpHost{{Addr: second.Addr, HostKeys: first.OtherHostKeys}}
	jb, err := NewJump(bad)
	require.NoError(t, err)
	defer jb.Close()
	_, err = jb.DialContext(ctx, "tcp", target)
	var hke *HostKeyError
	require.ErrorAs(t, err, &hke)
}

func TestFallbacksFromStack(t *testing.T) {
	s := outputs.Stack{Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: "203.0.113.7:22", JumpUser: "admin",
		JumpHostKeys: []string{"k1"}}, SSHPrivateKey: "x",
		Nodes: []outputs.Node{
			{Name: "haproxy-1", PublicIP: "203.0.113.7", HostKeys: []string{"k1"}},
			{Name: "haproxy-2", PublicIP: "203.0.113.8", HostKeys: []string{"k2"}},
			{Name: "pg-1", HostKeys: []string{"k3"}},
			{Name: "haproxy-3", PublicIP: "203.0.113.9"}, // no recorded keys: never trusted
		}}
	require.Equal(t, []JumpHost{{Addr: "203.0.113.8:22", HostKeys: []string{"k2"}}}, fallbacks(s, "203.0.113.7:22"))
}

// cuttableProxy forwards a loopback port to target until pull closes it
// and every connection through it.
func cuttableProxy(t *testing.T, target string) (addr string, pull func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	pull = func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(pull)
	return l.Addr().String(), pull
}
