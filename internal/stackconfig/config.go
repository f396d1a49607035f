// Package stackconfig reads and checks the pgha stack configuration. Every
// problem is found before the program registers a single resource, and every
// message names the key and the command that fixes it, because a half-built
// cluster over three AZs is the most expensive way to report a typo.
package stackconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// Namespace is the project's config namespace (the name in Pulumi.yaml).
const Namespace = "pgha"

// RegionKey is the AWS provider's own key.
const RegionKey = "aws:region"

// Keys of the pgha namespace. Pulumi.yaml declares each with a type, a
// description and (except allowedCidrs) a default; a test keeps them in step.
const (
	KeyClusterName         = "clusterName"
	KeyVPCCIDR             = "vpcCidr"
	KeyAllowedCIDRs        = "allowedCidrs"
	KeyAllowWorldAccess    = "allowWorldAccess"
	KeyProfile             = "profile"
	KeySynchronousMode     = "synchronousMode"
	KeyWatchdog            = "watchdog"
	KeyWorkload            = "workload"
	KeyPoolMode            = "poolMode"
	KeyNATGateways         = "natGateways"
	KeyEtcdInstanceType    = "etcdInstanceType"
	KeyPatroniInstanceType = "patroniInstanceType"
	KeyHAProxyInstanceType = "haproxyInstanceType"
	KeyEtcdVolumeSize      = "etcdVolumeSize"
	KeyPatroniVolumeSize   = "patroniVolumeSize"
	KeyHAProxyVolumeSize   = "haproxyVolumeSize"
	KeyEtcdDataSize        = "etcdDataVolumeSize"
	KeyPatroniDataSize     = "patroniDataVolumeSize"
	KeyProtectData         = "protectDataVolumes"
	KeyJumpHost            = "jumpHost"
	KeyBackups             = "backups"
	KeyBackupBucket        = "backupBucket"
	KeyProtectBackups      = "protectBackups"
	KeyBackupFull          = "backupFullSchedule"
	KeyBackupDiff          = "backupDiffSchedule"
	KeyBackupRetention     = "backupRetentionFull"
	KeyNetworkLoadBalancer = "networkLoadBalancer"
	KeySSHPublicKey        = "sshPublicKey"
	KeyAMI                 = "amiId"
	KeyMonitoring          = "monitoring"
	KeyMonitoringType      = "monitoringInstanceType"
	KeyMonitoringVolume    = "monitoringVolumeSize"
	KeyMonitoringRetention = "monitoringRetention"
	KeyAlertEmails         = "alertEmails"
)

// PasswordKeys are the optional config secrets, one per password of the
// cluster (userdata.Secrets); each is generated when absent.
var PasswordKeys = func() []string {
	var out []string
	for _, s := range userdata.Secrets {
		out = append(out, s.ConfigKey)
	}
	return out
}()

// NAT gateway layouts.
const (
	NATSingle = "single" // one gateway in AZ 1: cheaper, but AZ 1 down cuts private egress
	NATPerAZ  = "perAz"  // one per AZ: no cross-AZ dependency for apt/SSM
)

// Defaults. Pulumi.yaml repeats them for the CLI; Load applies them so the
// program behaves the same when the schema is absent (tests, inline programs).
const (
	DefaultClusterName         = "pgha"
	DefaultProfile             = "fast"
	DefaultWatchdog            = userdata.WatchdogAutomatic
	DefaultWorkload            = userdata.DefaultWorkload
	DefaultPoolMode            = userdata.PoolTransaction
	DefaultSynchronousMode     = true
	DefaultNATGateways         = NATSingle
	DefaultEtcdInstanceType    = "t3.small"
	DefaultPatroniInstanceType = "t3.medium"
	DefaultHAProxyInstanceType = "t3.small"
	DefaultEtcdVolumeSize      = 10
	DefaultPatroniVolumeSize   = 20
	DefaultHAProxyVolumeSize   = 10
	DefaultEtcdDataSize        = 8
	DefaultPatroniDataSize     = 50
	DefaultProtectData         = true
	DefaultJumpHost            = "haproxy-1"
	DefaultBackups             = true
	DefaultProtectBackups      = true
	DefaultBackupFull          = "Sun *-*-* 02:00:00"
	DefaultBackupDiff          = "Mon..Sat *-*-* 02:00:00"
	DefaultBackupRetention     = 2
	DefaultMonitoring          = true
	DefaultMonitoringType      = "t3.small"
	// Prometheus keeps its samples on the root volume: about 1-2 bytes per
	// sample, 21 targets of a few thousand series every 15 s is well under
	// 5 GiB for DefaultMonitoringRetention.
	DefaultMonitoringVolume    = 20
	DefaultMonitoringRetention = userdata.DefaultRetention
)

// Volume bounds in GiB: the Debian 12 AMI's root snapshot is 8 GiB, and gp3
// stops at 16 TiB.
const (
	MinVolumeSize = 8
	MaxVolumeSize = 16384
	// A data volume starts empty: gp3's own minimum.
	MinDataVolumeSize = 1
)

// Config is the checked configuration.
type Config struct {
	Stack            string
	Region           string
	ClusterName      string
	VPCCIDR          string
	Plan             topology.Plan
	AllowedCIDRs     []string
	AllowWorldAccess bool
	Profile          string
	// Watchdog is Patroni's watchdog mode (userdata.Watchdog*).
	Watchdog string
	// Workload is the profile PostgreSQL is tuned with for its instance
	// type (userdata.Workload*).
	Workload string
	// PoolMode is PgBouncer's pool_mode (userdata.Pool*).
	PoolMode            string
	SynchronousMode     bool
	NATGateways         string
	EtcdInstanceType    string
	PatroniInstanceType string
	HAProxyInstanceType string
	EtcdVolumeSize      int
	PatroniVolumeSize   int
	HAProxyVolumeSize   int
	// The etcd and PostgreSQL nodes keep their data on volumes of their
	// own, which outlive a replaced instance; protected from `pulumi
	// destroy` unless ProtectData is off.
	EtcdDataSize    int
	PatroniDataSize int
	ProtectData     bool
	// Backups creates the pgBackRest repository: a bucket of the stack's,
	// named BackupBucket (empty: derived in BucketName), protected from
	// `pulumi destroy` unless ProtectBackups is off.
	Backups        bool
	BackupBucket   string
	ProtectBackups bool
	// The scheduled backups (systemd calendar events; empty: none of that
	// kind) and how many full backups the repository keeps.
	BackupFull, BackupDiff string
	BackupRetention        int
	// JumpHost is the HAProxy node `pulumi up`'s readiness gate reaches
	// the private nodes through; the other one when its AZ is lost.
	JumpHost            string
	NetworkLoadBalancer bool
	SSHPublicKey        string // empty: the program generates a key pair
	AMI                 string // empty: the AMI the stack runs, or the newest Debian 12 AMI
	// Monitoring adds the monitoring node (Prometheus, in a private subnet,
	// reached through the jump host) and the exporters on every node.
	Monitoring          bool
	MonitoringType      string
	MonitoringVolume    int
	MonitoringRetention string
	// AlertEmails are subscribed to the alert topic (pgha:monitoring).
	AlertEmails []string
	// Passwords holds the configured password secrets by key; a missing key
	// means "generate it".
	Passwords map[string]string
}

// Getter returns a raw config value by its full key ("pgha:vpcCidr").
// Structured values (lists) arrive as JSON, as Pulumi passes them.
type Getter func(key string) (string, bool)

// Error lists every problem in the configuration, one per line.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid stack configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// Full returns the namespaced form of a pgha key.
func Full(key string) string { return Namespace + ":" + key }

var (
	calendarRE     = regexp.MustCompile(`^[A-Za-z0-9 ,.*:/~-]{1,100}$`)
	bucketRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionRE       = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	clusterNameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`)
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	// A family whose attributes after the generation carry a "g" (t4g,
	// m7gd, c6gn, im4gn, is4gen, g5g) is Graviton, as is a1.
	gravitonRE = regexp.MustCompile(`^(a1|[a-z]+[0-9][a-z]*g[a-z]*)$`)
	amiRE      = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	// Passwords land in pgpass, YAML, HAProxy and shell environment files;
	// a restricted alphabet keeps every one of them free of quoting bugs.
	passwordRE = regexp.MustCompile(`^[A-Za-z0-9._~+=-]{16,128}$`)
)

// SecretChecker says whether a full key was set as a secret.
type SecretChecker func(key string) bool

// Load reads every key through get, applies the defaults and checks the
// result. isSecret guards the password keys against plain-text values. It
// returns all problems at once in an *Error.
func Load(stack string, get Getter, isSecret SecretChecker) (Config, error) {
	var probs []string
	bad := func(key, format string, a ...any) {
		probs = append(probs, key+": "+fmt.Sprintf(format, a...))
	}
	str := func(key, def string) string {
		if v, ok := get(Full(key)); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	boolean := func(key string, def bool) bool {
		v, ok := get(Full(key))
		if !ok || strings.TrimSpace(v) == "" {
			return def
		}
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			bad(Full(key), "%q is not true or false; fix: pulumi config set %s true", v, Full(key))
			return def
		}
		return b
	}
	integer := func(key string, def int) int {
		v, ok := get(Full(key))
		if !ok || strings.TrimSpace(v) == "" {
			return def
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			bad(Full(key), "%q is not a whole number of GiB; fix: pulumi config set %s %d", v, Full(key), def)
			return def
		}
		return n
	}

	c := Config{Stack: stack, Passwords: map[string]string{}}

	region, _ := get(RegionKey)
	c.Region = strings.TrimSpace(region)
	switch {
	case c.Region == "":
		bad(RegionKey, "is not set; fix: pulumi config set aws:region eu-west-1")
	case !regionRE.MatchString(c.Region):
		bad(RegionKey, "%q is not an AWS region name; fix: pulumi config set aws:region eu-west-1", c.Region)
	}

	c.ClusterName = str(KeyClusterName, DefaultClusterName)
	if !clusterNameRE.MatchString(c.ClusterName) {
		bad(Full(KeyClusterName), "%q must be 2-32 lower-case letters, digits or '-', starting with a letter; fix: pulumi config set %s %s",
			c.ClusterName, Full(KeyClusterName), DefaultClusterName)
	}

	c.VPCCIDR = str(KeyVPCCIDR, topology.DefaultVPCCIDR)
	if plan, err := topology.New(c.VPCCIDR); err != nil {
		bad(Full(KeyVPCCIDR), "%v; fix: pulumi config set %s %s", err, Full(KeyVPCCIDR), topology.DefaultVPCCIDR)
	} else {
		c.Plan = plan
	}

	c.AllowWorldAccess = boolean(KeyAllowWorldAccess, false)
	c.AllowedCIDRs = allowedCIDRs(get, c.AllowWorldAccess, bad)

	c.Profile = str(KeyProfile, DefaultProfile)
	if _, err := userdata.LookupProfile(c.Profile); err != nil {
		bad(Full(KeyProfile), "%q is not a profile (want one of %s); fix: pulumi config set %s %s",
			c.Profile, strings.Join(profileNames(), ", "), Full(KeyProfile), DefaultProfile)
	}
	c.SynchronousMode = boolean(KeySynchronousMode, DefaultSynchronousMode)
	c.Watchdog = str(KeyWatchdog, DefaultWatchdog)
	if !userdata.ValidWatchdog(c.Watchdog) {
		bad(Full(KeyWatchdog), "%q is not a watchdog mode (want %s, %s or %s); fix: pulumi config set %s %s",
			c.Watchdog, userdata.WatchdogAutomatic, userdata.WatchdogRequired, userdata.WatchdogOff, Full(KeyWatchdog), DefaultWatchdog)
	}

	c.PoolMode = str(KeyPoolMode, DefaultPoolMode)
	if !userdata.ValidPoolMode(c.PoolMode) {
		bad(Full(KeyPoolMode), "%q is not a PgBouncer pool mode (want %s or %s); fix: pulumi config set %s %s",
			c.PoolMode, userdata.PoolTransaction, userdata.PoolSession, Full(KeyPoolMode), DefaultPoolMode)
	}
	c.Workload = str(KeyWorkload, DefaultWorkload)
	if !userdata.ValidWorkload(c.Workload) {
		bad(Full(KeyWorkload), "%q is not a workload profile (want %s); fix: pulumi config set %s %s",
			c.Workload, userdata.WorkloadChoices(), Full(KeyWorkload), DefaultWorkload)
	}

	c.NATGateways = str(KeyNATGateways, DefaultNATGateways)
	if c.NATGateways != NATSingle && c.NATGateways != NATPerAZ {
		bad(Full(KeyNATGateways), "%q is neither %q nor %q; fix: pulumi config set %s %s",
			c.NATGateways, NATSingle, NATPerAZ, Full(KeyNATGateways), NATSingle)
	}

	c.EtcdInstanceType = instanceType(KeyEtcdInstanceType, str(KeyEtcdInstanceType, DefaultEtcdInstanceType), DefaultEtcdInstanceType, false, bad)
	c.PatroniInstanceType = instanceType(KeyPatroniInstanceType, str(KeyPatroniInstanceType, DefaultPatroniInstanceType), DefaultPatroniInstanceType, true, bad)
	c.HAProxyInstanceType = instanceType(KeyHAProxyInstanceType, str(KeyHAProxyInstanceType, DefaultHAProxyInstanceType), DefaultHAProxyInstanceType, false, bad)

	c.EtcdVolumeSize = volume(KeyEtcdVolumeSize, integer(KeyEtcdVolumeSize, DefaultEtcdVolumeSize), DefaultEtcdVolumeSize, bad)
	c.PatroniVolumeSize = volume(KeyPatroniVolumeSize, integer(KeyPatroniVolumeSize, DefaultPatroniVolumeSize), DefaultPatroniVolumeSize, bad)
	c.HAProxyVolumeSize = volume(KeyHAProxyVolumeSize, integer(KeyHAProxyVolumeSize, DefaultHAProxyVolumeSize), DefaultHAProxyVolumeSize, bad)
	c.EtcdDataSize = dataVolume(KeyEtcdDataSize, integer(KeyEtcdDataSize, DefaultEtcdDataSize), DefaultEtcdDataSize, bad)
	c.PatroniDataSize = dataVolume(KeyPatroniDataSize, integer(KeyPatroniDataSize, DefaultPatroniDataSize), DefaultPatroniDataSize, bad)
	c.ProtectData = boolean(KeyProtectData, DefaultProtectData)
	c.Backups = boolean(KeyBackups, DefaultBackups)
	c.ProtectBackups = boolean(KeyProtectBackups, DefaultProtectBackups)
	c.BackupBucket = str(KeyBackupBucket, "")
	if c.BackupBucket != "" && !bucketRE.MatchString(c.BackupBucket) {
		bad(Full(KeyBackupBucket), "%q is not an S3 bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit); fix: pulumi config rm %s to use pgha-<stack>-<account>-<region>",
			c.BackupBucket, Full(KeyBackupBucket))
	}
	c.BackupFull = str(KeyBackupFull, DefaultBackupFull)
	c.BackupDiff = str(KeyBackupDiff, DefaultBackupDiff)
	for _, k := range []struct{ key, v, def string }{{KeyBackupFull, c.BackupFull, DefaultBackupFull}, {KeyBackupDiff, c.BackupDiff, DefaultBackupDiff}} {
		if k.v != "" && !calendarRE.MatchString(k.v) {
			bad(Full(k.key), "%q is not a systemd calendar event; fix: pulumi config set %s '%s'", k.v, Full(k.key), k.def)
		}
	}
	c.BackupRetention = integer(KeyBackupRetention, DefaultBackupRetention)
	if c.BackupRetention < 1 || c.BackupRetention > 100 {
		bad(Full(KeyBackupRetention), "%d full backups: keep 1-100; fix: pulumi config set %s %d", c.BackupRetention, Full(KeyBackupRetention), DefaultBackupRetention)
	}
	c.JumpHost = str(KeyJumpHost, DefaultJumpHost)
	if c.Plan.VPC.IsValid() {
		var names []string
		for _, n := range c.Plan.ByRole(topology.RoleHAProxy) {
			names = append(names, n.Name)
		}
		if !slices.Contains(names, c.JumpHost) {
			bad(Full(KeyJumpHost), "%q is not an HAProxy node (want one of %s); fix: pulumi config set %s %s",
				c.JumpHost, strings.Join(names, ", "), Full(KeyJumpHost), DefaultJumpHost)
		}
	}

	c.NetworkLoadBalancer = boolean(KeyNetworkLoadBalancer, false)

	c.Monitoring = boolean(KeyMonitoring, DefaultMonitoring)
	c.MonitoringType = instanceType(KeyMonitoringType, str(KeyMonitoringType, DefaultMonitoringType), DefaultMonitoringType, false, bad)
	c.MonitoringVolume = volume(KeyMonitoringVolume, integer(KeyMonitoringVolume, DefaultMonitoringVolume), DefaultMonitoringVolume, bad)
	c.MonitoringRetention = str(KeyMonitoringRetention, DefaultMonitoringRetention)
	if !userdata.ValidDuration(c.MonitoringRetention) {
		bad(Full(KeyMonitoringRetention), "%q is not a Prometheus duration such as 15d, 12h or 4w; fix: pulumi config set %s %s",
			c.MonitoringRetention, Full(KeyMonitoringRetention), DefaultMonitoringRetention)
	}
	c.AlertEmails = alertEmails(get, bad)
	if len(c.AlertEmails) > 0 && !c.Monitoring {
		bad(Full(KeyAlertEmails), "needs the monitoring node, which sends the alerts; fix: pulumi config set %s true (or pulumi config rm %s)",
			Full(KeyMonitoring), Full(KeyAlertEmails))
	}

	c.SSHPublicKey = str(KeySSHPublicKey, "")
	if c.SSHPublicKey != "" {
		if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(c.SSHPublicKey)); err != nil || len(strings.TrimSpace(string(rest))) > 0 {
			bad(Full(KeySSHPublicKey), "is not one OpenSSH public key; fix: pulumi config set %s \"$(cat ~/.ssh/id_ed25519.pub)\" (or pulumi config rm %s to generate one)",
				Full(KeySSHPublicKey), Full(KeySSHPublicKey))
		}
	}

	c.AMI = str(KeyAMI, "")
	if c.AMI != "" && !amiRE.MatchString(c.AMI) {
		bad(Full(KeyAMI), "%q is not an AMI id like ami-0123456789abcdef0; fix: pulumi config rm %s to keep the AMI the stack runs (the newest Debian 12 on a new stack)",
			c.AMI, Full(KeyAMI))
	}

	for _, key := range PasswordKeys {
		v, ok := get(Full(key))
		if !ok || v == "" {
			continue
		}
		if isSecret == nil || !isSecret(Full(key)) {
			bad(Full(key), "is stored in plain text in the stack file; fix: pulumi config set --secret %s <value> (or pulumi config rm %s to generate one)",
				Full(key), Full(key))
			continue
		}
		if !passwordRE.MatchString(v) {
			// Never echo the value: it is a secret.
			bad(Full(key), "must be 16-128 characters of A-Z a-z 0-9 . _ ~ + = -; fix: pulumi config set --secret %s <new value> (or pulumi config rm %s to generate one)",
				Full(key), Full(key))
			continue
		}
		c.Passwords[key] = v
	}

	if len(probs) > 0 {
		return Config{}, &Error{Problems: probs}
	}
	return c, nil
}

// CheckZones refuses a region with fewer than three available AZs; zones are
// the names getAvailabilityZones returned for state "available".
func CheckZones(region string, zones []string) error {
	seen := map[string]bool{}
	for _, z := range zones {
		seen[z] = true
	}
	if len(seen) < topology.AZCount {
		return &Error{Problems: []string{fmt.Sprintf(
			"%s: %q offers %d available Availability Zone(s) (%s); pgha needs %d; fix: pulumi config set aws:region eu-west-1 (or another region with 3 AZs)",
			RegionKey, region, len(seen), strings.Join(zones, ", "), topology.AZCount)}}
	}
	return nil
}

// alertEmails reads pgha:alertEmails: a JSON list, or addresses separated
// by commas; each a bare address (SNS takes nothing else).
func alertEmails(get Getter, bad func(key, format string, a ...any)) []string {
	key := Full(KeyAlertEmails)
	raw, ok := get(key)
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" || raw == "[]" {
		return nil
	}
	fix := fmt.Sprintf("pulumi config set --path '%s[0]' oncall@example.com", key)
	list, err := stringList(raw)
	if err != nil {
		bad(key, "is not a list of e-mail addresses (%v); fix: %s", err, fix)
		return nil
	}
	var out []string
	for i, s := range list {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s {
			bad(key, "entry %d %q is not a bare e-mail address; fix: %s", i, s, fix)
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// stringList reads a list key: a JSON list (a YAML list in the stack file,
// or --path entries), or a plain string of one or more entries separated
// by commas.
func stringList(raw string) ([]string, error) {
	if strings.HasPrefix(raw, "[") {
		var list []string
		return list, json.Unmarshal([]byte(raw), &list)
	}
	var list []string
	for _, s := range strings.Split(raw, ",") {
		list = append(list, strings.TrimSpace(s))
	}
	return list, nil
}

// AlertTopicName is the stack's SNS alert topic: fixed, so the monitoring
// node's user data names it before it exists. Stack names may hold dots,
// which topic names may not.
func (c Config) AlertTopicName() string {
	return strings.ReplaceAll(fmt.Sprintf("%s-%s-alerts", Namespace, c.Stack), ".", "-")
}

func allowedCIDRs(get Getter, world bool, bad func(key, format string, a ...any)) []string {
	key := Full(KeyAllowedCIDRs)
	fix := fmt.Sprintf("pulumi config set --path '%s[0]' <your public IPv4 address>/32", key)
	raw, ok := get(key)
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" || raw == "[]" {
		bad(key, "is required: the CIDRs you connect from (SQL on 5000/5001, stats on 7000, SSH to the jump hosts); fix: %s", fix)
		return nil
	}
	list, err := stringList(raw)
	if err != nil {
		bad(key, "is not a list of CIDR strings (%v); fix: %s", err, fix)
		return nil
	}
	if len(list) == 0 {
		bad(key, "is required and empty; fix: %s", fix)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad(key, "entry %d %q is not a CIDR; fix: %s", i, s, fix)
			continue
		case !p.Addr().Is4():
			bad(key, "entry %d %q is not IPv4 (the VPC is IPv4 only); fix: %s", i, s, fix)
			continue
		case p.Masked() != p:
			bad(key, "entry %d %q has host bits set; fix: use %s", i, s, p.Masked())
			continue
		case p.Bits() == 0 && !world:
			bad(key, "entry %d %q opens PostgreSQL and SSH to the whole internet; fix: use your own range (%s), or if you really mean it: pulumi config set %s true",
				i, s, fix, Full(KeyAllowWorldAccess))
			continue
		}
		if name, ok := neverAClient(p); ok {
			// An example left in place would pass here and leave `up`
			// dialling the jump host for its whole readiness timeout.
			bad(key, "entry %d %q is %s, never a client's address; fix: %s", i, s, name, fix)
			continue
		}
		if !seen[p.String()] {
			seen[p.String()] = true
			out = append(out, p.String())
		}
	}
	sort.Strings(out)
	return out
}

func instanceType(key, v, def string, needsRAM bool, bad func(key, format string, a ...any)) string {
	full := Full(key)
	if !instanceTypeRE.MatchString(v) {
		bad(full, "%q is not an EC2 instance type like %s; fix: pulumi config set %s %s", v, def, full, def)
		return v
	}
	family, size, _ := strings.Cut(v, ".")
	// The AMI look-up and the image are x86_64: an Arm (Graviton) type
	// would pass here and fail in RunInstances after the network exists.
	if graviton(family) {
		bad(full, "%q is an Arm (Graviton) type; the nodes run the x86_64 Debian 12 AMI; fix: pulumi config set %s %s (or another x86_64 type)", v, full, def)
		return v
	}
	// nano has 0.5 GiB: not enough for any tier. micro (1 GiB) runs etcd or
	// HAProxy, but PostgreSQL plus Patroni would swap or be OOM-killed.
	if size == "nano" || (needsRAM && size == "micro") {
		bad(full, "%q is too small for this tier; fix: pulumi config set %s %s", v, full, def)
	}
	return v
}

func volume(key string, n, def int, bad func(key, format string, a ...any)) int {
	if n < MinVolumeSize || n > MaxVolumeSize {
		bad(Full(key), "%d GiB is outside %d-%d GiB; fix: pulumi config set %s %d", n, MinVolumeSize, MaxVolumeSize, Full(key), def)
	}
	return n
}

func dataVolume(key string, n, def int, bad func(key, format string, a ...any)) int {
	if n < MinDataVolumeSize || n > MaxVolumeSize {
		bad(Full(key), "%d GiB is outside %d-%d GiB; fix: pulumi config set %s %d", n, MinDataVolumeSize, MaxVolumeSize, Full(key), def)
	}
	return n
}

func profileNames() []string {
	var names []string
	for _, p := range userdata.Profiles() {
		names = append(names, p.Name)
	}
	return names
}

// AsError reports whether err is a configuration error.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// unroutable are the IPv4 ranges no client on the internet connects from
// (RFC 5737, RFC 1122, RFC 3927, RFC 5771, RFC 1112).
var unroutable = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation range (RFC 5737)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// neverAClient names the special range p lies wholly inside, if any.
func neverAClient(p netip.Prefix) (string, bool) {
	for _, u := range unroutable {
		if p.Bits() >= u.prefix.Bits() && u.prefix.Contains(p.Addr()) {
			return u.name, true
		}
	}
	return "", false
}

func graviton(family string) bool { return gravitonRE.MatchString(family) }

// BucketName is the backup bucket's name: the configured one, else
// pgha-<stack>-<account>-<region>, which is unique across AWS without a
// random part, so the nodes' user data and a restore elsewhere can name it.
func (c Config) BucketName(account string) (string, error) {
	if c.BackupBucket != "" {
		return c.BackupBucket, nil
	}
	name := strings.ToLower(fmt.Sprintf("pgha-%s-%s-%s", c.Stack, account, c.Region))
	if !bucketRE.MatchString(name) || strings.Contains(name, "..") {
		return "", &Error{Problems: []string{fmt.Sprintf("%s: the derived bucket name %q is not a valid S3 bucket name (too long, or the stack name has other characters); fix: pulumi config set %s <a bucket name of yours>",
			Full(KeyBackupBucket), name, Full(KeyBackupBucket))}}
	}
	return name, nil
}
