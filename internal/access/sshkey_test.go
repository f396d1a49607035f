package access

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/sshdtest"
)

// startAgent runs a real ssh-agent in the foreground on a socket in a fresh
// directory, and stops it (by its PID) when the test ends.
func startAgent(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ssh-agent"); err != nil {
		t.Skip("ssh-agent not found: apt-get install -y openssh-client")
	}
	// A short path: a unix socket's path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "pgha-agent-")
	require.NoError(t, err)
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatal("ssh-agent exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("ssh-agent did not create its socket within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeKey stores a private key the way a user keeps one: mode 0600.
func writeKey(t *testing.T, pemBytes []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	require.NoError(t, os.WriteFile(p, pemBytes, 0o600))
	return p
}

// agentAdd loads a key into the agent with the real ssh-add.
func agentAdd(t *testing.T, sock string, pemBytes []byte) {
	t.Helper()
	cmd := exec.Command("ssh-add", writeKey(t, pemBytes))
	cmd.Env = append(os.Environ(), EnvSSHAgent+"="+sock)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "ssh-add: %s", out)
}

// ownKeyStack is the outputs of a stack built with the operator's own
// public key: no sshPrivateKey output.
func ownKeyStack(srv *sshdtest.Server) outputs.Stack {
	return outputs.Stack{Access: outputs.Access{
		Kind: outputs.AccessSSH, JumpHost: srv.Addr, JumpUser: srv.User, JumpHostKeys: []string{srv.HostKey},
	}}
}

func noKeyEnv(t *testing.T) {
	t.Setenv(EnvSSHKey, "")
	t.Setenv(EnvSSHAgent, "")
}

func TestSSHKeyFromFile(t *testing.T) {
	noKeyEnv(t)
	srv := sshdtest.Start(t, sshdtest.Options{})
	target := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// $PGHA_SSH_KEY, as validate and the faults read it.
	t.Setenv(EnvSSHKey, writeKey(t, srv.ClientKeyPEM))
	cfg, err := SSHConfigFromStack(ownKeyStack(srv))
	require.NoError(t, err)
	require.Empty(t, cfg.PrivateKey)
	dial, err := SSH(cfg)
	require.NoError(t, err)
	c, err := dial(ctx, "tcp", target)
	require.NoError(t, err)
	roundTrip(t, c, "logged in with the key file")
	c.Close()

	// The same through the field a caller sets.
	noKeyEnv(t)
	j, err := NewJump(SSHConfig{Addr: srv.Addr, User: srv.User, HostKeys: []string{srv.HostKey},
		KeyFile: writeKey(t, srv.ClientKeyPEM)})
	require.NoError(t, err)
	defer j.Close()
	out, err := j.Run(ctx, Host{}, "echo field", nil)
	require.NoError(t, err)
	require.Equal(t, "field\n", out)

	// A key the server does not accept fails to log in: the key file is
	// really what authenticates.
	j2, err := NewJump(SSHConfig{Addr: srv.Addr, User: srv.User, HostKeys: []string{srv.HostKey},
		KeyFile: writeKey(t, sshdtest.NewPrivateKeyPEM(t))})
	require.NoError(t, err)
	defer j2.Close()
	_, err = j2.Run(ctx, Host{}, "true", nil)
	require.ErrorContains(t, err, "unable to authenticate")
}

// TestSSHKeyFromAgent logs in to a jump host and, through it, to a node
// (a second sshd with its own client key and host key) with keys that
// only a real ssh-agent holds.
func TestSSHKeyFromAgent(t *testing.T) {
	noKeyEnv(t)
	jump := sshdtest.Start(t, sshdtest.Options{})
	node := sshdtest.Start(t, sshdtest.Options{})
	sock := startAgent(t)
	agentAdd(t, sock, jump.ClientKeyPEM)
	agentAdd(t, sock, node.ClientKeyPEM)
	t.Setenv(EnvSSHAgent, sock)

	cfg, err := SSHConfigFromStack(ownKeyStack(jump))
	require.NoError(t, err)
	require.Equal(t, sock, cfg.AgentSocket)
	j, err := NewJump(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := j.DialContext(ctx, "tcp", echoServer(t))
	require.NoError(t, err)
	roundTrip(t, c, "logged in through the agent")
	c.Close()

	// Node logins happen concurrently in validate (a fault, traffic); each
	// handshake asks the agent on its own connection.
	h := Host{Addr: node.Addr, HostKeys: []string{node.HostKey}}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := j.Run(ctx, h, "echo node", nil)
			if err == nil && out != "node\n" {
				err = errors.New("unexpected output " + out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// The stack's own key, when present, is used before the agent.
	withKey := ownKeyStack(jump)
	withKey.SSHPrivateKey = string(jump.ClientKeyPEM)
	cfg, err = SSHConfigFromStack(withKey)
	require.NoError(t, err)
	require.Empty(t, cfg.AgentSocket)
}

func TestSSHKeySourceErrors(t *testing.T) {
	noKeyEnv(t)
	srvKey := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	base := SSHConfig{Addr: "h:22", User: "u", HostKeys: []string{srvKey}}

	// None of the three: one line that lists them all.
	_, err := NewJump(base)
	require.ErrorIs(t, err, ErrNoSSHKey)
	msg := err.Error()
	require.NotContains(t, msg, "\n")
	for _, want := range []string{EnvSSHKey, EnvSSHAgent, "ssh-add", "--show-secrets", "sshPrivateKey"} {
		require.Contains(t, msg, want)
	}
	s := outputs.Stack{Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: "h", JumpUser: "u", JumpHostKeys: []string{srvKey}}}
	_, err = SSHConfigFromStack(s)
	require.ErrorIs(t, err, ErrNoSSHKey)

	s.SSHPrivateKey = "[secret]"
	_, err = SSHConfigFromStack(s)
	require.ErrorContains(t, err, "--show-secrets")

	with := func(f func(*SSHConfig)) SSHConfig { c := base; f(&c); return c }
	missing := filepath.Join(t.TempDir(), "nope")
	_, err = NewJump(with(func(c *SSHConfig) { c.KeyFile = missing }))
	require.ErrorContains(t, err, "private key file "+missing)

	garbage := writeKey(t, []byte("not a key"))
	_, err = NewJump(with(func(c *SSHConfig) { c.KeyFile = garbage }))
	require.ErrorContains(t, err, "is not an OpenSSH or PEM private key")

	// An encrypted key cannot be used unattended: the agent is the way.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("passphrase"))
	require.NoError(t, err)
	enc := writeKey(t, pem.EncodeToMemory(block))
	_, err = NewJump(with(func(c *SSHConfig) { c.KeyFile = enc }))
	require.ErrorContains(t, err, "is encrypted")
	require.ErrorContains(t, err, "ssh-add "+enc)

	// An agent socket nobody listens on.
	dead := filepath.Join(t.TempDir(), "agent.sock")
	_, err = NewJump(with(func(c *SSHConfig) { c.AgentSocket = dead }))
	require.ErrorContains(t, err, "does not answer")

	// A real agent with no keys.
	sock := startAgent(t)
	_, err = NewJump(with(func(c *SSHConfig) { c.AgentSocket = sock }))
	require.ErrorContains(t, err, "holds no keys")
	require.False(t, strings.Contains(err.Error(), "\n"))
}
