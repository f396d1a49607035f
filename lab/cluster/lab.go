// Package cluster runs a whole pgha cluster (3 etcd, 3 Patroni/PostgreSQL,
// 2 HAProxy) on one Linux machine, from the same files the userdata
// renderers put into the cloud-init documents. Each node is its own host: a
// network namespace that holds the node's address from the IP plan. Without
// root (or on request) every node instead binds its own loopback address
// from the same plan moved into 127.0.0.0/16. The command in lab/ drives
// it, and validate uses the same API for its faults.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/userdata"
)

// DefaultName is the lab a user gets without --name.
const DefaultName = "pgha"

// StateRoot holds one directory per lab run by root. It is under /var/lib,
// not /root, so the postgres and etcd users can traverse to their
// directories. Without root, labs live in UserStateRoot.
const StateRoot = "/var/lib/pgha-lab"

// UserStateRoot is where the invoking user's labs live: StateRoot for root,
// else $XDG_STATE_HOME/pgha-lab or ~/.local/state/pgha-lab.
func UserStateRoot() (string, error) {
	if os.Geteuid() == 0 {
		return StateRoot, nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "pgha-lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || !filepath.IsAbs(home) {
		return "", errors.New("without root the lab keeps its state under $XDG_STATE_HOME or $HOME/.local/state, and neither is set; set HOME or XDG_STATE_HOME")
	}
	return filepath.Join(home, ".local", "state", "pgha-lab"), nil
}

// Network modes.
const (
	// NetNetns puts each node in its own network namespace with its planned
	// VPC address (root only); partitions are real.
	NetNetns = "netns"
	// NetLoopback gives each node its own loopback address: the plan laid
	// out in LoopbackVPC. Every node shares the host's network stack, so
	// nothing can be partitioned.
	NetLoopback = "loopback"
)

// LoopbackVPC is the loopback lab's "VPC": the plan's 10.42.a.b becomes
// 127.0.a.b. Linux routes all of 127/8 to lo, but a connection to any of
// those addresses leaves from 127.0.0.1 (lo's preferred source), so
// pg_hba admits every node-address rule from 127.0.0.1 too (SharedStack).
const LoopbackVPC = "127.0.0.0/16"

// DefaultNet picks the network mode when none is asked for, and says why in
// one line: namespaces when root can create them, else loopback.
func DefaultNet() (mode, why string) {
	if os.Geteuid() != 0 {
		return NetLoopback, "not root, so every node gets its own loopback address (no partitions); run as root for network namespaces"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return NetLoopback, "the ip command is missing (apt-get install -y iproute2), so every node gets its own loopback address (no partitions)"
	}
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		return NetLoopback, "network namespaces cannot be created here (" + err.Error() + "), so every node gets its own loopback address (no partitions)"
	}
	return NetNetns, "root and network namespaces work, so every node gets its own namespace (real partitions)"
}

// CheckNet rejects an unknown --net value.
func CheckNet(mode string) error {
	switch mode {
	case NetNetns, NetLoopback, NetBoot:
		return nil
	}
	return fmt.Errorf("network mode %q is not known: use --net netns (root, real partitions) or --net loopback (no root needed, no partitions), or up --boot for booted machines", mode)
}

// ClientHost is the extra namespace users and validate connect from. Its
// address sits in the VPC, but no node's: pg_hba admits only the monitor
// role from it (Cluster.MonitorFrom); the application comes through
// HAProxy, as on AWS.
const ClientHost = "client"

// ClientIP is the client namespace's address.
var ClientIP = netip.MustParseAddr("10.42.0.200")

// LoopbackClientIP is ClientIP in a loopback lab. Nothing listens there; it
// only keeps the plan's hosts the same in both modes.
var LoopbackClientIP = netip.MustParseAddr("127.0.0.200")

// AZ names the lab gives the plan's zones in outputs.
func azName(i int) string { return fmt.Sprintf("lab-az%d", i+1) }

// Settings are chosen at `up` and kept in the state directory, so that
// every later command (status, start, faults) acts on the same cluster.
type Settings struct {
	Name            string `json:"name"`
	Profile         string `json:"profile"`
	SynchronousMode bool   `json:"synchronousMode"`
	// Net is the network mode; empty (labs from before loopback) is netns.
	Net string `json:"net,omitempty"`
	// Backups: pgBackRest archives to and backs up into the lab's own S3
	// endpoint (a namespace lab), or the booted lab's bucket in its AWS
	// stand-in.
	Backups bool `json:"backups,omitempty"`
	// Account is the booted lab's AWS account id, chosen at `up`: the
	// backup bucket's name, in the user data, carries it.
	Account string `json:"account,omitempty"`
	// Workload and PostgresSize are what the namespace and loopback labs
	// tune PostgreSQL for (userdata.Tune), chosen at `up`; the booted lab
	// tunes for its instance type, as the program does.
	Workload     string        `json:"workload,omitempty"`
	PostgresSize userdata.Size `json:"postgresSize,omitempty"`
	// PoolMode is the poolers' pool mode (pgha:poolMode); empty, in labs
	// from before it, is transaction pooling.
	PoolMode string    `json:"poolMode,omitempty"`
	Created  time.Time `json:"created"`
}

// Lab is one lab, named, with its state directory.
type Lab struct {
	Name string
	// Root is the state root the lab lives in (StateRoot or the invoking
	// user's UserStateRoot); Dir is Root/Name.
	Root     string
	Dir      string
	Settings Settings
	Plan     topology.Plan
	// Client is the address users and validate connect from (ClientIP, or
	// LoopbackClientIP in a loopback lab).
	Client netip.Addr
	Net    netlab.Network
	// Log receives progress lines; nil means io.Discard.
	Log io.Writer

	mu sync.Mutex // serialises pids.json updates
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,19}$`)

// CheckName rejects lab names that could not prefix namespaces and paths.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lab name %q is not allowed: use 1-20 lowercase letters and digits, starting with a letter (e.g. --name %s)", name, DefaultName)
	}
	return nil
}

// New describes a lab by name; nothing is created. Settings are read from
// the state directory when the lab exists, else they are the defaults
// (profile "fast", asynchronous replication) until Up sets them.
func New(name string) (*Lab, error) {
	root, err := UserStateRoot()
	if err != nil {
		return nil, err
	}
	return newIn(root, name)
}

// newIn is New with the state root given.
func newIn(root, name string) (*Lab, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	l := &Lab{
		Name:     name,
		Root:     root,
		Dir:      filepath.Join(root, name),
		Settings: Settings{Name: name, Profile: "fast"},
	}
	if b, err := os.ReadFile(l.settingsFile()); err == nil {
		if err := json.Unmarshal(b, &l.Settings); err != nil {
			return nil, fmt.Errorf("%s is damaged (%v); remove the lab with: go run ./lab down --name %s", l.settingsFile(), err, name)
		}
	}
	mode := l.Settings.Net
	if mode == "" {
		// A lab that does not exist yet: its plan until Up picks the mode.
		// Without root only loopback is possible, so that is what a
		// non-root New describes (and what down cleans up).
		mode = NetNetns
		if os.Geteuid() != 0 {
			mode = NetLoopback
		}
	}
	if err := l.SetNet(mode); err != nil {
		return nil, err
	}
	return l, nil
}

// SetNet lays the lab out for a network mode: the plan (VPC or loopback
// addresses) and, for netns, the namespaces.
func (l *Lab) SetNet(mode string) error {
	if err := CheckNet(mode); err != nil {
		return err
	}
	cidr, client := topology.DefaultVPCCIDR, ClientIP
	if mode == NetLoopback {
		cidr, client = LoopbackVPC, LoopbackClientIP
	}
	plan, err := topology.New(cidr)
	if err != nil {
		return err
	}
	l.Settings.Net = mode
	l.Plan = plan
	l.Client = client
	l.Net = netlab.Network{Lab: l.Name, Prefix: plan.VPC, Hosts: hosts(plan, client)}
	if mode == NetBoot {
		l.Net.Hosts = append(l.Net.Hosts, netlab.Host{Name: standinHost, IP: standinIP(plan)})
	}
	if mode == NetNetns {
		m := plan.Monitor()
		l.Net.Hosts = append(l.Net.Hosts, netlab.Host{Name: m.Name, IP: m.IP})
	}
	return nil
}

// Loopback reports whether the lab's nodes share the host's network stack.
func (l *Lab) Loopback() bool { return l.Settings.Net == NetLoopback }

// Unprivileged reports whether the daemons run as the invoking user (a
// lab run without root) rather than as postgres, etcd and haproxy.
func (l *Lab) Unprivileged() bool { return os.Geteuid() != 0 }

// FromOutputs finds the lab that wrote a stack's outputs, for validate's
// faults. The lab is named by access.labDir; how validate reaches its
// addresses (netns, direct for a loopback lab, or ssh through a jump host
// on a lab node) does not matter, since the faults act on the lab's own
// processes and namespaces on this machine.
func FromOutputs(s outputs.Stack) (*Lab, error) {
	if s.Target != outputs.TargetLab || s.Access.LabDir == "" {
		return nil, errors.New("these outputs are not from a lab on this machine (want target \"lab\" and access.labDir)")
	}
	switch s.Access.Kind {
	case outputs.AccessNetns, outputs.AccessDirect, outputs.AccessSSH:
	default:
		return nil, fmt.Errorf("output \"access\": kind %q is not one a lab is reached by (netns, direct or ssh)", s.Access.Kind)
	}
	dir := filepath.Clean(s.Access.LabDir)
	root := filepath.Dir(dir)
	// Only the two places labs live: root's, and the invoking user's.
	mine, err := UserStateRoot()
	if err != nil {
		return nil, err
	}
	if root != StateRoot && root != mine {
		return nil, fmt.Errorf("output \"access\": labDir %q is not under %s or %s", s.Access.LabDir, StateRoot, mine)
	}
	l, err := newIn(root, filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	if !l.Exists() {
		return nil, fmt.Errorf("output \"access\": no lab at %s; is it up? (go run ./lab status --name %s)", dir, l.Name)
	}
	return l, nil
}

// Hosts maps the IP plan to lab namespaces: one per node, with the node's
// planned address, plus the client.
func Hosts(plan topology.Plan) []netlab.Host { return hosts(plan, ClientIP) }

func hosts(plan topology.Plan, client netip.Addr) []netlab.Host {
	var hs []netlab.Host
	for _, n := range plan.Nodes {
		hs = append(hs, netlab.Host{Name: n.Name, IP: n.IP})
	}
	return append(hs, netlab.Host{Name: ClientHost, IP: client})
}

// Namespace is the network namespace of a node (or of the client).
func (l *Lab) Namespace(node string) string { return netlab.Namespace(l.Name, node) }

// ClientNamespace is where users and validate connect from.
func (l *Lab) ClientNamespace() string { return l.Namespace(ClientHost) }

// NodeDir holds everything of one node.
func (l *Lab) NodeDir(node string) string { return filepath.Join(l.Dir, "nodes", node) }

// NodePaths is a node's layout in the lab. Compared with
// userdata.CloudPaths, only these strings differ in what the node runs.
func NodePaths(labDir, node string) userdata.Paths {
	d := filepath.Join(labDir, "nodes", node)
	return userdata.Paths{
		EtcdConfigFile:    filepath.Join(d, "etc", "etcd.conf.yml"),
		EtcdDataDir:       filepath.Join(d, "etcd"),
		PatroniConfigFile: filepath.Join(d, "etc", "patroni.yml"),
		SecretsEnvFile:    filepath.Join(d, "secrets", "secrets.env"),
		PostBootstrap:     filepath.Join(d, "etc", "post-bootstrap.sh"),
		// The data directory's parent belongs to postgres, as
		// /var/lib/postgresql/15 does on EC2: Patroni removes and recreates
		// the data directory when pg_rewind fails, and needs to write there.
		PGDataDir:         filepath.Join(d, "pgsql", "data"),
		PGSocketDir:       filepath.Join(d, "run"),
		PGPassFile:        filepath.Join(d, "home", ".pgpass_patroni"),
		PGLogDir:          filepath.Join(d, "log", "postgresql"),
		TLSCAFile:         filepath.Join(d, "tls", "ca.crt"),
		TLSCertFile:       filepath.Join(d, "tls", "node.crt"),
		TLSKeyFile:        filepath.Join(d, "tls", "node.crt.key"),
		HAProxyConfigFile: filepath.Join(d, "etc", "haproxy.cfg"),
		PythonPath:        filepath.Join(d, "python"),
		PgBackRestConfig:  filepath.Join(d, "etc", "pgbackrest.conf"),
		PgBackRestSpool:   filepath.Join(d, "pgbackrest", "spool"),
		PgBackRestLog:     filepath.Join(d, "log", "pgbackrest"),
		PgBackRestLock:    filepath.Join(d, "pgbackrest", "lock"),
		// Monitoring (the namespace lab).
		ExporterKeyFile:     filepath.Join(d, "tls", "exporter.key"),
		ExporterWebConfig:   filepath.Join(d, "etc", "exporter-web.yml"),
		PrometheusConfig:    filepath.Join(d, "etc", "prometheus.yml"),
		PrometheusWebConfig: filepath.Join(d, "etc", "prometheus-web.yml"),
		PrometheusRules:     filepath.Join(d, "etc", "pgha.rules.yml"),
		PrometheusDataDir:   filepath.Join(d, "prometheus"),
		AlertmanagerConfig:  filepath.Join(d, "etc", "alertmanager.yml"),
		AlertmanagerDataDir: filepath.Join(d, "alertmanager"),
		// PgBouncer (the HAProxy nodes).
		PgBouncerConfigFile: filepath.Join(d, "etc", "pgbouncer.ini"),
		PgBouncerAuthFile:   filepath.Join(d, "etc", "pgbouncer-users.txt"),
		PgBouncerKeyFile:    filepath.Join(d, "tls", "pgbouncer.key"),
	}
}

// Paths is NodePaths for this lab.
func (l *Lab) Paths(node string) userdata.Paths { return NodePaths(l.Dir, node) }

// DaemonLog is where a node's daemon writes stdout and stderr; for a
// booted machine, its console (the daemons log to its journal).
func (l *Lab) DaemonLog(node string) string {
	if l.Boot() {
		return filepath.Join(l.machineDir(node), "console.log")
	}
	n, _ := l.Plan.Node(node)
	return filepath.Join(l.NodeDir(node), "log", daemonName(n.Role)+".log")
}

func daemonName(r topology.Role) string {
	switch r {
	case topology.RoleEtcd:
		return "etcd"
	case topology.RolePatroni:
		return "patroni"
	default:
		return "haproxy"
	}
}

// Spec is the userdata cluster the lab renders its files from.
func (l *Lab) Spec() userdata.Cluster {
	return userdata.Cluster{
		// Without root nothing can switch users; HAProxy must not try.
		Unprivileged: l.Unprivileged(),
		// Loopback nodes share the host's stack: each HAProxy must take
		// only its own address.
		BindNodeAddress: l.Loopback(),
		Name:            l.Name,
		Plan:            l.Plan,
		Profile:         l.Settings.Profile,
		SynchronousMode: l.Settings.SynchronousMode,
		// Only the cloud-init documents use the region (to fetch SSM
		// parameters); the lab's files do not mention it.
		Region: "us-east-1",
		Users:  userdata.DefaultUsers(),
		// On AWS these name SSM parameters; the lab's stand-ins are files.
		Secrets: userdata.ParamsUnder("lab/"),
		Backup:  l.specBackup(),
		// validate connects from the client namespace, not through a jump
		// host on an HAProxy node, and its scenarios watch each PostgreSQL
		// node from inside the node's own namespace (where a partitioned
		// node is still seen): pg_hba admits the monitor from those
		// addresses too, and nobody else.
		MonitorFrom: l.monitorFrom(),
		// Loopback nodes cannot be told apart by source address.
		SharedStack:  l.sharedStack(),
		PostgresSize: l.Settings.PostgresSize,
		Workload:     l.Settings.Workload,
		PoolMode:     l.Settings.PoolMode,
		Monitoring:   l.monitoringSpec(),
	}
}

// LabNodeSize is what the namespace and loopback labs tune each PostgreSQL
// node for: a t3.medium's 4 GiB and 2 vCPUs, or a sixth of this machine's
// memory when that is less (the lab's nodes share it), and at most its
// CPUs.
func LabNodeSize() userdata.Size {
	s := userdata.DefaultSize
	if mem := memTotalMiB(); mem > 0 {
		s.MemoryMiB = max(userdata.MinSize.MemoryMiB, min(s.MemoryMiB, mem/6/256*256))
	}
	s.VCPUs = max(1, min(s.VCPUs, runtime.NumCPU()))
	return s
}

// memTotalMiB is the machine's memory from /proc/meminfo, 0 if unknown.
func memTotalMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return 0
}

func (l *Lab) monitorFrom() []netip.Prefix {
	if l.Settings.Net != NetNetns {
		return nil
	}
	// The PostgreSQL nodes, whose namespaces the scenarios watch each
	// node from, are admitted everywhere (Cluster.HBA).
	return []netip.Prefix{netip.PrefixFrom(l.Client, 32)}
}

// LoopbackSource is where every connection of a loopback lab comes from.
var LoopbackSource = netip.MustParseAddr("127.0.0.1")

func (l *Lab) sharedStack() []netip.Prefix {
	if !l.Loopback() {
		return nil
	}
	return []netip.Prefix{netip.PrefixFrom(LoopbackSource, 32)}
}

func (l *Lab) specBackup() *userdata.Backup {
	if !l.Backups() {
		return nil
	}
	return l.labBackup()
}

func (l *Lab) settingsFile() string { return filepath.Join(l.Dir, "lab.json") }
func (l *Lab) pidsFile() string     { return filepath.Join(l.Dir, "pids.json") }

// OutputsFile is the stack-outputs JSON the lab writes for validate.
func (l *Lab) OutputsFile() string { return filepath.Join(l.Dir, "outputs.json") }

// Exists reports whether any trace of the lab is on this machine.
func (l *Lab) Exists() bool {
	if _, err := os.Stat(l.Dir); err == nil {
		return true
	}
	return !l.Loopback() && len(netlab.Existing(l.Name)) > 0
}

func (l *Lab) logf(format string, a ...any) {
	if l.Log != nil {
		fmt.Fprintf(l.Log, format+"\n", a...)
	}
}

func (l *Lab) records() (map[string]proc.Record, error) { return proc.Load(l.pidsFile()) }

// lock serialises changes to the node processes: validate (in its own
// process) and a person at the CLI may start nodes at the same time, and a
// node must never get a second daemon.
func (l *Lab) lock() (func(), error) {
	l.mu.Lock()
	lf, err := os.OpenFile(filepath.Join(l.Dir, "pids.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		l.mu.Unlock()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
		l.mu.Unlock()
	}, nil
}

// saveRecord stores a node's daemon record; the caller holds lock().
func (l *Lab) saveRecord(node string, r proc.Record) error {
	recs, err := l.records()
	if err != nil {
		return err
	}
	recs[node] = r
	return proc.Save(l.pidsFile(), recs)
}

// ControlPath is the copy of the lab command that `lab up` leaves in the
// lab's directory. validate runs it to act out the lab's faults (kill,
// stop, partition ...), so the validate binary links none of the lab's code
// and a `go run` build of the lab need not outlive its run.
func (l *Lab) ControlPath() string { return filepath.Join(l.Dir, "bin", "lab") }

// InstallControl copies the lab command at exe to ControlPath.
func (l *Lab) InstallControl(exe string) error {
	src, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := l.ControlPath()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".lab-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// PostgresLogs is where a person finds PostgreSQL's own logs (the
// logging_collector's), with pg-N standing for the node.
func (l *Lab) PostgresLogs() string {
	if l.Boot() {
		// The machine's writable layer holds what it wrote.
		return filepath.Join(l.machineDir("pg-N"), "upper", userdata.CloudPaths().PGLogDir) + "/"
	}
	return filepath.Join(l.Dir, "nodes", "pg-N", "log", "postgresql") + "/"
}

// CopyLogs copies every node's log directory to dst/<node>, so a failure
// can still be read after the lab is gone.
func (l *Lab) CopyLogs(dst string) error {
	if l.Boot() {
		return l.copyBootLogs(dst)
	}
	for _, n := range l.Plan.Nodes {
		src := filepath.Dir(l.DaemonLog(n.Name))
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.CopyFS(filepath.Join(dst, n.Name), os.DirFS(src)); err != nil {
			return err
		}
	}
	return nil
}
