// Package sshdtest runs a real OpenSSH sshd for tests: its own host key,
// authorized_keys and config in a temporary directory, listening on loopback
// or inside a network namespace the test created. It stops only the sshd it
// started, by PID.
package sshdtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the binary Debian's openssh-server installs.
const SSHD = "/usr/sbin/sshd"

// Options choose where sshd listens.
type Options struct {
	// Listen are host:port addresses; default one free port on 127.0.0.1.
	Listen []string
	// Netns runs sshd inside this named network namespace (ip netns exec).
	Netns string
	// Dial reaches Listen[0] to wait for readiness (default: a plain dial).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server is a running sshd.
type Server struct {
	Addr          string   // first listen address
	User          string   // the user allowed to log in (the test's own)
	HostKey       string   // its public host key, authorized_keys format
	ClientKeyPEM  []byte   // private key accepted for User
	OtherHostKeys []string // a key it does not have, for mismatch tests
	PID           int
	Dir           string
}

func newKey(t testing.TB) (ed25519.PrivateKey, ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return priv, sp, pem.EncodeToMemory(block)
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

// Start runs sshd until the test ends. It skips the test when sshd is not
// installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		t.Skipf("%s not found: apt-get install -y openssh-server", SSHD)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd refuses to start without its privilege separation directory;
		// the openssh-server package normally creates it at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, hostPub, hostPEM := newKey(t)
	_, clientPub, clientPEM := newKey(t)
	_, otherPub, _ := newKey(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyPath := write("host_ed25519", hostPEM)
	authPath := write("authorized_keys", ssh.MarshalAuthorizedKey(clientPub))
	listen := opts.Listen
	if len(listen) == 0 {
		listen = []string{FreeLoopbackAddr(t)}
	}
	var cfg strings.Builder
	for _, a := range listen {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", a)
	}
	fmt.Fprintf(&cfg, `HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
PermitTTY no
X11Forwarding no
LogLevel VERBOSE
`, hostKeyPath, authPath, filepath.Join(dir, "sshd.pid"))
	cfgPath := write("sshd_config", []byte(cfg.String()))

	args := []string{SSHD, "-D", "-e", "-f", cfgPath}
	if opts.Netns != "" {
		args = append([]string{"ip", "netns", "exec", opts.Netns}, args...)
	}
	// sshd -t reports a bad config at once instead of as a silent exit.
	check := exec.Command(args[0], append(append([]string{}, args[1:]...), "-t")...)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v: %s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s := &Server{
		Addr:          listen[0],
		User:          u.Username,
		HostKey:       strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))),
		ClientKeyPEM:  clientPEM,
		OtherHostKeys: []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub)))},
		PID:           cmd.Process.Pid,
		Dir:           dir,
	}
	t.Cleanup(func() {
		// ip netns exec execs sshd, so this PID is sshd's own.
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Logf("sshd log:\n%s", b)
		}
	})
	dial := opts.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: time.Second}
		dial = d.DialContext
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			t.Fatalf("sshd exited at start: %s", b)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := dial(ctx, "tcp", s.Addr)
		cancel()
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewPrivateKeyPEM returns a fresh unencrypted ed25519 key in OpenSSH PEM form.
func NewPrivateKeyPEM(t testing.TB) []byte {
	_, _, p := newKey(t)
	return p
}
