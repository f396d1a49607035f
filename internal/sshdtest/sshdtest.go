// Package sshdtest runs a real OpenSSH sshd for tests,
// listening on loopback or inside a network namespace the test created, and
// stops it when the test ends, by its PID only.
package sshdtest

import (
	"context"
	"net"
	"os"
	"testing"
	"time"
)

// Options choose where sshd listens.
type Options struct {
	// Listen are host:port addresses; default one free port on 127.0.0.1.
	Listen []string
	// Netns runs sshd inside this named network namespace.
	Netns string
	// Dial reaches Listen[0] to wait for readiness (default: a plain dial).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server is a running sshd.
type Server struct {
	*SSHD
	// OtherHostKeys is a key the server does not have, for mismatch tests.
	OtherHostKeys []string
}

// FreeLoopbackAddr returns 127.0.0.1:<a port free right now>.
func FreeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// NewPrivateKeyPEM returns a fresh unencrypted ed25519 key in OpenSSH PEM form.
func NewPrivateKeyPEM(t testing.TB) []byte {
	_, p, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Start runs sshd until the test ends. It skips the test when sshd is not
// installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(SSHDBin); err != nil {
		t.Skipf("%s not found: apt-get install -y openssh-server", SSHDBin)
	}
	listen := opts.Listen
	if len(listen) == 0 {
		listen = []string{FreeLoopbackAddr(t)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartSSHD(ctx, SSHDOptions{Dir: t.TempDir(), Listen: listen, Netns: opts.Netns, Dial: opts.Dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	other, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return &Server{SSHD: s, OtherHostKeys: []string{other}}
}
