package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// aptFix is the one command that installs everything the lab runs.
const aptFix = "apt-get install -y etcd-server etcd-client patroni postgresql-15 haproxy iproute2 util-linux"

// Prerequisites lists what is missing for the lab in its network mode,
// one line each with its fix. Empty means ready.
func (l *Lab) Prerequisites() []string {
	var out []string
	root := os.Geteuid() == 0
	if !root && !l.Loopback() {
		out = append(out, "not root: --net netns puts every node in its own network namespace, which needs root; run it with sudo (e.g. sudo go run ./lab up), or use --net loopback (no partitions)")
	}
	bins := []struct{ bin, pkg string }{
		{"etcd", "etcd-server"}, {"patroni", "patroni"}, {"haproxy", "haproxy"},
		{pgBinDir + "/postgres", "postgresql-15"}, {pgBinDir + "/pg_rewind", "postgresql-15"},
	}
	if !l.Loopback() {
		bins = append(bins, struct{ bin, pkg string }{"ip", "iproute2"})
	}
	if root {
		bins = append(bins, struct{ bin, pkg string }{"setpriv", "util-linux"})
	}
	for _, b := range bins {
		if _, err := lookBin(b.bin); err != nil {
			out = append(out, fmt.Sprintf("%s is missing (package %s): %s", b.bin, b.pkg, aptFix))
		}
	}
	// Only root switches to the daemons' users; without root everything
	// runs as the invoking user.
	if root {
		for _, u := range []string{"postgres", "etcd", "haproxy"} {
			if _, err := user.Lookup(u); err != nil {
				out = append(out, fmt.Sprintf("system user %q is missing (its package creates it): %s", u, aptFix))
			}
		}
	}
	if l.Exists() {
		out = append(out, fmt.Sprintf("lab %q is already up (or left over) at %s; see it with: go run ./lab status --name %s, or remove it with: go run ./lab down --name %s", l.Name, l.Dir, l.Name, l.Name))
	} else if l.Loopback() {
		if busy := l.busyAddresses(); busy != "" {
			out = append(out, busy)
		}
	}
	return out
}

// ports are the standard ports each role listens on.
func ports(r topology.Role) []int {
	switch r {
	case topology.RoleEtcd:
		return []int{2379, 2380}
	case topology.RolePatroni:
		return []int{5432, 8008}
	default:
		return []int{5000, 5001, 7000}
	}
}

// busyAddresses tries every address and port a loopback lab will listen
// on, and says in one line if any is taken: another loopback lab (they all
// use the same addresses) or a service on the host listening on it or on
// every address.
func (l *Lab) busyAddresses() string {
	var busy []string
	for _, n := range l.Plan.Nodes {
		for _, p := range ports(n.Role) {
			addr := net.JoinHostPort(n.IP.String(), strconv.Itoa(p))
			ln, err := net.Listen("tcp4", addr)
			if err != nil {
				busy = append(busy, addr+" ("+n.Name+")")
				continue
			}
			ln.Close()
		}
	}
	if len(busy) == 0 {
		return ""
	}
	more := ""
	if len(busy) > 1 {
		more = fmt.Sprintf(" and %d more", len(busy)-1)
	}
	return fmt.Sprintf("address %s%s already in use: loopback labs all use the same addresses, so only one can run; take the other down (go run ./lab down --name NAME) or stop what listens there (ss -ltnp)", busy[0], more)
}

// ErrPrerequisites is returned by Up when something is missing; the
// details are in the message, one line per problem.
var ErrPrerequisites = errors.New("cannot start")

// UpOptions choose the cluster.
type UpOptions struct {
	Profile         string // failure-time profile (userdata profiles)
	SynchronousMode bool
	// Net is the network mode (NetNetns or NetLoopback); empty keeps what
	// New chose (netns as root, loopback without).
	Net string
	// KeepOnFailure leaves a failed lab in place for inspection instead of
	// removing it.
	KeepOnFailure bool
	// Timeout bounds the whole start-up (default 3 minutes).
	Timeout time.Duration
}

// Phase is one timed step of Up.
type Phase struct {
	Name     string
	Duration time.Duration
}

// UpResult is what Up measured.
type UpResult struct {
	Phases []Phase
	Total  time.Duration
	Leader string
}

// Up builds the lab from nothing to a leader with two streaming replicas
// behind two HAProxies, and writes the outputs file. On failure it removes
// everything it made (unless KeepOnFailure).
func (l *Lab) Up(ctx context.Context, o UpOptions) (res UpResult, err error) {
	if o.Profile == "" {
		o.Profile = "fast"
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if _, err := userdata.LookupProfile(o.Profile); err != nil {
		return res, err
	}
	if o.Net != "" && !l.Exists() {
		if err := l.SetNet(o.Net); err != nil {
			return res, err
		}
	}
	if p := l.Prerequisites(); len(p) > 0 {
		return res, fmt.Errorf("%w:\n  %s", ErrPrerequisites, strings.Join(p, "\n  "))
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	phase := func(name string, f func() error) error {
		t := time.Now()
		err := f()
		res.Phases = append(res.Phases, Phase{name, time.Since(t)})
		if err == nil {
			l.logf("  %-34s %6.2fs", name, time.Since(t).Seconds())
		}
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if o.KeepOnFailure {
			l.logf("start-up failed; the lab is left in place for inspection (logs under %s/nodes/*/log)", l.Dir)
			return
		}
		l.logf("start-up failed; removing what was made")
		if _, derr := l.Down(context.Background()); derr != nil {
			l.logf("cleanup: %v", derr)
		}
	}()

	l.Settings = Settings{Name: l.Name, Profile: o.Profile, SynchronousMode: o.SynchronousMode, Net: l.Settings.Net, Created: time.Now().UTC()}
	if err := l.Spec().Validate(); err != nil {
		return res, err
	}
	if err := phase("state directory, secrets, files", func() error { return l.writeState() }); err != nil {
		return res, err
	}
	if !l.Loopback() {
		if err := phase("network namespaces", l.Net.Create); err != nil {
			return res, err
		}
	}
	if err := phase("etcd: 3 members, 1 leader", func() error { return l.startEtcd(ctx) }); err != nil {
		return res, err
	}
	if err := phase("patroni: leader + 2 streaming", func() error {
		leader, err := l.startPatroni(ctx)
		res.Leader = leader
		return err
	}); err != nil {
		return res, err
	}
	if err := phase("haproxy: 5000 → leader, 5001 → replicas", func() error { return l.waitHAProxy(ctx) }); err != nil {
		return res, err
	}
	if err := l.WriteOutputs(ctx); err != nil {
		return res, err
	}
	res.Total = time.Since(start)
	return res, nil
}

func (l *Lab) writeState() error {
	if l.Root == StateRoot {
		if err := os.MkdirAll(StateRoot, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(StateRoot, 0o755); err != nil {
			return err
		}
	} else if err := os.MkdirAll(l.Root, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(l.Dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", l.Dir, err)
	}
	b, err := jsonIndent(l.Settings)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.settingsFile(), b, 0o644); err != nil {
		return err
	}
	if err := l.generateSecrets(); err != nil {
		return err
	}
	pw, err := l.Passwords()
	if err != nil {
		return err
	}
	for _, n := range l.Plan.Nodes {
		if err := l.writeNodeFiles(n, pw); err != nil {
			return err
		}
	}
	return nil
}

// startRole starts every node of a role at once.
func (l *Lab) startRole(r topology.Role) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.Plan.Nodes))
	for i, n := range l.Plan.ByRole(r) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.startDaemon(n); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// failing names the node logs to read when a wait times out.
func (l *Lab) failing(r topology.Role, err error) error {
	var logs []string
	for _, n := range l.Plan.ByRole(r) {
		logs = append(logs, l.DaemonLog(n.Name))
		if !l.Running(n.Name) {
			return fmt.Errorf("%w; %s exited; last lines of %s:\n%s", err, n.Name, l.DaemonLog(n.Name), tail(l.DaemonLog(n.Name), 15))
		}
	}
	return fmt.Errorf("%w; see %s", err, strings.Join(logs, ", "))
}

func (l *Lab) startEtcd(ctx context.Context) error {
	if err := l.startRole(topology.RoleEtcd); err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return EtcdReady(l.EtcdHealth(ctx)) }); err != nil {
		return l.failing(topology.RoleEtcd, err)
	}
	return nil
}

func (l *Lab) startPatroni(ctx context.Context) (string, error) {
	if err := l.startRole(topology.RolePatroni); err != nil {
		return "", err
	}
	// HAProxy needs nothing but addresses; started now, its health checks
	// have settled by the time the replicas stream.
	if err := l.startRole(topology.RoleHAProxy); err != nil {
		return "", err
	}
	var leader string
	err := waitFor(ctx, 120*time.Second, func(ctx context.Context) error {
		m, err := l.Formed(ctx)
		leader = m.Name
		return err
	})
	if err != nil {
		return "", l.failing(topology.RolePatroni, err)
	}
	return leader, nil
}

func (l *Lab) waitHAProxy(ctx context.Context) error {
	err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return l.Routed(ctx) })
	if err != nil {
		return l.failing(topology.RoleHAProxy, err)
	}
	return nil
}

// Routed checks that every HAProxy sends 5000 to the Patroni leader and
// 5001 to the replicas, by its stats page and by a real session on 5000.
func (l *Lab) Routed(ctx context.Context) error {
	ms, _, err := l.PatroniCluster(ctx)
	if err != nil {
		return err
	}
	leader, ok := Leader(ms)
	if !ok {
		return errors.New("no Patroni leader")
	}
	for _, h := range l.Plan.ByRole(topology.RoleHAProxy) {
		// HAProxy counts every server up until its first check, so one
		// lucky connection proves nothing: require that each server of
		// "primary" has been checked and only the leader passed.
		srvs, err := l.HAProxyServers(ctx, h.IP.String())
		if err != nil {
			return fmt.Errorf("%s stats: %w", h.Name, err)
		}
		// Likewise "replicas" (5001): each replica's own server up, the
		// leader's down, so reads are not still falling back to the leader.
		members := map[string]bool{}
		for _, m := range ms {
			members[m.Name] = true
		}
		for _, s := range srvs {
			if (s.Proxy != "primary" && s.Proxy != "replicas") || !members[s.Name] {
				continue
			}
			if !s.Checked() {
				return fmt.Errorf("%s has not checked %s/%s yet", h.Name, s.Proxy, s.Name)
			}
			wantUp := s.Name == leader.Name
			if s.Proxy == "replicas" {
				wantUp = !wantUp
			}
			if up := s.Status == "UP"; up != wantUp {
				return fmt.Errorf("%s: %s/%s is %s while the leader is %s", h.Name, s.Proxy, s.Name, s.Status, leader.Name)
			}
		}
		addr, err := l.ServerAddr(ctx, h.IP.String(), 5000)
		if err != nil {
			return fmt.Errorf("%s:5000: %w", h.Name, err)
		}
		if addr != leader.Host {
			return fmt.Errorf("%s:5000 reaches %s, not the leader %s (%s)", h.Name, addr, leader.Name, leader.Host)
		}
	}
	return nil
}

// Outputs is the stack-outputs contract for this lab.
func (l *Lab) Outputs(ctx context.Context) (outputs.Stack, error) {
	creds, err := l.Credentials()
	if err != nil {
		return outputs.Stack{}, err
	}
	h := l.Plan.ByRole(topology.RoleHAProxy)[0].IP.String()
	s := outputs.Stack{
		Target: outputs.TargetLab, ClusterName: l.Name, Region: "lab",
		Profile: l.Settings.Profile, SynchronousMode: l.Settings.SynchronousMode,
		VPCCIDR:       l.Plan.VPC.String(),
		WriteEndpoint: outputs.Endpoint{Host: h, Port: 5000},
		ReadEndpoint:  outputs.Endpoint{Host: h, Port: 5001},
		StatsEndpoint: outputs.Endpoint{Host: h, Port: 7000},
		Access:        outputs.Access{Kind: outputs.AccessNetns, Namespace: l.ClientNamespace(), LabDir: l.Dir},
		Credentials:   creds,
	}
	if l.Loopback() {
		// The 127.0.x.y addresses are reachable from anywhere on this host.
		s.Access = outputs.Access{Kind: outputs.AccessDirect, LabDir: l.Dir}
	}
	for _, n := range l.Plan.Nodes {
		s.Nodes = append(s.Nodes, outputs.Node{Name: n.Name, Role: string(n.Role), AZ: azName(n.AZIndex), PrivateIP: n.IP.String()})
	}
	if _, raw, err := l.PatroniCluster(ctx); err == nil {
		s.ClusterState = raw
	}
	return s, s.Validate()
}

// WriteOutputs writes OutputsFile (mode 0600: it holds the passwords).
func (l *Lab) WriteOutputs(ctx context.Context) error {
	s, err := l.Outputs(ctx)
	if err != nil {
		return err
	}
	return s.Write(l.OutputsFile())
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
