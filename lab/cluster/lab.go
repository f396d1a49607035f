// Package cluster runs a whole pgha cluster (3 etcd, 3 Patroni/PostgreSQL,
// 2 HAProxy) on one Linux machine, from the same files the userdata
// renderers put into the cloud-init documents. Each node is its own host: a
// network namespace that holds the node's address from the IP plan. The
// command in lab/ drives it, and validate uses the same API for its faults.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/outputs"
	"github.com/pgha/pgha/topology"
	"github.com/pgha/pgha/userdata"
)

// DefaultName is the lab a user gets without --name.
const DefaultName = "pgha"

// StateRoot holds one directory per lab. It is under /var/lib, not /root,
// so the postgres and etcd users can traverse to their directories.
const StateRoot = "/var/lib/pgha-lab"

// ClientHost is the extra namespace users and validate connect from. Its
// address sits in the VPC, so pg_hba admits it like an application host.
const ClientHost = "client"

// ClientIP is the client namespace's address.
var ClientIP = netip.MustParseAddr("10.42.0.200")

// AZ names the lab gives the plan's zones in outputs.
func azName(i int) string { return fmt.Sprintf("lab-az%d", i+1) }

// Settings are chosen at `up` and kept in the state directory, so that
// every later command (status, start, faults) acts on the same cluster.
type Settings struct {
	Name            string    `json:"name"`
	Profile         string    `json:"profile"`
	SynchronousMode bool      `json:"synchronousMode"`
	Created         time.Time `json:"created"`
}

// Lab is one lab, named, with its state directory.
type Lab struct {
	Name     string
	Dir      string
	Settings Settings
	Plan     topology.Plan
	Net      netlab.Network
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
	if err := CheckName(name); err != nil {
		return nil, err
	}
	plan, err := topology.New(topology.DefaultVPCCIDR)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		Name:     name,
		Dir:      filepath.Join(StateRoot, name),
		Settings: Settings{Name: name, Profile: "fast"},
		Plan:     plan,
	}
	l.Net = netlab.Network{Lab: name, Prefix: plan.VPC, Hosts: Hosts(plan)}
	if b, err := os.ReadFile(l.settingsFile()); err == nil {
		if err := json.Unmarshal(b, &l.Settings); err != nil {
			return nil, fmt.Errorf("%s is damaged (%v); remove the lab with: go run ./lab down --name %s", l.settingsFile(), err, name)
		}
	}
	return l, nil
}

// FromOutputs finds the lab that wrote a stack's outputs (access kind
// "netns"), for validate's faults.
func FromOutputs(s outputs.Stack) (*Lab, error) {
	if s.Target != outputs.TargetLab || s.Access.Kind != outputs.AccessNetns || s.Access.LabDir == "" {
		return nil, errors.New("these outputs are not from a namespace lab (want target \"lab\", access kind \"netns\" and a labDir)")
	}
	l, err := New(filepath.Base(s.Access.LabDir))
	if err != nil {
		return nil, err
	}
	if l.Dir != filepath.Clean(s.Access.LabDir) {
		return nil, fmt.Errorf("output \"access\": labDir %q is not under %s", s.Access.LabDir, StateRoot)
	}
	return l, nil
}

// Hosts maps the IP plan to lab namespaces: one per node, with the node's
// planned address, plus the client.
func Hosts(plan topology.Plan) []netlab.Host {
	var hs []netlab.Host
	for _, n := range plan.Nodes {
		hs = append(hs, netlab.Host{Name: n.Name, IP: n.IP})
	}
	return append(hs, netlab.Host{Name: ClientHost, IP: ClientIP})
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
		TLSCertFile:       filepath.Join(d, "tls", "server.crt"),
		TLSKeyFile:        filepath.Join(d, "tls", "server.key"),
		HAProxyConfigFile: filepath.Join(d, "etc", "haproxy.cfg"),
	}
}

// Paths is NodePaths for this lab.
func (l *Lab) Paths(node string) userdata.Paths { return NodePaths(l.Dir, node) }

// DaemonLog is where a node's daemon writes stdout and stderr.
func (l *Lab) DaemonLog(node string) string {
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
		Name:            l.Name,
		Plan:            l.Plan,
		Profile:         l.Settings.Profile,
		SynchronousMode: l.Settings.SynchronousMode,
		// Only the cloud-init documents use the region (to fetch SSM
		// parameters); the lab's files do not mention it.
		Region: "us-east-1",
		Users:  userdata.DefaultUsers(),
		// On AWS these name SSM parameters; the lab's stand-ins are files.
		Secrets: userdata.SecretParams{
			SuperuserPassword:   "lab/superuser",
			ReplicationPassword: "lab/replication",
			RewindPassword:      "lab/rewind",
			AppPassword:         "lab/app",
			RestAPIPassword:     "lab/restapi",
			StatsPassword:       "lab/stats",
		},
	}
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
	return len(netlab.Existing(l.Name)) > 0
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
