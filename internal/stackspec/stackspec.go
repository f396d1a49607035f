// Package stackspec is what a stack is before any resource exists, derived
// from its config alone: the cluster its nodes are rendered from, each
// node's #cloud-config user data, and what each tier's instance role may
// read. The Pulumi program builds its instances from it; the booted lab
// boots its machines from the very same bytes and enforces the very same
// policies.
package stackspec

import (
	"fmt"
	"slices"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/internal/stackconfig"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// Spec is one stack's nodes as they boot.
type Spec struct {
	Config stackconfig.Config
	// Cluster is what every node's files are rendered from.
	Cluster userdata.Cluster
	// ParamPrefix is the stack's SSM path, "/pgha/<stack>/".
	ParamPrefix string
	// UserData is each node's #cloud-config document, by node name. It holds
	// no secret; the node fetches its passwords from SSM.
	UserData map[string]string
}

// Inputs are what a stack's nodes are rendered from besides its config:
// what the cloud says about it.
type Inputs struct {
	// Backup is the pgBackRest repository (nil: no backups).
	Backup *userdata.Backup
	// PostgresSize is the PostgreSQL instance type's memory and vCPUs
	// (ec2.GetInstanceType on AWS); zero means KnownSizes' entry for it.
	PostgresSize userdata.Size
	// AlertTopicARN is the SNS topic the monitoring node pages through
	// (AWS: AlertTopicARN); empty: its alerts page nobody.
	AlertTopicARN string
}

// AlertTopicARN is the ARN the stack's alert topic will have.
func AlertTopicARN(cfg stackconfig.Config, partition, account string) string {
	return fmt.Sprintf("arn:%s:sns:%s:%s:%s", partition, cfg.Region, account, cfg.AlertTopicName())
}

// KnownSizes are the memory and vCPUs of the instance types pgha's
// defaults and the booted lab use, as EC2 describes them; the Pulumi
// program asks EC2 instead.
var KnownSizes = map[string]userdata.Size{
	"t3.micro": {MemoryMiB: 1024, VCPUs: 2}, "t3.small": {MemoryMiB: 2048, VCPUs: 2},
	"t3.medium": {MemoryMiB: 4096, VCPUs: 2}, "t3.large": {MemoryMiB: 8192, VCPUs: 2},
	"t3.xlarge": {MemoryMiB: 16384, VCPUs: 4}, "t3.2xlarge": {MemoryMiB: 32768, VCPUs: 8},
}

// New checks the cluster a config describes and renders every node's user
// data. Nothing is created, so an error here leaves nothing behind.
func New(cfg stackconfig.Config, stack string) (*Spec, error) {
	return Build(cfg, stack, Inputs{})
}

// NewWithBackup is New for a cluster that archives to and backs up into
// the given pgBackRest repository.
func NewWithBackup(cfg stackconfig.Config, stack string, backup *userdata.Backup) (*Spec, error) {
	return Build(cfg, stack, Inputs{Backup: backup})
}

// Build is New with everything the cloud said.
func Build(cfg stackconfig.Config, stack string, in Inputs) (*Spec, error) {
	backup := in.Backup
	size := in.PostgresSize
	if size == (userdata.Size{}) {
		known, ok := KnownSizes[cfg.PatroniInstanceType]
		if !ok {
			return nil, fmt.Errorf("the memory and vCPUs of %s are not known here: ask EC2 (ec2.GetInstanceType)", cfg.PatroniInstanceType)
		}
		size = known
	}
	prefix := fmt.Sprintf("/%s/%s/", stackconfig.Namespace, stack)
	s := &Spec{
		Config:      cfg,
		ParamPrefix: prefix,
		Cluster: userdata.Cluster{
			Name:            cfg.ClusterName,
			Plan:            cfg.Plan,
			Profile:         cfg.Profile,
			SynchronousMode: cfg.SynchronousMode,
			Region:          cfg.Region,
			Users:           userdata.DefaultUsers(),
			// SSM parameter names are fixed strings, so the user data is
			// rendered (and checked) before anything exists.
			Secrets: userdata.ParamsUnder(prefix),
			TLS:     userdata.TLSParams{Prefix: prefix + "tls/"},
			Backup:  backup,
			// A fifth of the data volume: room for the leader's own WAL
			// and data growth stays.
			SlotWALKeepGB: max(1, cfg.PatroniDataSize/5),
			Watchdog:      cfg.Watchdog,
			PostgresSize:  size,
			Workload:      cfg.Workload,
			PoolMode:      cfg.PoolMode,
		},
		UserData: map[string]string{},
	}
	if cfg.Monitoring {
		s.Cluster.Monitoring = &userdata.Monitoring{Retention: cfg.MonitoringRetention, AlertTopicARN: in.AlertTopicARN}
	}
	if err := s.Cluster.Validate(); err != nil {
		return nil, fmt.Errorf("node configuration: %w", err)
	}
	for _, n := range s.Nodes() {
		doc, err := userdata.RenderCloudInit(s.Cluster, n.Name)
		if err != nil {
			return nil, fmt.Errorf("rendering the user data of %s: %w", n.Name, err)
		}
		s.UserData[n.Name] = string(doc)
	}
	return s, nil
}

// Nodes are the nodes the stack boots: the cluster's, and the monitoring
// node with pgha:monitoring.
func (s *Spec) Nodes() []topology.Node {
	nodes := append([]topology.Node(nil), s.Config.Plan.Nodes...)
	if s.Cluster.Monitoring != nil {
		nodes = append(nodes, s.Config.Plan.Monitor())
	}
	return nodes
}

// ParameterARN is the ARN of a secret's SSM parameter.
func (s *Spec) ParameterARN(partition, account string, secret userdata.Secret) string {
	return s.paramARN(partition, account, s.Cluster.Secrets[secret.Name])
}

func (s *Spec) paramARN(partition, account, name string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:parameter%s", partition, s.Config.Region, account, name)
}

// TierParameters are the SSM parameters each tier's services read at boot,
// and so all its instance role may read: its passwords, the cluster CA, and
// the certificate and key of each node of the tier (the nodes of a tier
// share one instance role, so one may read its peers' keys; they run the
// same daemons with the same trust).
func (s *Spec) TierParameters(partition, account string) map[topology.Role][]string {
	m := map[topology.Role][]string{}
	for _, sec := range userdata.Secrets {
		for _, r := range sec.Roles {
			m[r] = append(m[r], s.ParameterARN(partition, account, sec))
		}
	}
	for _, n := range s.Nodes() {
		r := n.Role
		if !slices.Contains(m[r], s.paramARN(partition, account, s.Cluster.TLS.CA())) {
			m[r] = append(m[r], s.paramARN(partition, account, s.Cluster.TLS.CA()))
		}
		m[r] = append(m[r], s.paramARN(partition, account, s.Cluster.TLS.Certificate(n.Name)),
			s.paramARN(partition, account, s.Cluster.TLS.Key(n.Name)))
	}
	return m
}

// TierPolicy is the policy of a tier's instance role, or "" for a tier
// that reads no secret (it gets no policy at all).
func (s *Spec) TierPolicy(r topology.Role, partition, account string) string {
	arns := s.TierParameters(partition, account)[r]
	if len(arns) == 0 {
		return ""
	}
	return iampolicy.SecretsRead(arns, partition, s.Config.Region, account)
}

// BackupPrefix is the pgBackRest repository's path in the bucket: one per
// cluster, so two clusters may share a bucket set by pgha:backupBucket.
func BackupPrefix(cfg stackconfig.Config) string { return "pgha/" + cfg.ClusterName }

// AWSBackup is the repository of a stack with pgha:backups on AWS: the
// stack's bucket, at the region's S3 endpoint in AWS's own addressing,
// with the instance role's credentials from the metadata service. The
// booted lab renders the same, so its nodes boot AWS's configuration.
func AWSBackup(cfg stackconfig.Config, account string) (*userdata.Backup, error) {
	bucket, err := cfg.BucketName(account)
	if err != nil {
		return nil, err
	}
	return &userdata.Backup{
		Bucket: bucket, Region: cfg.Region, Endpoint: "s3." + cfg.Region + ".amazonaws.com",
		Path: "/" + BackupPrefix(cfg), URIStyle: "host", KeyType: "auto", RetentionFull: cfg.BackupRetention,
		FullSchedule: cfg.BackupFull, DiffSchedule: cfg.BackupDiff,
	}, nil
}
