package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/access"
	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/internal/nodefault"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/stackconfig"
	"github.com/pgha/pgha/internal/stackspec"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/lab/awsapi"
	"github.com/pgha/pgha/lab/boot"
	"github.com/pgha/pgha/lab/image"
	"github.com/pgha/pgha/lab/machine"
	"github.com/pgha/pgha/lab/netlab"
	"github.com/pgha/pgha/lab/proc"
	"github.com/pgha/pgha/lab/volume"
	"github.com/pgha/pgha/userdata"
)

// NetBoot is the booted lab: every node a Debian 12 machine (systemd-nspawn
// with real systemd) in its own network namespace, booting the user data
// the Pulumi program gives its EC2 instance, with the AWS it talks to
// stood in for on the lab's network (lab/boot).
const NetBoot = "boot"

// BootRegion is the region the booted lab's stack is configured with: the
// node's user data names it, and the stand-in SSM and EC2 endpoints answer
// under its names.
const BootRegion = "eu-west-1"

// bootUser is the Debian AMI's login user, as the program's readiness
// commands and validate log in.
const bootUser = "admin"

// standinHost is the stand-ins' host on the lab network (lab/boot).
const standinHost = "aws"

// standinIP is the stand-ins' address: .250 of the plan's first /24, next
// to nothing else of the plan.
func standinIP(plan topology.Plan) netip.Addr {
	a := plan.VPC.Addr().As4()
	a[3] = 250
	return netip.AddrFrom4(a)
}

// Boot reports whether the lab's nodes are booted machines.
func (l *Lab) Boot() bool { return l.Settings.Net == NetBoot }

func (l *Lab) bootDir(parts ...string) string {
	return filepath.Join(append([]string{l.Dir, "boot"}, parts...)...)
}

func (l *Lab) machineDir(node string) string { return l.bootDir("machines", node) }

// BootConfig is the stack config the booted lab is deployed with, in the
// form `pulumi config` keeps it: the lab boots what `pulumi up` would give
// EC2 for this config (TestBootUserDataIsTheProgramsByteForByte).
func BootConfig(s Settings) map[string]string {
	m := map[string]string{
		"aws:region": BootRegion,
		stackconfig.Full(stackconfig.KeyClusterName): s.Name,
		stackconfig.Full(stackconfig.KeyProfile):     s.Profile,
		stackconfig.Full("synchronousMode"):          fmt.Sprint(s.SynchronousMode),
		// Who may connect: the lab's client host.
		stackconfig.Full("allowedCidrs"): fmt.Sprintf(`["%s/32"]`, ClientIP),
	}
	// Said either way: the stack's default is on, the lab's is off.
	m[stackconfig.Full(stackconfig.KeyBackups)] = fmt.Sprint(s.Backups)
	if s.Workload != "" {
		m[stackconfig.Full(stackconfig.KeyWorkload)] = s.Workload
	}
	if s.PoolMode != "" {
		m[stackconfig.Full(stackconfig.KeyPoolMode)] = s.PoolMode
	}
	return m
}

// bootConfig is the booted lab's stack config, loaded as the program
// loads it.
func (l *Lab) bootConfig() (stackconfig.Config, error) {
	m := BootConfig(l.Settings)
	return stackconfig.Load(l.Name, func(k string) (string, bool) { v, ok := m[k]; return v, ok }, nil)
}

// BootSpec is the booted lab's stack: its config, the nodes' user data
// and, with backups, the repository in the lab account's bucket.
func (l *Lab) BootSpec() (*stackspec.Spec, error) {
	cfg, err := l.bootConfig()
	if err != nil {
		return nil, err
	}
	var in stackspec.Inputs
	if (cfg.Backups || cfg.Monitoring) && l.Settings.Account == "" {
		return nil, errors.New("a booted lab with backups or monitoring needs its AWS account id (Settings.Account): the bucket and the alert topic are named after it")
	}
	if cfg.Backups {
		if in.Backup, err = stackspec.AWSBackup(cfg, l.Settings.Account); err != nil {
			return nil, err
		}
	}
	if cfg.Monitoring {
		in.AlertTopicARN = stackspec.AlertTopicARN(cfg, "aws", l.Settings.Account)
	}
	return stackspec.Build(cfg, l.Name, in)
}

// BootMonitor is the booted lab's monitoring node, monitor-1, when its
// stack has one (pgha:monitoring, on by default, as on AWS). Like the
// program's, it is no node of the cluster (not in Plan.Nodes, not in the
// outputs' nodes), but a machine the lab boots, gates on and takes down
// like the others.
func (l *Lab) BootMonitor() (topology.Node, bool) {
	if !l.Boot() {
		return topology.Node{}, false
	}
	cfg, err := l.bootConfig()
	if err != nil || !cfg.Monitoring {
		return topology.Node{}, false
	}
	return l.Plan.Monitor(), true
}

// bootNodes are the machines of a booted lab: the cluster's nodes, then
// the monitoring node (stackspec.Spec.Nodes, in the lab's plan).
func (l *Lab) bootNodes() []topology.Node {
	nodes := slices.Clone(l.Plan.Nodes)
	if m, ok := l.BootMonitor(); ok {
		nodes = append(nodes, m)
	}
	return nodes
}

// bootPrerequisites lists what the booted lab needs on this machine.
func bootPrerequisites() []string {
	var out []string
	if os.Geteuid() != 0 {
		out = append(out, "not root: booted machines need root (systemd-nspawn, network namespaces, overlay mounts)")
	}
	for _, b := range []struct{ bin, pkg string }{
		{"ip", "iproute2"}, {"systemd-nspawn", "systemd-container"}, {"debootstrap", "debootstrap"},
		{"apt-ftparchive", "apt-utils"}, {"nsenter", "util-linux"},
	} {
		if _, err := lookBin(b.bin); err != nil {
			out = append(out, fmt.Sprintf("%s is missing: apt-get install -y %s", b.bin, b.pkg))
		}
	}
	return out
}

// upBoot builds the booted lab; Up has made the state directory.
func (l *Lab) upBoot(ctx context.Context, o UpOptions, res *UpResult, phase func(string, func() error) error) error {
	spec, err := l.BootSpec()
	if err != nil {
		return err
	}
	if o.EditUserData != nil {
		for node, doc := range spec.UserData {
			spec.UserData[node] = o.EditUserData(node, doc)
		}
	}
	var img image.Image
	if err := phase("image (Debian 12, cached)", func() error {
		img, err = image.Build(ctx, image.Options{Packages: userdata.AllPackages(), Progress: l.Log})
		return err
	}); err != nil {
		return err
	}
	if err := phase("network namespaces", func() error { return l.createBootNet() }); err != nil {
		return err
	}
	var st boot.State
	if err := phase("AWS stand-ins: account, CA, instances", func() error {
		st, err = l.writeBootState(spec, img, o)
		return err
	}); err != nil {
		return err
	}
	if err := phase("AWS stand-ins: IMDS, SSM, EC2, mirror", func() error { return l.startStandins(ctx, o.Control) }); err != nil {
		return err
	}
	var launched map[string]time.Time
	if err := phase("machines: create and boot", func() error {
		launched, err = l.bootMachines(ctx, st, img)
		return err
	}); err != nil {
		return err
	}
	var ready boot.ReadyResult
	gate := time.Now()
	if err := phase("readiness: cloud-init, boot script, 1+2", func() error {
		ready, err = l.bootReadiness(ctx, o)
		return err
	}); err != nil {
		return err
	}
	res.NodeReady, res.NodeCloudInit = map[string]time.Duration{}, map[string]time.Duration{}
	for node, at := range launched {
		if took, ok := ready.Took[node]; ok {
			res.NodeReady[node] = gate.Add(took).Sub(at)
		}
		if done, err := l.cloudInitDone(node); err == nil {
			res.NodeCloudInit[node] = done.Sub(at)
		}
	}
	s, err := l.bootOutputs(st, ready)
	if err != nil {
		return err
	}
	if lead, err := leaderOf(ready.ClusterState); err == nil {
		res.Leader = lead
	}
	return s.Write(l.OutputsFile())
}

// createBootNet makes the namespaces (nodes, the monitoring node, client
// and the stand-ins'), gives the stand-ins the metadata address, and every
// node the link-local route to it, as an EC2 instance has.
func (l *Lab) createBootNet() error {
	nw := l.Net
	if m, ok := l.BootMonitor(); ok {
		nw.Hosts = append(slices.Clone(nw.Hosts), netlab.Host{Name: m.Name, IP: m.IP})
	}
	if err := nw.Create(); err != nil {
		return err
	}
	if err := ipRun("-n", l.Namespace(standinHost), "addr", "add", boot.IMDSAddress.String()+"/32", "dev", "eth0"); err != nil {
		return err
	}
	for _, n := range l.bootNodes() {
		if err := ipRun("-n", l.Namespace(n.Name), "route", "add", boot.IMDSAddress.String()+"/32", "dev", "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// accountID is a random 12-digit account of the lab's own.
func accountID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(9e11))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%012d", n.Int64()+1e11), nil
}

// writeBootState writes what the stand-ins serve: the account (the
// operator validate acts as, with the policy docs/validate-aws.md gives;
// the tiers' roles with the program's own policies; the secrets as SSM
// parameters), the key pair, the instances with their user data, and the
// CA the machines trust.
func (l *Lab) writeBootState(spec *stackspec.Spec, img image.Image, o UpOptions) (boot.State, error) {
	var st boot.State
	if err := os.MkdirAll(l.bootDir("aws"), 0o700); err != nil {
		return st, err
	}
	// Chosen at up: the bucket's name in the user data carries it.
	acct := l.Settings.Account
	if acct == "" {
		return st, errors.New("the booted lab has no AWS account id in its settings")
	}
	ca, err := awsapi.NewCA("pgha lab " + l.Name)
	if err != nil {
		return st, err
	}
	caCert, caKey := l.bootDir("aws", "ca.crt"), l.bootDir("aws", "ca.key")
	if err := ca.WriteFiles(caCert, caKey); err != nil {
		return st, err
	}
	pub, err := l.bootKey()
	if err != nil {
		return st, err
	}
	// The operator's key, made here so it survives a restart of the
	// stand-ins (the outputs hand it to validate).
	scratch, err := awsapi.NewAccount(acct, BootRegion)
	if err != nil {
		return st, err
	}
	_ = scratch.AddUser("operator")
	key, err := scratch.CreateAccessKey("operator")
	if err != nil {
		return st, err
	}
	tags := map[string]string{outputs.TagProject: stackconfig.Namespace, outputs.TagStack: l.Name}
	st = boot.State{
		AccountID: acct, Region: BootRegion,
		Namespace: l.Namespace(standinHost), Address: standinIP(l.Plan),
		RepoDir: img.Repo, CACert: caCert, CAKey: caKey,
		Operator: boot.Operator{User: "pgha-operator", AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey,
			Policy: iampolicy.Validate(l.Name)},
		KeyPair:     boot.KeyPair{Name: l.Name + "-ssh", PublicKey: pub},
		Tags:        tags,
		APIAddrFile: l.bootDir("aws", "api.addr"),
		TrailLog:    l.bootDir("aws", "trail.log"),
		IMDSLog:     l.bootDir("aws", "imds.log"),
	}
	var backupPolicy map[string]string
	if b := spec.Cluster.Backup; b != nil {
		// The stack's bucket, with its own KMS key, and the PostgreSQL
		// role's policy for it: what components.Backups creates.
		key := awsapi.NewKMSKeyARN("aws", BootRegion, acct)
		st.Buckets = []boot.Bucket{{Name: b.Bucket, KMSKeyARN: key, BucketKeyEnabled: true}}
		st.ObjectStoreDir = l.bootDir("aws", "s3")
		backupPolicy = map[string]string{"backups": iampolicy.BackupRepo("aws", BootRegion, b.Bucket, stackspec.BackupPrefix(spec.Config), key)}
	}
	roles := []topology.Role{topology.RoleEtcd, topology.RolePatroni, topology.RoleHAProxy}
	mon := spec.Cluster.Monitoring
	if mon != nil {
		roles = append(roles, topology.RoleMonitor)
		if mon.AlertTopicARN != "" {
			// The stack's alert topic, which components.AlertTopic
			// creates; what is published to it lands in the lab's files.
			st.Topics = []string{spec.Config.AlertTopicName()}
			st.MessageDir = l.bootDir("aws", "sns")
		}
	}
	for _, r := range roles {
		name := fmt.Sprintf("pgha-%s-%s", l.Name, r)
		role := boot.Role{Name: name, Profile: name, Policy: spec.TierPolicy(r, "aws", acct)}
		switch {
		case r == topology.RolePatroni:
			role.Policies = backupPolicy
		case r == topology.RoleMonitor && mon.AlertTopicARN != "":
			// What program.go's deployMonitor attaches besides its secrets
			// policy: sns:Publish on the alert topic, and nothing else.
			role.Policies = map[string]string{"alerts": iampolicy.PublishAlerts(mon.AlertTopicARN)}
		}
		st.Roles = append(st.Roles, role)
	}
	for _, s := range userdata.Secrets {
		st.Parameters = append(st.Parameters, boot.Parameter{Name: spec.Cluster.Secrets[s.Name], ValueFile: filepath.Join(l.secretsDir(), s.Name)})
	}
	// The nodes' TLS material, where the program's components.ClusterTLS
	// puts it.
	st.Parameters = append(st.Parameters, boot.Parameter{Name: spec.Cluster.TLS.CA(), ValueFile: l.TLSCAFile()})
	nodes := l.Plan.Nodes
	if mon != nil {
		m := l.Plan.Monitor()
		nodes = append(slices.Clone(nodes), m)
		// The namespace lab issues it only where it runs its own
		// Prometheus; the booted lab's comes from SSM.
		if err := l.issueNodeTLS(m); err != nil {
			return st, err
		}
	}
	for _, n := range nodes {
		cert, key := l.NodeTLSFiles(n.Name)
		st.Parameters = append(st.Parameters,
			boot.Parameter{Name: spec.Cluster.TLS.Certificate(n.Name), ValueFile: cert},
			boot.Parameter{Name: spec.Cluster.TLS.Key(n.Name), ValueFile: key})
	}
	cfg := spec.Config
	itype := map[topology.Role]string{topology.RoleEtcd: cfg.EtcdInstanceType, topology.RolePatroni: cfg.PatroniInstanceType,
		topology.RoleHAProxy: cfg.HAProxyInstanceType, topology.RoleMonitor: cfg.MonitoringType}
	if err := os.MkdirAll(l.bootDir("userdata"), 0o755); err != nil {
		return st, err
	}
	for _, n := range nodes {
		// Packed as the program packs it for EC2: cloud-init unpacks it.
		packed, err := userdata.Pack([]byte(spec.UserData[n.Name]))
		if err != nil {
			return st, fmt.Errorf("%s: %w", n.Name, err)
		}
		file := l.bootDir("userdata", n.Name+".yml.gz")
		if err := os.WriteFile(file, packed, 0o644); err != nil {
			return st, err
		}
		t := map[string]string{"Name": n.Name, outputs.TagRole: string(n.Role)}
		for k, v := range tags {
			t[k] = v
		}
		st.Instances = append(st.Instances, boot.Instance{
			ID: awsapi.NewInstanceID(), Node: n.Name, IP: n.IP, AZ: BootRegion + string(rune('a'+n.AZIndex)),
			Profile: fmt.Sprintf("pgha-%s-%s", l.Name, n.Role), Type: itype[n.Role],
			SubnetCIDR: l.Plan.SubnetOf(n).CIDR.String(), VPCCIDR: l.Plan.VPC.String(), Tags: t,
			UserDataFile: file, MachineDir: l.machineDir(n.Name),
		})
	}
	if o.EditPolicy != nil {
		for i := range st.Roles {
			st.Roles[i].Policy = o.EditPolicy(st.Roles[i].Name, st.Roles[i].Policy)
		}
	}
	return st, st.Save(l.bootDir("aws", "state.json"))
}

// issueNodeTLS issues a node's certificate with the lab's cluster CA, as
// generateTLS does for the cluster's nodes, unless it has one.
func (l *Lab) issueNodeTLS(n topology.Node) error {
	cert, key := l.NodeTLSFiles(n.Name)
	if _, err := os.Stat(cert); err == nil {
		if _, err := os.Stat(key); err == nil {
			return nil
		}
	}
	caCert, err := os.ReadFile(l.TLSCAFile())
	if err != nil {
		return missingTLS(err)
	}
	caKey, err := os.ReadFile(l.tlsDir("ca.key"))
	if err != nil {
		return missingTLS(err)
	}
	ca, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		return err
	}
	c, k, err := ca.Issue(pki.NodeLeaf(l.Plan, n, nil))
	if err != nil {
		return fmt.Errorf("certificate of %s: %w", n.Name, err)
	}
	return writeAll(map[string][]byte{n.Name + ".crt": c, n.Name + ".key": k}, l.tlsDir())
}

// bootKey makes the stack's SSH key pair (the program generates an
// ED25519 key too) and returns its public half.
func (l *Lab) bootKey() (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(l.bootDir("ssh"), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(l.bootDir("ssh", "id_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
}

// startStandins runs `lab aws-standin` (the control binary) as one of the
// lab's processes, and waits until its endpoints listen.
func (l *Lab) startStandins(ctx context.Context, control string) error {
	if control == "" {
		return errors.New("the booted lab runs its AWS stand-ins as `lab aws-standin`: UpOptions.Control must name the lab command")
	}
	if err := l.InstallControl(control); err != nil {
		return err
	}
	_ = os.Remove(l.bootDir("aws", "api.addr"))
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	r, err := proc.Start(proc.Spec{
		Argv: []string{l.ControlPath(), "aws-standin", "--name", l.Name},
		Env:  []string{"PATH=" + basePath, "LANG=C.UTF-8"}, Dir: "/",
		Log: l.bootDir("aws", "standin.log"), Marker: "aws-standin",
	})
	if err == nil {
		err = l.saveRecord(standinHost, r)
	}
	unlock()
	if err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, func(context.Context) error {
		if !r.Alive() {
			return fmt.Errorf("the AWS stand-ins exited; last lines of %s:\n%s", r.Log, tail(r.Log, 15))
		}
		if _, err := os.Stat(l.bootDir("aws", "api.addr")); err != nil {
			return errors.New("the AWS stand-ins do not listen yet")
		}
		return nil
	})
}

// ServeStandins is `lab aws-standin`: the lab's AWS stand-ins, until ctx
// ends.
func (l *Lab) ServeStandins(ctx context.Context) error {
	st, err := boot.LoadState(l.bootDir("aws", "state.json"))
	if err != nil {
		return fmt.Errorf("lab %q has no AWS stand-in state (is it a booted lab? go run ./lab up --boot): %w", l.Name, err)
	}
	return boot.Serve(ctx, st)
}

// bootMachines creates every node's machine on the image and boots them
// all at once, as EC2 launches the stack's instances; it returns when each
// was launched.
func (l *Lab) bootMachines(ctx context.Context, st boot.State, img image.Image) (map[string]time.Time, error) {
	nodes := l.bootNodes()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	at := make([]time.Time, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			at[i], errs[i] = l.launch(ctx, st, img, n)
		})
	}
	wg.Wait()
	launched := map[string]time.Time{}
	for i, n := range nodes {
		launched[n.Name] = at[i]
	}
	return launched, errors.Join(errs...)
}

// launch creates a node's machine from the image and boots it, as EC2
// launches an instance: it returns when the machine was started.
func (l *Lab) launch(ctx context.Context, st boot.State, img image.Image, n topology.Node) (time.Time, error) {
	ca, err := os.ReadFile(st.CACert)
	if err != nil {
		return time.Time{}, err
	}
	var hosts []string
	names := append([]string{image.MirrorHost}, awsapi.EndpointNames(BootRegion)...)
	for _, b := range st.Buckets {
		// pgBackRest addresses the bucket as AWS's virtual host; a hosts
		// file has no wildcards, so each bucket gets its line.
		names = append(names, awsapi.BucketHost(b.Name, BootRegion))
	}
	for _, name := range names {
		hosts = append(hosts, st.Address.String()+" "+name)
	}
	disks, err := l.dataDisks(n)
	if err != nil {
		return time.Time{}, err
	}
	m, err := machine.Create(machine.Spec{Name: n.Name, Image: img.RootFS, StateDir: l.machineDir(n.Name),
		Netns: filepath.Join(access.NetnsDir, l.Namespace(n.Name)), Hosts: hosts, CACerts: [][]byte{ca}, Disks: disks})
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", n.Name, err)
	}
	at := time.Now()
	if err := m.Start(ctx); err != nil {
		return at, fmt.Errorf("%s: %w", n.Name, err)
	}
	return at, nil
}

// Lab data volumes, sparse: the lab's databases are small, and a smaller
// file system formats faster than the stack's default sizes would.
var labDataSize = map[topology.Role]int64{topology.RoleEtcd: 1 << 30, topology.RolePatroni: 4 << 30}

// dataVolume is the file standing in for a node's EBS data volume.
func (l *Lab) dataVolume(node string) string { return l.bootDir("volumes", node+".img") }

// dataDisks attaches a node's data volume, as the program attaches an EBS
// volume to its instance, where userdata's boot looks for it. It outlives
// the node's machine: a replaced node gets the same volume back.
func (l *Lab) dataDisks(n topology.Node) ([]machine.Disk, error) {
	if _, ok := userdata.DataVolumeOf(n.Role); !ok {
		return nil, nil
	}
	dev, err := volume.Attach(l.dataVolume(n.Name), labDataSize[n.Role])
	if err != nil {
		return nil, fmt.Errorf("%s's data volume: %w", n.Name, err)
	}
	// The name a Xen instance shows a volume attached as /dev/sdf.
	return []machine.Disk{{Device: dev, Path: strings.Replace(userdata.DataDevice, "/dev/sd", "/dev/xvd", 1)}}, nil
}

// cloudInitDone is when cloud-init on a node finished its last stage (the
// one that installs the packages and runs the boot script), from the
// status file it keeps.
func (l *Lab) cloudInitDone(node string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(l.machineDir(node), "upper", "var", "lib", "cloud", "data", "status.json"))
	if err != nil {
		return time.Time{}, err
	}
	var st struct {
		V1 map[string]json.RawMessage `json:"v1"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return time.Time{}, err
	}
	var final struct {
		Finished *float64 `json:"finished"`
	}
	if err := json.Unmarshal(st.V1["modules-final"], &final); err != nil || final.Finished == nil {
		return time.Time{}, fmt.Errorf("%s: cloud-init has not finished", node)
	}
	sec := math.Floor(*final.Finished)
	return time.Unix(int64(sec), int64((*final.Finished-sec)*1e9)), nil
}

// bootReadiness is `pulumi up`'s readiness gate, over the machines' real
// sshd, through haproxy-1 as the jump host, from the client's namespace:
// every node and, as program.go's gate, the monitoring node.
func (l *Lab) bootReadiness(ctx context.Context, o UpOptions) (boot.ReadyResult, error) {
	return l.readiness(ctx, l.bootNodes(), l.Plan.ByRole(topology.RoleHAProxy)[0], o.BootTimeout)
}

// readiness waits for nodes through the jump host, then for the cluster.
func (l *Lab) readiness(ctx context.Context, of []topology.Node, jump topology.Node, timeout time.Duration) (boot.ReadyResult, error) {
	dial, err := access.Netns(l.ClientNamespace())
	if err != nil {
		return boot.ReadyResult{}, err
	}
	signer, err := l.bootSigner()
	if err != nil {
		return boot.ReadyResult{}, err
	}
	var nodes []boot.ReadyNode
	for _, n := range of {
		nodes = append(nodes, boot.ReadyNode{Name: n.Name, Addr: net.JoinHostPort(n.IP.String(), fmt.Sprint(topology.PortSSH))})
	}
	pg1 := l.Plan.ByRole(topology.RolePatroni)[0]
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	return boot.Ready(ctx, boot.ReadyOptions{
		Dial: dial, Jump: net.JoinHostPort(jump.IP.String(), fmt.Sprint(topology.PortSSH)),
		User: bootUser, Signer: signer, Nodes: nodes,
		ReadyMarker: userdata.ReadyMarker, FailedMarker: userdata.FailedMarker,
		ClusterCheckNode: pg1.Name, PatroniAPI: "https://" + net.JoinHostPort(pg1.IP.String(), fmt.Sprint(topology.PortPatroniAPI)),
		Timeout: timeout, Log: l.Log,
	})
}

func (l *Lab) bootSigner() (ssh.Signer, error) {
	b, err := os.ReadFile(l.bootDir("ssh", "id_ed25519"))
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(b)
}

// bootOutputs are the stack outputs as the program exports them, plus
// where validate finds the EC2 stand-in.
func (l *Lab) bootOutputs(st boot.State, ready boot.ReadyResult) (outputs.Stack, error) {
	creds, err := l.Credentials()
	if err != nil {
		return outputs.Stack{}, err
	}
	key, err := os.ReadFile(l.bootDir("ssh", "id_ed25519"))
	if err != nil {
		return outputs.Stack{}, err
	}
	ca, err := os.ReadFile(st.CACert)
	if err != nil {
		return outputs.Stack{}, err
	}
	apiAddr, err := os.ReadFile(st.APIAddrFile)
	if err != nil {
		return outputs.Stack{}, err
	}
	jump := l.Plan.ByRole(topology.RoleHAProxy)[0]
	h := jump.IP.String()
	s := outputs.Stack{
		Target: outputs.TargetLab, ClusterName: l.Name, Region: BootRegion,
		Profile: l.Settings.Profile, SynchronousMode: l.Settings.SynchronousMode, VPCCIDR: l.Plan.VPC.String(),
		WriteEndpoint: outputs.Endpoint{Host: h, Port: topology.PortWrite},
		ReadEndpoint:  outputs.Endpoint{Host: h, Port: topology.PortRead},
		StatsEndpoint: outputs.Endpoint{Host: h, Port: topology.PortStats},
		// The user data's PgBouncer (pgbouncer.service).
		PoolerEndpoint: &outputs.Endpoint{Host: h, Port: topology.PortPooler},
		Access: outputs.Access{Kind: outputs.AccessSSH, JumpHost: net.JoinHostPort(h, fmt.Sprint(topology.PortSSH)),
			JumpUser: bootUser, JumpHostKeys: ready.HostKeys[jump.Name],
			// The jump host is on the lab network: validate reaches it
			// from the client's namespace, as an operator from outside.
			Namespace: l.ClientNamespace(), LabDir: l.Dir,
			AWSAPI: &outputs.AWSAPI{Endpoint: "https://" + strings.TrimSpace(string(apiAddr)), CABundle: string(ca),
				AccessKeyID: st.Operator.AccessKeyID, SecretAccessKey: st.Operator.SecretAccessKey}},
		Credentials:   creds,
		SSHPrivateKey: string(key),
	}
	if err := l.trustOutputs(&s); err != nil {
		return outputs.Stack{}, err
	}
	var entry []string
	for _, n := range l.Plan.ByRole(topology.RoleHAProxy) {
		entry = append(entry, n.IP.String())
	}
	s.Connection = outputs.NewConnection(creds.AppName, creds.AppDatabase, entry)
	byNode := map[string]boot.Instance{}
	for _, in := range st.Instances {
		byNode[in.Node] = in
	}
	for _, n := range l.Plan.Nodes {
		in := byNode[n.Name]
		on := outputs.Node{Name: n.Name, Role: n.Role, AZ: in.AZ, PrivateIP: n.IP.String(), InstanceID: in.ID, HostKeys: ready.HostKeys[n.Name],
			// Not on AWS: from here validate also watches a partitioned node.
			Namespace: l.Namespace(n.Name)}
		if n.Tier == topology.Public {
			on.PublicIP = n.IP.String() // no Elastic IPs in the lab: the address clients and SSH use
		}
		s.Nodes = append(s.Nodes, on)
	}
	spec, err := l.BootSpec()
	if err != nil {
		return outputs.Stack{}, err
	}
	if l.Backups() {
		b := spec.Cluster.Backup
		s.Backups = &outputs.Backups{Bucket: b.Bucket, Path: b.Path, Region: b.Region, KeyARN: st.BackupKeyARN()}
	}
	if mon := spec.Cluster.Monitoring; mon != nil {
		// As program.go's stackOutputs shapes them: the monitoring node's
		// Prometheus, private (reached through the jump host), and the
		// topic it pages through. monitor-1 is none of the nodes.
		s.PrometheusEndpoint = fmt.Sprintf("https://%s:%d", l.Plan.Monitor().IP.String(), topology.PortPrometheus)
		s.AlertTopicARN = mon.AlertTopicARN
	}
	var cs any
	if err := json.Unmarshal([]byte(ready.ClusterState), &cs); err == nil {
		s.ClusterState = cs
	}
	return s, s.Validate()
}

func leaderOf(clusterState string) (string, error) {
	var c struct {
		Members []struct{ Name, Role string } `json:"members"`
	}
	if err := json.Unmarshal([]byte(clusterState), &c); err != nil {
		return "", err
	}
	for _, m := range c.Members {
		if m.Role == "leader" {
			return m.Name, nil
		}
	}
	return "", errors.New("no leader")
}

// bootMachine opens a node's machine.
func (l *Lab) bootMachine(node string) (*machine.Machine, error) {
	return machine.Open(l.machineDir(node))
}

// downBoot takes the machines and their mounts away before Down removes
// the rest: nothing may be deleted through a mounted root.
func (l *Lab) downBoot() []error {
	var errs []error
	ents, _ := os.ReadDir(l.bootDir("machines"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, e := range ents {
		wg.Go(func() {
			if err := machine.RemoveState(filepath.Join(l.bootDir("machines"), e.Name())); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("machine %s: %w", e.Name(), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) == 0 {
		// The machines are gone; their volumes go with the lab.
		if err := volume.DetachUnder(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// bootLeftovers are machine processes, mounts, cgroups or loop devices of
// the lab still there.
func (l *Lab) bootLeftovers() []string {
	lo, err := machine.FindLeftovers(l.Dir)
	if err != nil {
		return []string{"cannot look for machine leftovers: " + err.Error()}
	}
	var out []string
	for _, m := range lo.Mounts {
		out = append(out, "mount "+m)
	}
	for _, p := range lo.Processes {
		out = append(out, fmt.Sprintf("pid %d (%s)", p.PID, p.Why))
	}
	// Every machine this lab may have booted, monitor-1 included: its
	// config may be gone with the state directory.
	var machines []topology.Node
	if l.Boot() {
		machines = append(slices.Clone(l.Plan.Nodes), l.Plan.Monitor())
	}
	for _, n := range machines {
		left, err := machine.CgroupsLeft(machine.Spec{Name: n.Name, StateDir: l.machineDir(n.Name)})
		if err != nil {
			out = append(out, "cannot look for machine cgroups: "+err.Error())
			break
		}
		for _, c := range left {
			out = append(out, "cgroup "+c)
		}
	}
	loops, err := volume.Under(l.Dir)
	if err != nil {
		out = append(out, "cannot list loop devices: "+err.Error())
	}
	for _, lp := range loops {
		out = append(out, fmt.Sprintf("loop device %s (%s)", lp.Device, lp.File))
	}
	sort.Strings(out)
	return out
}

func ipRun(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}

// unit is the systemd unit of a role's daemon on a booted node.
func unit(r topology.Role) string { return string(r) + ".service" }

// units are the units `status` shows for a booted node: its daemon's, or
// the monitoring node's Prometheus and Alertmanager.
func units(r topology.Role) []string {
	if r == topology.RoleMonitor {
		return []string{"prometheus.service", "prometheus-alertmanager.service"}
	}
	return []string{unit(r)}
}

// bootKill crashes a node's daemon as validate's AWS kill does (the same
// script): SIGKILL to the daemon and, on a Patroni node, the postmaster it
// detached, and keeps the unit from restarting until `lab start`.
func (l *Lab) bootKill(ctx context.Context, n topology.Node) error {
	return l.bootScript(ctx, n, "kill", nodefault.KillScript)
}

// bootScript runs one of nodefault's scripts for n's daemon on its machine.
func (l *Lab) bootScript(ctx context.Context, n topology.Node, what string, script func(nodefault.KillSpec) string) error {
	m, err := l.bootMachine(n.Name)
	if err != nil {
		return err
	}
	k, err := nodefault.SpecFor(n.Role, userdata.CloudPaths())
	if err != nil {
		return err
	}
	if out, err := m.RunScript(ctx, script(k)); err != nil {
		return fmt.Errorf("%s %s: %s", what, n.Name, lastLine(out, err))
	}
	return nil
}

// lastLine is what a failed script said last (its own message, e.g.
// "nothing to kill: ..."), or the error when it said nothing.
func lastLine(out []byte, err error) string {
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[len(lines)-1] != "" {
		return lines[len(lines)-1]
	}
	return err.Error()
}

// bootKillPostgres SIGKILLs the postmaster alone; Patroni lives.
func (l *Lab) bootKillPostgres(ctx context.Context, n topology.Node) error {
	if n.Role != topology.RolePatroni {
		return fmt.Errorf("%s runs no PostgreSQL", n.Name)
	}
	return l.bootScript(ctx, n, "kill postgres", func(nodefault.KillSpec) string {
		return nodefault.KillPostgresScript(userdata.CloudPaths().PGDataDir)
	})
}

// bootStop shuts the machine down cleanly, as stopping the instance would.
func (l *Lab) bootStop(ctx context.Context, n topology.Node) error {
	m, err := l.bootMachine(n.Name)
	if err != nil {
		return err
	}
	if !m.Running() {
		return nil
	}
	return m.Poweroff(time.Minute)
}

// bootStart boots a stopped machine, or starts a killed daemon again on a
// running one; ErrRunning when both run.
func (l *Lab) bootStart(ctx context.Context, n topology.Node) error {
	m, err := l.bootMachine(n.Name)
	if err != nil {
		return err
	}
	if !m.Running() {
		if err := m.Start(ctx); err != nil {
			return err
		}
		return m.WaitBooted(ctx, 2*time.Minute)
	}
	if _, err := m.Exec(ctx, "systemctl", "is-active", "--quiet", unit(n.Role)); err == nil {
		return fmt.Errorf("%s: %w", n.Name, ErrRunning)
	}
	return l.bootScript(ctx, n, "start", nodefault.RestartScript)
}

// bootProcess is a node's row in `status`: its machine, and its daemon.
func (l *Lab) bootProcess(ctx context.Context, n topology.Node) string {
	m, err := l.bootMachine(n.Name)
	if err != nil {
		return "no machine"
	}
	if !m.Running() {
		return "powered off"
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	us := units(n.Role)
	// One line per unit, in order, whatever their states.
	out, _ := m.Exec(cctx, append([]string{"systemctl", "is-active"}, us...)...)
	states := strings.Fields(string(out))
	var parts []string
	for i, u := range us {
		st := "unknown"
		if i < len(states) {
			st = states[i]
		}
		parts = append(parts, u+" "+st)
	}
	return fmt.Sprintf("machine up (pid %d), %s", m.PID(), strings.Join(parts, ", "))
}

// bootMonitorStatus is the monitoring node's row in `status` of a booted
// lab (false when the stack has none): its machine and units, its link,
// and how many pages the SNS stand-in has received from it.
func (l *Lab) bootMonitorStatus(ctx context.Context) (NodeStatus, bool) {
	m, ok := l.BootMonitor()
	if !ok {
		return NodeStatus{}, false
	}
	s := NodeStatus{Name: m.Name, Role: string(m.Role), IP: m.IP.String(), Process: l.bootProcess(ctx, m), Link: "up", Log: l.DaemonLog(m.Name)}
	if cut, err := l.Net.IsCut(m.Name); err == nil && cut {
		s.Link = "cut"
	}
	if f, err := l.AlertMessageFile(); err == nil && f != "" {
		if msgs, err := awsapi.ReadMessages(f); err == nil {
			s.PGState = fmt.Sprintf("%d pages to SNS", len(msgs))
		}
	}
	return s, true
}

// AlertMessageFile is where the booted lab's SNS stand-in appends every
// message published to the stack's alert topic (one JSON line each,
// awsapi.ReadMessages): what its subscribers would have been paged.
// "" when the stack has no monitoring node.
func (l *Lab) AlertMessageFile() (string, error) {
	if !l.Boot() {
		return "", fmt.Errorf("lab %q is not a booted lab: only the booted lab's monitoring node pages through SNS", l.Name)
	}
	st, err := boot.LoadState(l.bootDir("aws", "state.json"))
	if err != nil {
		return "", err
	}
	if len(st.Topics) == 0 {
		return "", nil
	}
	return st.MessageFile(st.Topics[0]), nil
}

// BootRunScript runs a shell script as root inside a booted node's
// machine (nsenter, not SSH: the monitoring node's host keys are in no
// output) and returns what it printed, stdout and stderr together.
func (l *Lab) BootRunScript(ctx context.Context, node, script string) ([]byte, error) {
	if !l.Boot() {
		return nil, fmt.Errorf("lab %q is not a booted lab", l.Name)
	}
	m, err := l.bootMachine(node)
	if err != nil {
		return nil, err
	}
	return m.RunScript(ctx, script)
}

// bootSavedOutputs are the outputs `up` wrote (they hold what only the
// readiness gate could read: host keys, instance ids), with the cluster as
// it is now.
func (l *Lab) bootSavedOutputs(ctx context.Context) (outputs.Stack, error) {
	s, err := outputs.Load(l.OutputsFile())
	if err != nil {
		return outputs.Stack{}, err
	}
	if p, err := l.Probe(); err == nil {
		if cl, err := p.Cluster(ctx); err == nil {
			s.ClusterState = cl
		}
	}
	return s, nil
}

// copyBootLogs keeps each machine's console and the stand-ins' logs (the
// trail of every AWS call, the metadata requests).
func (l *Lab) copyBootLogs(dst string) error {
	copyFile := func(src, to string) error {
		b, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	}
	for _, n := range l.bootNodes() {
		if err := copyFile(l.DaemonLog(n.Name), filepath.Join(dst, n.Name, "console.log")); err != nil {
			return err
		}
	}
	files := []string{"standin.log", "trail.log", "imds.log"}
	// What the monitoring node paged.
	pages, _ := filepath.Glob(l.bootDir("aws", "sns", "*.jsonl"))
	for _, p := range pages {
		files = append(files, filepath.Join("sns", filepath.Base(p)))
	}
	for _, f := range files {
		if err := copyFile(l.bootDir("aws", f), filepath.Join(dst, "aws", f)); err != nil {
			return err
		}
	}
	return nil
}
