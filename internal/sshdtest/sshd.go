package sshdtest

// StartSSHD runs a real OpenSSH sshd with a fresh host key and client key, its
// own config and authorized_keys in a directory, optionally inside a network
// namespace. Tests use it as the SSH jump host and as the sshd of lab nodes;
// Start wraps it for the common case.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDBin is the binary Debian's openssh-server installs.
const SSHDBin = "/usr/sbin/sshd"

// SSHDOptions say where sshd listens.
type SSHDOptions struct {
	// Dir holds keys, config, pid and log (created, mode 0700).
	Dir string
	// Listen are host:port addresses; at least one.
	Listen []string
	// Netns runs sshd inside this named network namespace (ip netns exec).
	Netns string
	// Dial reaches Listen[0] to wait until sshd accepts connections
	// (default: a plain dial from this namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// SSHD is a running sshd.
type SSHD struct {
	Addr         string // first listen address
	User         string // the user allowed to log in (the one running this)
	HostKey      string // public host key, authorized_keys format
	ClientKeyPEM []byte // private key accepted for User
	PID          int
	Dir          string
	cmd          *exec.Cmd
	exited       chan struct{}
	logf         *os.File
}

// NewKey returns a fresh ed25519 key: public in authorized_keys format and
// private as an unencrypted OpenSSH PEM block.
func NewKey() (authorized string, privatePEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return "", nil, err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), pem.EncodeToMemory(block), nil
}

// Start runs sshd and returns once it accepts TCP connections.
func StartSSHD(ctx context.Context, o SSHDOptions) (*SSHD, error) {
	if _, err := os.Stat(SSHDBin); err != nil {
		return nil, fmt.Errorf("%s not found: apt-get install -y openssh-server", SSHDBin)
	}
	if len(o.Listen) == 0 || o.Dir == "" {
		return nil, errors.New("sshd: a directory and a listen address are required")
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd refuses to start without its privilege separation directory;
		// the openssh-server package normally creates it at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	hostPub, hostPEM, err := NewKey()
	if err != nil {
		return nil, err
	}
	clientPub, clientPEM, err := NewKey()
	if err != nil {
		return nil, err
	}
	write := func(name string, data []byte) (string, error) {
		p := filepath.Join(o.Dir, name)
		return p, os.WriteFile(p, data, 0o600)
	}
	hostKeyPath, err := write("host_ed25519", hostPEM)
	if err != nil {
		return nil, err
	}
	authPath, err := write("authorized_keys", []byte(clientPub+"\n"))
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	for _, a := range o.Listen {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", a)
	}
	// Key-only logins for one user; forwarding on, since that is the
	// point of a jump host.
	fmt.Fprintf(&cfg, `HostKey %s
AuthorizedKeysFile %s
PidFile %s
AllowUsers %s
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
`, hostKeyPath, authPath, filepath.Join(o.Dir, "sshd.pid"), u.Username)
	cfgPath, err := write("sshd_config", []byte(cfg.String()))
	if err != nil {
		return nil, err
	}
	args := []string{SSHDBin, "-D", "-e", "-f", cfgPath}
	if o.Netns != "" {
		args = append([]string{"ip", "netns", "exec", o.Netns}, args...)
	}
	// sshd -t reports a bad config at once instead of as a silent exit.
	if out, err := exec.CommandContext(ctx, args[0], append(append([]string{}, args[1:]...), "-t")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t: %v: %s", err, strings.TrimSpace(string(out)))
	}
	logf, err := os.Create(filepath.Join(o.Dir, "sshd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &SSHD{Addr: o.Listen[0], User: u.Username, HostKey: hostPub, ClientKeyPEM: clientPEM,
		PID: cmd.Process.Pid, Dir: o.Dir, cmd: cmd, exited: make(chan struct{}), logf: logf}
	go func() { _ = cmd.Wait(); close(s.exited) }()

	dial := o.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: time.Second}
		dial = d.DialContext
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			s.logf.Close()
			return nil, fmt.Errorf("sshd exited at start: %s", s.Log())
		default:
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dial(dctx, "tcp", s.Addr)
		cancel()
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("sshd did not accept connections on %s: %w", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns what sshd wrote so far.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
	return string(b)
}

// Stop ends the sshd this SSHD started, by its PID only. `ip netns exec`
// execs sshd, so the PID is sshd's own; the listener's per-connection
// children end when their connections do.
func (s *SSHD) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.logf.Close()
}
