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
	"github.com/pgha/pgha/internal/probe"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// aptFix is the one command that installs everything the lab runs (the
// repository's script: it knows the whole list, monitoring and pooler too).
const aptFix = "run scripts/install-deps.sh as root (it installs every Debian package the lab runs)"

// Prerequisites lists what is missing for the lab in its network mode,
// one line each with its fix. Empty means ready.
func (l *Lab) Prerequisites() []string {
	if l.Boot() {
		out := bootPrerequisites()
		if l.Exists() {
			out = append(out, fmt.Sprintf("lab %q is already up (or left over) at %s; see it with: go run ./lab status --name %s, or remove it with: go run ./lab down --name %s", l.Name, l.Dir, l.Name, l.Name))
		}
		return out
	}
	var out []string
	root := os.Geteuid() == 0
	if !root && !l.Loopback() {
		out = append(out, "not root: --net netns puts every node in its own network namespace, which needs root; run it as root, or use --net loopback (no partitions)")
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
	bins = append(bins, struct{ bin, pkg string }{"pgbouncer", "pgbouncer"})
	if l.Monitored() {
		// Missing, these would only show as targets Prometheus never
		// reaches, a minute into the start-up.
		bins = append(bins, []struct{ bin, pkg string }{
			{"prometheus", "prometheus"}, {"prometheus-alertmanager", "prometheus-alertmanager"},
			{"prometheus-node-exporter", "prometheus-node-exporter"},
			{"prometheus-postgres-exporter", "prometheus-postgres-exporter"},
		}...)
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

// busyAddresses tries every address and port a loopback lab will listen
// on, and says in one line if any is taken: another loopback lab (they all
// use the same addresses) or a service on the host listening on it or on
// every address.
func (l *Lab) busyAddresses() string {
	var busy []string
	for _, n := range l.Plan.Nodes {
		for _, p := range n.Role.Ports() {
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
	// Timeout bounds the whole start-up (default 3 minutes; 25 for a booted
	// lab, whose first start builds the image).
	Timeout time.Duration
	// Backups gives the lab pgBackRest archiving and backups into an S3
	// endpoint of its own (namespace labs).
	Backups bool
	// Workload is pgha:workload for the lab's PostgreSQL nodes (default
	// oltp).
	Workload string
	// PoolMode is pgha:poolMode for the poolers on the HAProxy nodes
	// (default transaction).
	PoolMode string

	// The booted lab (Net == NetBoot):

	// Control is the lab command's executable: the lab runs its AWS
	// stand-ins as `lab aws-standin`, and validate its faults through it.
	Control string
	// BootTimeout bounds the readiness gate (default 15 minutes).
	BootTimeout time.Duration
	// EditUserData and EditPolicy change a node's user data or a tier
	// role's policy before anything boots: the failed-boot tests break a
	// node this way. Nil for the real thing.
	EditUserData func(node, doc string) string
	EditPolicy   func(role, policy string) string
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
	// NodeReady and NodeCloudInit are, in a booted lab, each node's time
	// from its launch to its ready marker, and to the end of cloud-init's
	// last stage.
	NodeReady, NodeCloudInit map[string]time.Duration
}

// Up builds the lab from nothing to a leader with two streaming replicas
// behind two HAProxies, and writes the outputs file. On failure it removes
// everything it made (unless KeepOnFailure).
func (l *Lab) Up(ctx context.Context, o UpOptions) (res UpResult, err error) {
	if o.Profile == "" {
		o.Profile = "fast"
	}
	if _, err := userdata.LookupProfile(o.Profile); err != nil {
		return res, err
	}
	// Bad choices fail before anything is made.
	if o.Workload != "" && !userdata.ValidWorkload(o.Workload) {
		return res, fmt.Errorf("workload %q: use %s", o.Workload, userdata.WorkloadChoices())
	}
	if o.PoolMode != "" && !userdata.ValidPoolMode(o.PoolMode) {
		return res, fmt.Errorf("pool mode %q: use %s (the default) or %s", o.PoolMode, userdata.PoolTransaction, userdata.PoolSession)
	}
	if o.Net != "" && !l.Exists() {
		if err := l.SetNet(o.Net); err != nil {
			return res, err
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
		if l.Boot() {
			o.Timeout = 25 * time.Minute
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

	if o.Backups && l.Loopback() {
		return res, fmt.Errorf("--backups needs a namespace or booted lab (--net netns or --boot): the loopback lab's nodes share one loopback, where each node's S3 endpoint would collide")
	}
	l.Settings = Settings{Name: l.Name, Profile: o.Profile, SynchronousMode: o.SynchronousMode, Net: l.Settings.Net, Backups: o.Backups,
		Workload: o.Workload, PoolMode: o.PoolMode, PostgresSize: LabNodeSize(), Created: time.Now().UTC()}
	if l.Settings.Workload == "" {
		l.Settings.Workload = userdata.DefaultWorkload
	}
	if l.Settings.PoolMode == "" {
		l.Settings.PoolMode = userdata.PoolTransaction
	}
	if l.Boot() {
		acct, err := accountID()
		if err != nil {
			return res, err
		}
		l.Settings.Account = acct
		if _, err := l.BootSpec(); err != nil {
			return res, err
		}
		if err := phase("state directory, secrets", l.writeBase); err != nil {
			return res, err
		}
		if err := l.upBoot(ctx, o, &res, phase); err != nil {
			return res, err
		}
		res.Total = time.Since(start)
		return res, nil
	}
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
	p, err := l.Probe()
	if err != nil {
		return res, err
	}
	if l.Backups() {
		if err := phase("backups: S3 endpoint on each PostgreSQL node", func() error { return l.startObjectStore(ctx, o.Control) }); err != nil {
			return res, err
		}
	}
	if err := phase("etcd: 3 members, 1 leader", func() error { return l.startEtcd(ctx, p) }); err != nil {
		return res, err
	}
	if err := phase("patroni: leader + 2 streaming", func() error {
		leader, err := l.startPatroni(ctx, p)
		res.Leader = leader
		return err
	}); err != nil {
		return res, err
	}
	if err := phase(fmt.Sprintf("haproxy: %d → leader, %d → replicas", topology.PortWrite, topology.PortRead), func() error { return l.waitHAProxy(ctx, p) }); err != nil {
		return res, err
	}
	if err := phase(fmt.Sprintf("pgbouncer: %d → %d (leader)", topology.PortPooler, topology.PortWrite), func() error { return l.waitPoolers(ctx) }); err != nil {
		return res, err
	}
	if l.Monitored() {
		if err := phase("monitoring: exporters, Prometheus", func() error { return l.startMonitoring(ctx) }); err != nil {
			return res, err
		}
	}
	if err := l.WriteOutputs(ctx); err != nil {
		return res, err
	}
	res.Total = time.Since(start)
	return res, nil
}

// writeState writes the state directory and every node's files.
func (l *Lab) writeState() error {
	if err := l.writeBase(); err != nil {
		return err
	}
	if l.Backups() {
		if err := l.writeBackupBase(); err != nil {
			return err
		}
	}
	pw, err := l.Passwords()
	if err != nil {
		return err
	}
	for _, n := range l.Plan.Nodes {
		if err := l.writeNodeFiles(n, pw); err != nil {
			return err
		}
		if l.Monitored() {
			if err := l.writeExporterFiles(n); err != nil {
				return err
			}
		}
	}
	if l.Monitored() {
		return l.writeMonitorFiles()
	}
	return nil
}

// writeBase makes the state directory with the settings and the secrets.
func (l *Lab) writeBase() error {
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
	return l.generateTLS()
}

// startRole starts every node of a role at once.
func (l *Lab) startRole(r topology.Role) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.Plan.Nodes))
	for i, n := range l.Plan.ByRole(r) {
		wg.Go(func() {
			if err := l.startDaemon(n); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, err)
			}
		})
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

func (l *Lab) startEtcd(ctx context.Context, p *probe.Probe) error {
	if err := l.startRole(topology.RoleEtcd); err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return p.Etcd(ctx).Err() }); err != nil {
		return l.failing(topology.RoleEtcd, err)
	}
	return nil
}

// startPatroni starts Patroni (and HAProxy, which needs nothing but
// addresses: started now, its health checks have settled by the time the
// replicas stream) and waits for the formation validate checks: one leader,
// two replicas streaming, one timeline, a sync standby in synchronous mode.
func (l *Lab) startPatroni(ctx context.Context, p *probe.Probe) (string, error) {
	if err := l.startRole(topology.RolePatroni); err != nil {
		return "", err
	}
	if err := l.startRole(topology.RoleHAProxy); err != nil {
		return "", err
	}
	var leader string
	err := waitFor(ctx, 120*time.Second, func(ctx context.Context) error {
		f := p.Formation(ctx)
		leader = f.Leader.Name
		return f.Err()
	})
	if err != nil {
		return "", l.failing(topology.RolePatroni, err)
	}
	return leader, nil
}

func (l *Lab) waitHAProxy(ctx context.Context, p *probe.Probe) error {
	if err := waitFor(ctx, 60*time.Second, p.Checked); err != nil {
		return l.failing(topology.RoleHAProxy, err)
	}
	return nil
}

// stack is the lab's outputs contract without the cluster state.
func (l *Lab) stack() (outputs.Stack, error) {
	creds, err := l.Credentials()
	if err != nil {
		return outputs.Stack{}, err
	}
	h := l.Plan.ByRole(topology.RoleHAProxy)[0].IP.String()
	s := outputs.Stack{
		Target: outputs.TargetLab, ClusterName: l.Name, Region: "lab",
		Profile: l.Settings.Profile, SynchronousMode: l.Settings.SynchronousMode,
		VPCCIDR:       l.Plan.VPC.String(),
		WriteEndpoint: outputs.Endpoint{Host: h, Port: topology.PortWrite},
		ReadEndpoint:  outputs.Endpoint{Host: h, Port: topology.PortRead},
		StatsEndpoint: outputs.Endpoint{Host: h, Port: topology.PortStats},
		// PgBouncer, pooler.go.
		PoolerEndpoint: &outputs.Endpoint{Host: h, Port: topology.PortPooler},
		Access:         outputs.Access{Kind: outputs.AccessNetns, Namespace: l.ClientNamespace(), LabDir: l.Dir},
		Credentials:    creds,
	}
	if err := l.trustOutputs(&s); err != nil {
		return outputs.Stack{}, err
	}
	var entry []string
	for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
		entry = append(entry, n.IP.String())
	}
	s.Connection = outputs.NewConnection(creds.AppName, creds.AppDatabase, entry)
	s.PrometheusEndpoint = l.PrometheusURL()
	if b := l.specBackup(); b != nil {
		s.Backups = &outputs.Backups{Bucket: b.Bucket, Path: b.Path, Region: b.Region}
	}
	if l.Loopback() {
		// The 127.0.x.y addresses are reachable from anywhere on this host.
		s.Access = outputs.Access{Kind: outputs.AccessDirect, LabDir: l.Dir}
	}
	for _, n := range l.Plan.Nodes {
		on := outputs.Node{Name: n.Name, Role: n.Role, AZ: azName(n.AZIndex), PrivateIP: n.IP.String()}
		if !l.Loopback() {
			on.Namespace = l.Namespace(n.Name)
		}
		s.Nodes = append(s.Nodes, on)
	}
	return s, nil
}

// Outputs is the stack-outputs contract for this lab, with Patroni's view
// of the cluster as it is now.
func (l *Lab) Outputs(ctx context.Context) (outputs.Stack, error) {
	if l.Boot() {
		return l.bootSavedOutputs(ctx)
	}
	s, err := l.stack()
	if err != nil {
		return outputs.Stack{}, err
	}
	if p, err := l.Probe(); err == nil {
		if cl, err := p.Cluster(ctx); err == nil {
			s.ClusterState = cl
		}
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
