package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/nstest"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/sshdtest"
)

// etcdHopStack is an SSH-access stack with one etcd member at memberIP.
func etcdHopStack(jump *sshdtest.Server, memberIP string, memberKeys []string) outputs.Stack {
	return outputs.Stack{
		Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: jump.Addr, JumpUser: jump.User,
			JumpHostKeys: []string{jump.HostKey}},
		SSHPrivateKey: string(jump.ClientKeyPEM),
		Nodes:         []outputs.Node{{Name: "etcd-1", Role: "etcd", PrivateIP: memberIP, HostKeys: memberKeys}},
	}
}

// TestEtcdOverSSHHopsOnTheMember checks how the etcd check reaches a member
// over SSH access, against real sshds: the member's recorded host key is
// required and pinned, and lab or direct access keeps the run's own client.
// (The whole check through the hop, against a real etcd whose client port
// is closed to the jump host, runs in jumphost's lab test.)
func TestEtcdOverSSHHopsOnTheMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jump := sshdtest.Start(t, sshdtest.Options{})
	newRun := func(s outputs.Stack) *env {
		dial, err := dialerFor(s)
		require.NoError(t, err)
		return newEnv(s, &options{}, dial, io.Discard)
	}

	// No recorded key: refused before any connection, saying what to do.
	e := newRun(etcdHopStack(jump, "127.0.0.1", nil))
	_, err := e.etcdHTTP(ctx, "127.0.0.1")
	require.ErrorContains(t, err, `output "nodes" has no hostKeys for etcd-1`)
	require.ErrorContains(t, err, "closed to the jump host")
	require.ErrorContains(t, err, "pulumi up")
	_, err = e.etcdHTTP(ctx, "127.0.0.2")
	require.ErrorContains(t, err, "is not a node")

	// Lab and direct access: the run's own client, no hop.
	d := etcdHopStack(jump, "127.0.0.1", nil)
	d.Access = outputs.Access{Kind: outputs.AccessDirect}
	e = newRun(d)
	hc, err := e.etcdHTTP(ctx, "127.0.0.1")
	require.NoError(t, err)
	require.Same(t, e.http, hc)

	// A member's sshd listens on its private IP's port 22, as on EC2. Here
	// that address, the jump host and the member share one network
	// namespace of the test's own, which validate reaches the jump host in
	// (as it does in the lab): port 22 there is always free, and nothing
	// leaves the namespace.
	if os.Geteuid() != 0 {
		t.Skip("a member sshd on port 22 in a namespace of its own needs root")
	}
	ns := fmt.Sprintf("pgha-etcdhop-%d", os.Getpid()%100000)
	nstest.New(t, ns)
	const memberIP = "10.250.1.10"
	nstest.IP(t, "-n", ns, "addr", "add", memberIP+"/32", "dev", "lo")
	inNS, err := access.Netns(ns)
	require.NoError(t, err)
	jump = sshdtest.Start(t, sshdtest.Options{Listen: []string{"127.0.0.1:2222"}, Netns: ns, Dial: inNS})
	member := sshdtest.Start(t, sshdtest.Options{Listen: []string{memberIP + ":22"}, Netns: ns, Dial: inNS})
	signer, err := ssh.ParsePrivateKey(jump.ClientKeyPEM)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(member.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600))
	inNamespace := func(s outputs.Stack) outputs.Stack {
		s.Access.Namespace = ns
		return s
	}

	// Another key than the member's: refused, naming the member's sshd.
	e = newRun(inNamespace(etcdHopStack(jump, memberIP, member.OtherHostKeys)))
	_, err = e.etcdHTTP(ctx, memberIP)
	var hk *access.HostKeyError
	require.ErrorAs(t, err, &hk)
	require.Equal(t, memberIP+":22", hk.Addr)
	require.ErrorContains(t, err, "over SSH on the member itself")
	require.NotContains(t, member.Log(), "Accepted publickey")

	// The member's own key: one login through the jump host, reused.
	e = newRun(inNamespace(etcdHopStack(jump, memberIP, []string{member.HostKey})))
	for i := 0; i < 3; i++ {
		hc, err = e.etcdHTTP(ctx, memberIP)
		require.NoError(t, err)
		require.NotSame(t, e.http, hc)
	}
	require.Equal(t, 1, strings.Count(member.Log(), "Accepted publickey for "+member.User))
	require.Contains(t, jump.Log(), "Accepted publickey for "+jump.User, "the member was reached through the jump host")
}
