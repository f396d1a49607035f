package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pgha/pgha/internal/outputs"
)

// SSHConfig says how to reach a cluster's private addresses through its jump
// host. On AWS every field comes from the stack outputs (see SSHConfigFromStack).
type SSHConfig struct {
	// Addr is the jump host's sshd as host:port.
	Addr string
	// User logs in to the jump host and the nodes with the first of these
	// that is set: PrivateKey, KeyFile, AgentSocket (see NewJump).
	User string
	// PrivateKey is an unencrypted PEM key, as the stack's sshPrivateKey
	// output (present when the stack generated the key).
	PrivateKey []byte
	// KeyFile is a private key file (unencrypted), for a stack built with
	// the operator's own pgha:sshPublicKey. SSHConfigFromStack sets it
	// from $PGHA_SSH_KEY.
	KeyFile string
	// AgentSocket is an ssh-agent's socket that holds the key.
	// SSHConfigFromStack sets it from $SSH_AUTH_SOCK.
	AgentSocket string
	// HostKeys are the jump host's public keys in authorized_keys format, as
	// recorded by the stack at readiness time. A host that presents any other
	// key is refused: the connection would carry database passwords.
	HostKeys []string
	// Dial reaches the jump host itself (default: Direct). The lab's tests
	// use a namespace dialer here.
	Dial DialFunc
	// Timeout bounds the TCP connect plus SSH handshake (default 10s).
	Timeout time.Duration
	// KeepAlive is how often a dead jump connection is looked for (default
	// 10s). A dead one is replaced on the next dial.
	KeepAlive time.Duration
	// Fallbacks are further jump hosts (the other HAProxy node), tried in
	// turn when the current one cannot be reached: losing one jump host
	// (its AZ, its instance) must not end validate's access.
	Fallbacks []JumpHost
	// Private are the addresses the jump host dials (the VPC). Any other
	// address, the public endpoints (the NLB's name, an Elastic IP), is
	// dialed through Dial, from this machine, as clients reach it: from
	// inside the VPC the jump host would come to them from its own public
	// address, which the security groups do not admit, and an NLB does not
	// hand a target's own connections back to it. Empty: every address
	// goes through the jump host.
	Private []netip.Prefix
}

// JumpHost is one more jump host: its sshd and its recorded host keys.
type JumpHost struct {
	Addr     string
	HostKeys []string
}

// Environment variables SSHConfigFromStack reads when the stack has no
// sshPrivateKey output (it was built with the operator's own public key).
const (
	EnvSSHKey   = "PGHA_SSH_KEY"  // path of the private key file
	EnvSSHAgent = "SSH_AUTH_SOCK" // ssh-agent's socket, as ssh-add uses it
)

// ErrNoSSHKey says that none of the three ways to give the private key was
// used. Its text lists them.
var ErrNoSSHKey = fmt.Errorf("no SSH private key to log in with: the stack has no %q output (it was built with your own pgha:sshPublicKey, or the outputs were read without secrets). "+
	"Give the matching private key one of three ways: "+
	"(1) %s=/path/to/private/key (an unencrypted key file); "+
	"(2) an ssh-agent holding the key (ssh-add /path/to/key, with %s set); "+
	"(3) for a stack that generated its key, read the outputs with secrets shown (pulumi stack output --json --show-secrets)",
	outputs.KeySSHPrivateKey, EnvSSHKey, EnvSSHAgent)

// SSHConfigFromStack takes the jump host, user, host keys and private key
// from the stack outputs. A stack built with the operator's own public key
// has no private key output: the key then comes from the file named by
// $PGHA_SSH_KEY, or else from the ssh-agent at $SSH_AUTH_SOCK.
func SSHConfigFromStack(s outputs.Stack) (SSHConfig, error) {
	if s.Access.Kind != outputs.AccessSSH {
		return SSHConfig{}, fmt.Errorf("output %q: kind is %q, not %q; this stack is not reached over SSH", outputs.KeyAccess, s.Access.Kind, outputs.AccessSSH)
	}
	if s.SSHPrivateKey == "[secret]" {
		return SSHConfig{}, fmt.Errorf("output %q reads \"[secret]\"; read the outputs with secrets shown (pulumi stack output --json --show-secrets)", outputs.KeySSHPrivateKey)
	}
	addr := s.Access.JumpHost
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	cfg := SSHConfig{
		Addr:       addr,
		User:       s.Access.JumpUser,
		PrivateKey: []byte(s.SSHPrivateKey),
		HostKeys:   s.Access.JumpHostKeys,
		Fallbacks:  fallbacks(s, addr),
	}
	// outputs.Load requires the VPC; a stack put together without one
	// sends everything through the jump host.
	if s.VPCCIDR != "" {
		vpc, err := netip.ParsePrefix(s.VPCCIDR)
		if err != nil {
			return SSHConfig{}, fmt.Errorf("output %q: %q is not a CIDR", outputs.KeyVPCCIDR, s.VPCCIDR)
		}
		cfg.Private = []netip.Prefix{vpc}
	}
	if s.SSHPrivateKey == "" {
		cfg.PrivateKey = nil
		cfg.KeyFile = os.Getenv(EnvSSHKey)
		cfg.AgentSocket = os.Getenv(EnvSSHAgent)
		if cfg.KeyFile == "" && cfg.AgentSocket == "" {
			return SSHConfig{}, ErrNoSSHKey
		}
	}
	// The lab's SSH mode puts its jump host inside the lab network: the
	// jump host itself is then reached from the lab's client namespace.
	if s.Access.Namespace != "" {
		d, err := Netns(s.Access.Namespace)
		if err != nil {
			return SSHConfig{}, err
		}
		cfg.Dial = d
	}
	return cfg, nil
}

// fallbacks are the stack's other jump hosts: the nodes with a public
// address (the HAProxy nodes) and recorded host keys, but the first.
func fallbacks(s outputs.Stack, first string) []JumpHost {
	var out []JumpHost
	for _, n := range s.Nodes {
		if n.PublicIP == "" || len(n.HostKeys) == 0 {
			continue
		}
		addr := JumpAddr(n)
		if addr != first {
			out = append(out, JumpHost{Addr: addr, HostKeys: n.HostKeys})
		}
	}
	return out
}

// JumpAddr is a public node's address as a jump host.
func JumpAddr(n outputs.Node) string { return net.JoinHostPort(n.PublicIP, "22") }

// SSH returns a dial function that opens every connection through the jump
// host. Use NewJump instead when the connection must be closed or commands
// run on nodes.
func SSH(cfg SSHConfig) (DialFunc, error) {
	j, err := NewJump(cfg)
	if err != nil {
		return nil, err
	}
	return j.DialContext, nil
}

// Jump keeps one SSH connection to the jump host and opens TCP channels and
// command sessions over it. It is safe for concurrent use.
type Jump struct {
	cfg   SSHConfig
	login login
	hosts []jumpHost // cfg.Addr first, then cfg.Fallbacks

	mu      sync.Mutex
	client  *ssh.Client
	current int // index in hosts of the jump host client is connected to
	closed  bool
}

type jumpHost struct {
	addr string
	keys []ssh.PublicKey
}

// NewJump checks the configuration; it connects lazily, on first use. The
// private key is the first of cfg.PrivateKey, cfg.KeyFile and the agent at
// cfg.AgentSocket that is set; with none, the error is ErrNoSSHKey.
func NewJump(cfg SSHConfig) (*Jump, error) {
	if cfg.Addr == "" || cfg.User == "" {
		return nil, errors.New("ssh jump: the jump host address and user are required (outputs access.jumpHost, access.jumpUser)")
	}
	lg, err := newLogin(cfg)
	if err != nil {
		return nil, fmt.Errorf("ssh jump: %w", err)
	}
	hosts := []JumpHost{{Addr: cfg.Addr, HostKeys: cfg.HostKeys}}
	var jhs []jumpHost
	for _, h := range append(hosts, cfg.Fallbacks...) {
		keys, err := ParseHostKeys(h.HostKeys)
		if err != nil {
			return nil, fmt.Errorf("ssh jump: host keys of %s: %w", h.Addr, err)
		}
		jhs = append(jhs, jumpHost{addr: h.Addr, keys: keys})
	}
	if cfg.Dial == nil {
		cfg.Dial = Direct()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	return &Jump{cfg: cfg, login: lg, hosts: jhs}, nil
}

// login is how the client proves who it is: a fixed key, or an ssh-agent
// asked afresh for every connection (so one agent connection is never
// shared by concurrent handshakes, nor kept open between them).
type login struct {
	signer ssh.Signer
	agent  string // socket path, when signer is nil
}

// newLogin picks the key source and checks that it can sign now, so a
// missing or wrong key fails before anything else runs.
func newLogin(cfg SSHConfig) (login, error) {
	switch {
	case len(cfg.PrivateKey) > 0:
		s, err := ssh.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			return login{}, fmt.Errorf("the private key (output %q) is not a usable unencrypted PEM key: %w", outputs.KeySSHPrivateKey, err)
		}
		return login{signer: s}, nil
	case cfg.KeyFile != "":
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return login{}, fmt.Errorf("private key file %s (%s): %w", cfg.KeyFile, EnvSSHKey, err)
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return login{}, fmt.Errorf("private key file %s (%s) is encrypted; load it into ssh-agent instead (ssh-add %s) and unset %s", cfg.KeyFile, EnvSSHKey, cfg.KeyFile, EnvSSHKey)
		}
		if err != nil {
			return login{}, fmt.Errorf("private key file %s (%s) is not an OpenSSH or PEM private key: %w", cfg.KeyFile, EnvSSHKey, err)
		}
		return login{signer: s}, nil
	case cfg.AgentSocket != "":
		lg := login{agent: cfg.AgentSocket}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, ag, err := lg.dialAgent(ctx)
		if err != nil {
			return login{}, err
		}
		defer conn.Close()
		keys, err := ag.List()
		if err != nil {
			return login{}, fmt.Errorf("ssh-agent at %s (%s): listing keys: %w", cfg.AgentSocket, EnvSSHAgent, err)
		}
		if len(keys) == 0 {
			return login{}, fmt.Errorf("ssh-agent at %s (%s) holds no keys; add the key that matches pgha:sshPublicKey with ssh-add, or set %s to its file", cfg.AgentSocket, EnvSSHAgent, EnvSSHKey)
		}
		return lg, nil
	}
	return login{}, ErrNoSSHKey
}

func (l login) dialAgent(ctx context.Context) (net.Conn, agent.ExtendedAgent, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", l.agent)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-agent at %s (%s) does not answer: %w; start one (eval $(ssh-agent)) and ssh-add the key, or set %s to the key file", l.agent, EnvSSHAgent, err, EnvSSHKey)
	}
	return conn, agent.NewClient(conn), nil
}

// auth returns the method for one handshake, and what to close after it.
func (l login) auth(ctx context.Context) (ssh.AuthMethod, func(), error) {
	if l.signer != nil {
		return ssh.PublicKeys(l.signer), func() {}, nil
	}
	conn, ag, err := l.dialAgent(ctx)
	if err != nil {
		return nil, nil, err
	}
	return ssh.PublicKeysCallback(ag.Signers), func() { conn.Close() }, nil
}

// ParseHostKeys reads public keys in authorized_keys format. There must be at
// least one: an empty list would mean accepting any host.
func ParseHostKeys(lines []string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("key %d is not in authorized_keys format (e.g. \"ssh-ed25519 AAAA...\"): %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no host keys given; refusing to trust whatever key the host presents")
	}
	return keys, nil
}

// clientConfig pins the host keys and offers only their algorithms, so that a
// host with several key types presents one we know.
func clientConfig(user string, auth ssh.AuthMethod, addr string, keys []ssh.PublicKey, timeout time.Duration) *ssh.ClientConfig {
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			// An ssh-rsa key signs with SHA-2 algorithms on modern servers.
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(k.Type())
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   pinnedHostKeys(addr, keys),
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}
}

// HostKeyError says that a host presented a key the stack did not record.
type HostKeyError struct {
	Addr        string
	Presented   string // type and SHA256 fingerprint
	Recorded    []string
	RecordedFor string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("ssh host key mismatch: %s presented %s, which is not among the %d key(s) recorded in %s (%s); refusing to connect. If the host was rebuilt, run `pulumi up` to record its new keys; otherwise someone may be intercepting the connection",
		e.Addr, e.Presented, len(e.Recorded), e.RecordedFor, strings.Join(e.Recorded, ", "))
}

func pinnedHostKeys(addr string, keys []ssh.PublicKey) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		got := key.Marshal()
		for _, k := range keys {
			if bytes.Equal(got, k.Marshal()) {
				return nil
			}
		}
		var rec []string
		for _, k := range keys {
			rec = append(rec, k.Type()+" "+ssh.FingerprintSHA256(k))
		}
		return &HostKeyError{
			Addr:        addr,
			Presented:   key.Type() + " " + ssh.FingerprintSHA256(key),
			Recorded:    rec,
			RecordedFor: "the stack outputs",
		}
	}
}

// connect opens an SSH client over conn, bounded by ctx and the timeout.
func connect(ctx context.Context, conn net.Conn, addr string, cc *ssh.ClientConfig) (*ssh.Client, error) {
	deadline := time.Now().Add(cc.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	// Closing conn is the only way to abort a handshake in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cc)
	stop()
	if err != nil {
		conn.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh to %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("ssh to %s as %q: %w", addr, cc.User, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Client returns the live connection to the jump host, connecting or
// reconnecting as needed: to the jump host that last worked, then to each
// of the others in turn.
func (j *Jump) Client(ctx context.Context) (*ssh.Client, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, errors.New("ssh jump: closed")
	}
	if j.client != nil {
		return j.client, nil
	}
	var errs jumpErrors
	for k := range j.hosts {
		i := (j.current + k) % len(j.hosts)
		c, err := j.connect(ctx, j.hosts[i])
		if err == nil {
			j.client, j.current = c, i
			go j.watch(c)
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("ssh jump: %w", errs)
}

// jumpErrors is why each jump host failed, in one line; errors.As sees
// each of them (a HostKeyError, say).
type jumpErrors []error

func (e jumpErrors) Error() string {
	var parts []string
	for _, err := range e {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

func (e jumpErrors) Unwrap() []error { return e }

func (j *Jump) connect(ctx context.Context, h jumpHost) (*ssh.Client, error) {
	auth, done, err := j.login.auth(ctx)
	if err != nil {
		return nil, err
	}
	defer done() // authentication is over once the handshake returns
	conn, err := j.cfg.Dial(ctx, "tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("reaching %s: %w", h.addr, err)
	}
	return connect(ctx, conn, h.addr, clientConfig(j.cfg.User, auth, h.addr, h.keys, j.cfg.Timeout))
}

// Current is the address of the jump host connections go through now.
func (j *Jump) Current() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.hosts[j.current].addr
}

// watch forgets a client once its connection ends, and probes it with
// keepalives so that a silently dead connection (a stopped instance, a cut
// link) also ends instead of hanging every later dial.
func (j *Jump) watch(c *ssh.Client) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(j.cfg.KeepAlive)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				res := make(chan error, 1)
				go func() {
					_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
					res <- err
				}()
				select {
				case err := <-res:
					if err != nil {
						c.Close()
					}
				case <-time.After(j.cfg.KeepAlive):
					c.Close()
				case <-done:
					return
				}
			}
		}
	}()
	_ = c.Wait()
	close(done)
	j.forget(c)
}

func (j *Jump) forget(c *ssh.Client) {
	j.mu.Lock()
	if j.client == c {
		j.client = nil
	}
	j.mu.Unlock()
}

// DialContext opens a TCP connection from the jump host to addr, or from
// this machine when addr is public (see SSHConfig.Private). It has the
// DialFunc signature, so pgx and net/http use it unchanged. When the
// connection to the jump host has died, it reconnects once.
func (j *Jump) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if j.public(addr) {
		c, err := j.cfg.Dial(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s from this machine (a public endpoint, reached as clients reach it; is this machine's address in pgha:allowedCidrs?): %w", addr, err)
		}
		return c, nil
	}
	for attempt := 0; ; attempt++ {
		c, err := j.Client(ctx)
		if err != nil {
			return nil, err
		}
		conn, err := c.DialContext(ctx, network, addr)
		if err == nil {
			return withDeadlines(conn), nil
		}
		// The jump host answered but could not reach addr: that is the
		// target's state (down, partitioned), not a broken jump.
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) || ctx.Err() != nil || attempt > 0 {
			return nil, fmt.Errorf("dial %s via jump host %s: %w", addr, j.Current(), err)
		}
		c.Close()
		j.forget(c)
	}
}

// public reports whether addr lies outside the private addresses, when
// there are any: a name (the NLB's) or an IP outside the VPC.
func (j *Jump) public(addr string) bool {
	if len(j.cfg.Private) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return true
	}
	for _, p := range j.cfg.Private {
		if p.Contains(ip.Unmap()) {
			return false
		}
	}
	return true
}

// Close ends the connection to the jump host.
func (j *Jump) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	if j.client != nil {
		err := j.client.Close()
		j.client = nil
		return err
	}
	return nil
}

// Host is a machine to run commands on through the jump host.
type Host struct {
	// Addr is its sshd as host:port. Empty means the jump host itself.
	Addr string
	// HostKeys are its keys in authorized_keys format (ignored for the jump
	// host itself, whose keys are in SSHConfig).
	HostKeys []string
	// JumpAddr, for a node that can be a jump host, is its address as one
	// (cfg.Addr or a fallback's). While it is the current jump host,
	// commands run on it directly, over the jump connection itself.
	JumpAddr string
}

// CommandError carries a remote command's output with its failure.
type CommandError struct {
	Host   string
	Err    error
	Output string
}

func (e *CommandError) Error() string {
	out := strings.TrimSpace(e.Output)
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	if out == "" {
		return fmt.Sprintf("on %s: %v", e.Host, e.Err)
	}
	return fmt.Sprintf("on %s: %v: %s", e.Host, e.Err, out)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Run runs cmd on host with stdin (may be nil) and returns its combined
// output. The same user and key log in to the nodes as to the jump host;
// each node's own host keys are checked. Cancelling ctx ends the session.
func (j *Jump) Run(ctx context.Context, host Host, cmd string, stdin io.Reader) (string, error) {
	jc, err := j.Client(ctx)
	if err != nil {
		return "", err
	}
	client := jc
	name := j.Current()
	if host.Addr != "" && host.Addr != name && host.JumpAddr != name {
		name = host.Addr
		keys, err := ParseHostKeys(host.HostKeys)
		if err != nil {
			return "", fmt.Errorf("host keys of %s: %w", host.Addr, err)
		}
		auth, done, err := j.login.auth(ctx)
		if err != nil {
			return "", fmt.Errorf("ssh to %s: %w", host.Addr, err)
		}
		conn, err := j.DialContext(ctx, "tcp", host.Addr)
		if err != nil {
			done()
			return "", err
		}
		client, err = connect(ctx, conn, host.Addr, clientConfig(j.cfg.User, auth, host.Addr, keys, j.cfg.Timeout))
		done()
		if err != nil {
			return "", err
		}
		defer client.Close()
	}
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session on %s: %w", name, err)
	}
	defer sess.Close()
	// stdout and stderr are copied by two goroutines: one lock keeps the
	// combined output whole.
	var out lockedBuffer
	sess.Stdout = &out
	sess.Stderr = &out
	if stdin != nil {
		sess.Stdin = stdin
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	if err := sess.Run(cmd); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out.String(), &CommandError{Host: name, Err: err, Output: out.String()}
	}
	return out.String(), nil
}

// RunRoot runs a shell script as root on host: directly when the login user
// is root, otherwise through non-interactive sudo. The script travels on
// stdin, so it needs no quoting.
func (j *Jump) RunRoot(ctx context.Context, host Host, script string) (string, error) {
	const cmd = `if [ "$(id -u)" -eq 0 ]; then exec sh -s; else exec sudo -n sh -s; fi`
	return j.Run(ctx, host, cmd, strings.NewReader(script))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// deadlineConn gives an SSH channel the deadlines pgx and net/http rely on
// to abandon a stuck read: the channel itself returns "deadline not
// supported". net.Pipe has full deadline support, so the caller gets one end
// of a pipe and two goroutines copy between the other end and the channel.
type deadlineConn struct {
	net.Conn // the caller's end of the pipe
	local    net.Addr
	remote   net.Addr
}

func (c *deadlineConn) LocalAddr() net.Addr  { return c.local }
func (c *deadlineConn) RemoteAddr() net.Addr { return c.remote }

func withDeadlines(ch net.Conn) net.Conn {
	mine, theirs := net.Pipe()
	go func() {
		_, _ = io.Copy(ch, theirs)
		ch.Close()
	}()
	go func() {
		_, _ = io.Copy(theirs, ch)
		theirs.Close()
	}()
	return &deadlineConn{Conn: mine, local: ch.LocalAddr(), remote: ch.RemoteAddr()}
}

// ---- A second hop: a private node as the jump ----

// HopConfig is the configuration for SSH to host as a second hop, as
// `ssh -J jump host` does: the same user and key as cfg, host's own recorded
// host keys (required: a node without recorded keys is refused, never
// trusted), and host's sshd reached through via, the first jump's
// DialContext. A Jump made from it (NewJump) dials from host, as
// `ssh -J jump host -W addr` does, so the target sees host as the source.
// That reaches a port the network admits only from host, such as etcd's
// client port, which the security groups keep closed to the jump hosts.
func HopConfig(cfg SSHConfig, host Host, via DialFunc) (SSHConfig, error) {
	if host.Addr == "" {
		return SSHConfig{}, errors.New("ssh hop: the node's sshd address is required")
	}
	if via == nil {
		return SSHConfig{}, fmt.Errorf("ssh hop to %s: no dial function to reach it through (the first jump's DialContext)", host.Addr)
	}
	if _, err := ParseHostKeys(host.HostKeys); err != nil {
		return SSHConfig{}, fmt.Errorf("ssh hop: host keys of %s: %w", host.Addr, err)
	}
	cfg.Addr = host.Addr
	cfg.HostKeys = append([]string(nil), host.HostKeys...)
	cfg.Fallbacks = nil // a hop goes to this host or nowhere
	cfg.Private = nil   // and dials everything from it
	cfg.Dial = via
	return cfg, nil
}

// Hop returns a Jump whose connections start on host, a node behind j: its
// DialContext opens a channel from host (SSH to j's jump host, SSH on to
// host with host's keys pinned, then a forwarded channel), and its Run runs
// commands on host. It logs in as j does. Its SSH connection to host is
// opened on first use, kept, and replaced when it dies, as j's own is;
// closing the hop leaves j open, and closing j ends the hop's connection.
func (j *Jump) Hop(host Host) (*Jump, error) {
	cfg, err := HopConfig(j.cfg, host, j.DialContext)
	if err != nil {
		return nil, err
	}
	keys, err := ParseHostKeys(cfg.HostKeys)
	if err != nil {
		return nil, err
	}
	return &Jump{cfg: cfg, login: j.login, hosts: []jumpHost{{addr: cfg.Addr, keys: keys}}}, nil
}
