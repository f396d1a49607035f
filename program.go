package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ebs"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/components"
	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/stackconfig"
	"github.com/pgha/pgha/internal/stackspec"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

const (
	// The Debian AMI's login user, with passwordless sudo.
	loginUser = "admin"
	// readinessTimeout bounds each wait of `pulumi up` (seconds); it matches
	// the boot script's own bound for Patroni to become healthy.
	readinessTimeout = 1800
)

// program is the whole stack; tests run it under pulumi.WithMocks.
func program(ctx *pulumi.Context) error {
	outs, err := build(ctx)
	if err != nil {
		return err
	}
	for k, v := range outs {
		ctx.Export(k, v)
	}
	return nil
}

// build registers every resource and returns the stack outputs, keyed by
// the outputs.Key* names. Nothing is registered before the whole config is
// checked and every node's user data is rendered.
func build(ctx *pulumi.Context) (map[string]pulumi.Output, error) {
	p, err := prepare(ctx)
	if err != nil {
		return nil, err
	}
	return deploy(ctx, p)
}

// prepared is everything known before the first resource: the checked
// config, the AWS look-ups and every node's rendered user data.
type prepared struct {
	cfg         stackconfig.Config
	provider    *aws.Provider
	placement   *outputs.Placement
	azs         []string // the 3 AZs, by plan AZ index
	ami         string
	account     string
	partition   string
	paramPrefix string            // "/pgha/<stack>/"
	bucket      string            // the backup bucket, with pgha:backups
	userData    map[string]string // by node name
	tierParams  map[topology.Role][]string
	tls         userdata.TLSParams // where the nodes read their TLS material
}

// prepare checks the config, asks AWS what it needs and renders the user
// data. It creates nothing in AWS (it registers only the provider and a
// read of the stack's own previous outputs), so any error here leaves
// nothing behind.
func prepare(ctx *pulumi.Context) (*prepared, error) {
	cfg, err := stackconfig.Load(ctx.Stack(), ctx.GetConfig, ctx.IsConfigSecret)
	if err != nil {
		return nil, err
	}
	tagger := components.Tagger{Project: stackconfig.Namespace, Stack: ctx.Stack()}
	// One provider for the look-ups and the resources: with aws:profile or
	// aws:assumeRole set, the default provider could act in another account.
	prov, err := aws.NewProvider(ctx, "aws", &aws.ProviderArgs{
		Region:      pulumi.String(cfg.Region),
		DefaultTags: aws.ProviderDefaultTagsArgs{Tags: tagger.Default()},
	})
	if err != nil {
		return nil, err
	}
	invoke := pulumi.Provider(prov)

	prev, err := previousPlacement(ctx)
	if err != nil {
		return nil, err
	}
	place, err := placeCluster(ctx, cfg, prev, invoke)
	if err != nil {
		return nil, err
	}
	if err := checkElasticIPQuota(ctx, cfg, invoke); err != nil {
		return nil, err
	}
	ident, err := aws.GetCallerIdentity(ctx, &aws.GetCallerIdentityArgs{}, invoke)
	if err != nil {
		return nil, fmt.Errorf("cannot read the AWS account (are AWS credentials set?): %w", err)
	}
	part, err := aws.GetPartition(ctx, &aws.GetPartitionArgs{}, invoke)
	if err != nil {
		return nil, fmt.Errorf("cannot read the AWS partition: %w", err)
	}

	var bucket string
	var backup *userdata.Backup
	if cfg.Backups {
		if backup, err = stackspec.AWSBackup(cfg, ident.AccountId); err != nil {
			return nil, err
		}
		bucket = backup.Bucket
	}
	// PostgreSQL is tuned for what its instance type has.
	it, err := ec2.GetInstanceType(ctx, &ec2.GetInstanceTypeArgs{InstanceType: cfg.PatroniInstanceType}, invoke)
	if err != nil {
		return nil, fmt.Errorf("cannot read the memory and vCPUs of %s (pgha:%s): %w", cfg.PatroniInstanceType, stackconfig.KeyPatroniInstanceType, err)
	}
	var alertTopic string
	if cfg.Monitoring {
		alertTopic = stackspec.AlertTopicARN(cfg, part.Partition, ident.AccountId)
	}
	spec, err := stackspec.Build(cfg, ctx.Stack(), stackspec.Inputs{Backup: backup,
		PostgresSize:  userdata.Size{MemoryMiB: it.MemorySize, VCPUs: it.DefaultVcpus},
		AlertTopicARN: alertTopic})
	if err != nil {
		return nil, err
	}

	return &prepared{
		cfg: cfg, provider: prov, placement: place, azs: place.Zones, ami: place.AMI,
		account: ident.AccountId, partition: part.Partition,
		bucket:      bucket,
		paramPrefix: spec.ParamPrefix, userData: spec.UserData, tierParams: spec.TierParameters(part.Partition, ident.AccountId),
		tls: spec.Cluster.TLS,
	}, nil
}

// deploy registers the resources, each layer on the one before, and
// returns the stack outputs. The order: the base (with the CA and the etcd
// nodes' certificates), the etcd tier, the HAProxy nodes' Elastic IPs and
// the load balancer (with its target groups and listeners), the HAProxy
// nodes' certificates (which name those addresses and the load balancer's
// name: PgBouncer serves them on 6432), the HAProxy instances, the
// association of each Elastic IP with its instance and the load
// balancer's targets, the PostgreSQL nodes' certificates (which name the
// same endpoints), the PostgreSQL tier, the readiness gate.
//
// An existing stack created before the HAProxy certificates named the
// endpoints keeps its addresses and load balancer (the same URNs, see
// TestURNsOfTheEntryPointsAreStable). On its next `pulumi up` it gets an
// EIP association per HAProxy node, which associates each address again
// with the instance it already serves (the EIPs themselves show no
// change), and new HAProxy certificates in SSM. No instance changes, so
// the running HAProxy nodes keep serving the old certificate until they
// fetch the new one (docs/security.md, Renewal) or are replaced; `validate
// roll` alone replaces only instances that the update would replace.
func deploy(ctx *pulumi.Context, p *prepared) (map[string]pulumi.Output, error) {
	b, err := deployBase(ctx, p)
	if err != nil {
		return nil, err
	}
	t, nlb, err := deployFrontTiers(ctx, p, b)
	if err != nil {
		return nil, err
	}
	// The jump host (haproxy-1 unless pgha:jumpHost names the other, as
	// while haproxy-1's AZ is lost) is also the single-host endpoint.
	jumpIP := t.haproxy.PublicIPs[jumpIndex(p.cfg)]
	writeHost, readHost := jumpIP, jumpIP
	if nlb != nil {
		writeHost, readHost = nlb.DNSName, nlb.DNSName
	}
	pgCerts, err := deployNodeCertificates(ctx, p, b, topology.RolePatroni, clientNames(t.haproxy, nlb)...)
	if err != nil {
		return nil, err
	}
	if t.patroni, err = deployPatroni(ctx, p, b, pgCerts); err != nil {
		return nil, err
	}
	nodes := placeNodes(p.cfg.Plan, t)
	// The monitoring node watches the cluster; the readiness gate waits
	// for its boot too, but it is not one of the cluster's nodes.
	gated := nodes
	var alerts *components.AlertTopic
	if p.cfg.Monitoring {
		mon, topic, err := deployMonitor(ctx, p, b)
		if err != nil {
			return nil, err
		}
		alerts = topic
		gated = append(append([]placed(nil), nodes...), placed{node: p.cfg.Plan.Monitor(), inst: mon.Instances[0]})
	}
	readiness, err := deployReadiness(ctx, p, b, gated, jumpIP)
	if err != nil {
		return nil, err
	}
	return stackOutputs(p, nodes, writeHost, readHost, jumpIP, b, readiness, alerts), nil
}

// clientNames are the names clients reach the cluster by from outside:
// both HAProxy nodes' Elastic IPs, as soon as they are allocated, and the
// load balancer's DNS name when there is one. The certificates of the
// nodes that serve clients name them all (pki.NodeLeaf): the PostgreSQL
// nodes' (5000 and 5001 pass through HAProxy) and the HAProxy nodes'
// (PgBouncer's 6432). Each HAProxy node names both addresses, not only
// its own: the two nodes' roles may read each other's keys anyway, so
// naming one would isolate nothing, and an address moved to the other
// node (by hand, say while an AZ is lost) still verifies.
func clientNames(h *components.HAProxyTier, nlb *components.LoadBalancer) []pulumi.StringInput {
	var names []pulumi.StringInput
	for _, ip := range h.ElasticIPs {
		names = append(names, ip)
	}
	if nlb != nil {
		names = append(names, nlb.DNSName)
	}
	return names
}

// deployMonitor registers the monitoring node: the alert topic it pages
// through, its certificate, then the instance, in the first private
// subnet. Prometheus scrapes what answers; the node needs nothing of the
// cluster to boot.
func deployMonitor(ctx *pulumi.Context, p *prepared, b *base) (*components.MonitoringNode, *components.AlertTopic, error) {
	cfg := p.cfg
	alerts, err := components.NewAlertTopic(ctx, "alerts", &components.AlertTopicArgs{
		Name: cfg.AlertTopicName(), Emails: cfg.AlertEmails, Tags: b.tagger,
	}, b.withAWS)
	if err != nil {
		return nil, nil, err
	}
	m := cfg.Plan.Monitor()
	cert, err := b.tls.Node(ctx, m)
	if err != nil {
		return nil, nil, err
	}
	args := tierArgs(p, b, topology.RoleMonitor, topology.Private, cfg.MonitoringType, cfg.MonitoringVolume, cert.Parameters)
	args.Nodes = []topology.Node{m}
	args.Policies = map[string]pulumi.StringInput{"alerts": alerts.Policy}
	mon, err := components.NewMonitoringNode(ctx, "monitor", args, b.withAWS)
	return mon, alerts, err
}

// base is what every tier stands on.
type base struct {
	tagger   components.Tagger
	withAWS  pulumi.ResourceOption // the explicit provider, with the default tags
	network  *components.Network
	security *components.Security
	secrets  *components.Secrets
	keyPair  *ec2.KeyPair
	backups  *components.Backups // nil without pgha:backups
	// tls is the cluster CA; etcdCerts are the etcd nodes' certificates
	// (the HAProxy and PostgreSQL nodes' name the endpoints, and come
	// after them).
	tls       *components.ClusterTLS
	etcdCerts components.Dependencies
	// privateKey is the generated SSH key; nil with the operator's own.
	privateKey pulumi.StringInput
	// boot is what any instance needs before it boots: egress to apt and
	// SSM, its security rules, its secrets, the CA certificate (see
	// components.Dependencies for why these resources and not the
	// components). Its own certificate and key are its tier's on top.
	boot []pulumi.Resource
}

// deployBase registers the provider, the network, the security groups, the
// secrets, the cluster CA with the etcd nodes' certificates, and the SSH
// key pair.
func deployBase(ctx *pulumi.Context, p *prepared) (*base, error) {
	cfg := p.cfg
	b := &base{tagger: components.Tagger{Project: stackconfig.Namespace, Stack: ctx.Stack()}}
	prov := p.provider
	b.withAWS = pulumi.Providers(prov)
	var err error

	if b.network, err = components.NewNetwork(ctx, "network", &components.NetworkArgs{
		Plan: cfg.Plan, Zones: p.azs, PerAZNAT: cfg.NATGateways == stackconfig.NATPerAZ, Tags: b.tagger,
	}, b.withAWS); err != nil {
		return nil, err
	}
	if b.security, err = components.NewSecurity(ctx, "security", &components.SecurityArgs{
		VpcID:        b.network.VpcID.ToStringOutput(),
		AllowedCIDRs: cfg.AllowedCIDRs,
		LoadBalancer: cfg.NetworkLoadBalancer,
		Monitoring:   cfg.Monitoring,
		Tags:         b.tagger,
	}, b.withAWS); err != nil {
		return nil, err
	}

	var specs []components.SecretSpec
	for _, s := range userdata.Secrets {
		specs = append(specs, components.SecretSpec{Name: s.ParamName(), Value: cfg.Passwords[s.ConfigKey]})
	}
	if b.secrets, err = components.NewSecrets(ctx, "secrets", &components.SecretsArgs{
		ParameterPrefix: p.paramPrefix, Secrets: specs, Tags: b.tagger,
	}, b.withAWS); err != nil {
		return nil, err
	}

	// SSH: the operator's key, or a generated ED25519 key exported as a secret.
	var publicKey pulumi.StringInput = pulumi.String(cfg.SSHPublicKey)
	if cfg.SSHPublicKey == "" {
		key, err := tls.NewPrivateKey(ctx, "ssh-key", &tls.PrivateKeyArgs{Algorithm: pulumi.String("ED25519")})
		if err != nil {
			return nil, err
		}
		b.privateKey = key.PrivateKeyOpenssh
		publicKey = key.PublicKeyOpenssh
	}
	if b.keyPair, err = ec2.NewKeyPair(ctx, "ssh", &ec2.KeyPairArgs{
		PublicKey: publicKey,
		Tags:      b.tagger.Tags(components.RoleSecurity, "ssh-key"),
	}, pulumi.Provider(prov)); err != nil {
		return nil, err
	}

	if cfg.Backups {
		if b.backups, err = components.NewBackups(ctx, "backups", &components.BackupsArgs{
			Bucket: p.bucket, Prefix: stackspec.BackupPrefix(cfg), NoncurrentDays: 30, Protect: cfg.ProtectBackups,
			Partition: p.partition, Region: cfg.Region, Tags: b.tagger,
		}, b.withAWS); err != nil {
			return nil, err
		}
		b.boot = append(b.boot, b.backups.Resources...)
	}

	if b.tls, err = components.NewClusterTLS(ctx, "tls", &components.ClusterTLSArgs{
		ClusterName: cfg.ClusterName, Plan: cfg.Plan, Params: p.tls, Tags: b.tagger,
	}, b.withAWS); err != nil {
		return nil, err
	}
	if b.etcdCerts, err = deployNodeCertificates(ctx, p, b, topology.RoleEtcd); err != nil {
		return nil, err
	}

	b.boot = append(b.boot, b.network.Egress...)
	b.boot = append(b.boot, b.security.Rules...)
	b.boot = append(b.boot, b.secrets.Parameters...)
	b.boot = append(b.boot, b.tls.Parameters...)
	return b, nil
}

// deployNodeCertificates issues the certificates of one role's nodes and
// returns their parameters, which those nodes read at boot. endpoints are
// the PostgreSQL and HAProxy nodes' other names (clientNames, see
// components.ClusterTLS.Node).
func deployNodeCertificates(ctx *pulumi.Context, p *prepared, b *base, role topology.Role, endpoints ...pulumi.StringInput) (components.Dependencies, error) {
	var params components.Dependencies
	for _, n := range p.cfg.Plan.ByRole(role) {
		c, err := b.tls.Node(ctx, n, endpoints...)
		if err != nil {
			return nil, err
		}
		params = append(params, c.Parameters...)
	}
	return params, nil
}

// tiers are the three tiers' instances.
type tiers struct {
	etcd    *components.EtcdCluster
	patroni *components.PatroniCluster
	haproxy *components.HAProxyTier
}

// tierArgs are a tier's instances, each at its plan address with the user
// data rendered for it, booting after the base and certs (its nodes'
// certificates and keys).
func tierArgs(p *prepared, b *base, role topology.Role, tier topology.Tier, itype string, size int, certs components.Dependencies) *components.TierArgs {
	cfg := p.cfg
	subnets := b.network.PrivateSubnetIDs
	if tier == topology.Public {
		subnets = b.network.PublicSubnetIDs
	}
	return &components.TierArgs{
		Nodes: cfg.Plan.ByRole(role), Zones: p.azs, SubnetIDs: subnets,
		SecurityGroupID: b.security.Groups[string(role)].ID(),
		AMI:             p.ami, InstanceType: itype, VolumeSize: size,
		KeyName: b.keyPair.KeyName, UserData: p.userData,
		SecretParameterARNs: p.tierParams[role],
		Region:              cfg.Region, Partition: p.partition, AccountID: p.account,
		Public: tier == topology.Public,
		// A copy: each tier adds its own certificates.
		DependsOn: append(append([]pulumi.Resource(nil), b.boot...), certs...),
		Tags:      b.tagger,
	}
}

// withData gives a tier's nodes data volumes of their own: etcd and
// PostgreSQL keep their data there, and a replaced instance gets it back
// (userdata mounts them).
func withData(cfg stackconfig.Config, a *components.TierArgs, size int) *components.TierArgs {
	a.Data = &components.DataVolumeArgs{Size: size, Device: userdata.DataDevice, Protect: cfg.ProtectData}
	return a
}

// deployFrontTiers registers etcd and HAProxy, and the load balancer in
// front of HAProxy when enabled (nil without): the tiers the PostgreSQL
// nodes' certificates follow. The HAProxy nodes' Elastic IPs and the load
// balancer come before the HAProxy nodes' certificates, which name them,
// and the instances after; then each address is associated with its
// instance and the instances become the load balancer's targets.
func deployFrontTiers(ctx *pulumi.Context, p *prepared, b *base) (*tiers, *components.LoadBalancer, error) {
	cfg := p.cfg
	var t tiers
	var err error
	if t.etcd, err = components.NewEtcdCluster(ctx, "etcd",
		withData(cfg, tierArgs(p, b, topology.RoleEtcd, topology.Private, cfg.EtcdInstanceType, cfg.EtcdVolumeSize, b.etcdCerts), cfg.EtcdDataSize),
		b.withAWS); err != nil {
		return nil, nil, err
	}
	if t.haproxy, err = components.NewHAProxyTier(ctx, "haproxy",
		tierArgs(p, b, topology.RoleHAProxy, topology.Public, cfg.HAProxyInstanceType, cfg.HAProxyVolumeSize, nil),
		b.withAWS); err != nil {
		return nil, nil, err
	}
	nlb, err := deployLoadBalancer(ctx, p, b)
	if err != nil {
		return nil, nil, err
	}
	certs, err := deployNodeCertificates(ctx, p, b, topology.RoleHAProxy, clientNames(t.haproxy, nlb)...)
	if err != nil {
		return nil, nil, err
	}
	if err := t.haproxy.Launch(ctx, certs); err != nil {
		return nil, nil, err
	}
	if nlb != nil {
		if err := nlb.Attach(ctx, t.haproxy.Instances); err != nil {
			return nil, nil, err
		}
	}
	return &t, nlb, nil
}

// deployPatroni registers the PostgreSQL tier, booting after its nodes'
// certificates.
func deployPatroni(ctx *pulumi.Context, p *prepared, b *base, certs components.Dependencies) (*components.PatroniCluster, error) {
	cfg := p.cfg
	args := withData(cfg, tierArgs(p, b, topology.RolePatroni, topology.Private, cfg.PatroniInstanceType, cfg.PatroniVolumeSize, certs), cfg.PatroniDataSize)
	if b.backups != nil {
		args.Policies = map[string]pulumi.StringInput{"backups": b.backups.Policy}
	}
	return components.NewPatroniCluster(ctx, "patroni", args, b.withAWS)
}

// deployLoadBalancer registers the network load balancer clients write,
// read and pool through when enabled (nil without; the jump host is then
// the single-host endpoint), with no target yet: its DNS name must be
// known before the HAProxy nodes' certificates, which name it.
func deployLoadBalancer(ctx *pulumi.Context, p *prepared, b *base) (*components.LoadBalancer, error) {
	if !p.cfg.NetworkLoadBalancer {
		return nil, nil
	}
	return components.NewLoadBalancer(ctx, "endpoint", &components.LoadBalancerArgs{
		VpcID: b.network.VpcID, SubnetIDs: b.network.PublicSubnetIDs,
		SecurityGroupID: b.security.Groups[components.SGNLB].ID(),
		Ports:           []int{topology.PortWrite, topology.PortRead, topology.PortPooler},
		DependsOn:       b.network.Internet,
		Tags:            b.tagger,
	}, b.withAWS)
}

// placeNodes pairs every plan node, in plan order, with its instance.
func placeNodes(plan topology.Plan, t *tiers) []placed {
	var nodes []placed
	for _, tt := range []struct {
		role topology.Role
		tier *components.Tier
	}{{topology.RoleEtcd, &t.etcd.Tier}, {topology.RolePatroni, &t.patroni.Tier}, {topology.RoleHAProxy, &t.haproxy.Tier}} {
		for i, n := range plan.ByRole(tt.role) {
			p := placed{node: n, inst: tt.tier.Instances[i]}
			if i < len(tt.tier.DataVolumes) {
				p.dataVolume = tt.tier.DataVolumes[i]
			}
			if i < len(tt.tier.PublicIPs) {
				p.publicIP = tt.tier.PublicIPs[i]
			}
			nodes = append(nodes, p)
		}
	}
	return nodes
}

// deployReadiness registers the gate `pulumi up` waits on: every node's
// boot, over SSH through the jump host, then the cluster's formation.
func deployReadiness(ctx *pulumi.Context, p *prepared, b *base, nodes []placed, jumpIP pulumi.StringOutput) (*components.Readiness, error) {
	var ready []components.ReadyNode
	for _, n := range nodes {
		rn := components.ReadyNode{
			Name: n.node.Name, Host: pulumi.String(n.node.IP.String()), ViaJump: true,
			InstanceID: n.inst.ID(), DependsOn: append([]pulumi.Resource{n.inst}, b.security.Rules...),
		}
		if n.node.Tier == topology.Public {
			rn.Host, rn.ViaJump = n.publicIP, false
		}
		ready = append(ready, rn)
	}
	plan := p.cfg.Plan
	jump := plan.ByRole(topology.RoleHAProxy)[jumpIndex(p.cfg)]
	check := checkNode(plan, jump)
	return components.NewReadiness(ctx, "readiness", &components.ReadinessArgs{
		Nodes: ready, JumpHost: jumpIP, User: loginUser, PrivateKey: b.privateKey,
		ReadyMarker: userdata.ReadyMarker, FailedMarker: userdata.FailedMarker,
		HostKeysNode:     jump.Name,
		ClusterCheckNode: check.Name,
		PatroniAPI:       fmt.Sprintf("https://%s:%d", check.IP, topology.PortPatroniAPI),
		TimeoutSeconds:   readinessTimeout,
	})
}

// jumpIndex is the position of the configured jump host among the HAProxy
// nodes (the config check allows only their names).
func jumpIndex(cfg stackconfig.Config) int {
	for i, n := range cfg.Plan.ByRole(topology.RoleHAProxy) {
		if n.Name == cfg.JumpHost {
			return i
		}
	}
	return 0
}

// checkNode is the PostgreSQL node that runs the gate's cluster check: the
// one in the jump host's AZ, so that losing another AZ loses neither.
func checkNode(plan topology.Plan, jump topology.Node) topology.Node {
	pgs := plan.ByRole(topology.RolePatroni)
	for _, n := range pgs {
		if n.AZIndex == jump.AZIndex {
			return n
		}
	}
	return pgs[0]
}

// placed is one plan node with its instance.
type placed struct {
	node     topology.Node
	inst     *ec2.Instance
	publicIP pulumi.StringOutput // HAProxy nodes only
	// dataVolume is the node's data volume (etcd and PostgreSQL nodes).
	dataVolume *ebs.Volume
}

// stackOutputs shapes the outputs exactly as outputs.Stack; the secret ones
// only through pulumi.ToSecret.
func stackOutputs(p *prepared, nodes []placed, writeHost, readHost, jumpIP pulumi.StringOutput,
	b *base, readiness *components.Readiness, alerts *components.AlertTopic) map[string]pulumi.Output {
	cfg, azs := p.cfg, p.azs
	secrets, privateKey, bk := b.secrets, b.privateKey, b.backups
	var nodeOuts pulumi.Array
	for _, p := range nodes {
		m := pulumi.Map{
			"name":       pulumi.String(p.node.Name),
			"role":       pulumi.String(string(p.node.Role)),
			"az":         pulumi.String(azs[p.node.AZIndex]),
			"privateIp":  pulumi.String(p.node.IP.String()),
			"instanceId": p.inst.ID(),
		}
		if p.dataVolume != nil {
			m["dataVolumeId"] = p.dataVolume.ID()
		}
		if p.node.Tier == topology.Public {
			m["publicIp"] = p.publicIP
		}
		// Read over the node's readiness session; the faults that log in
		// to a node refuse one without them.
		if k, ok := readiness.HostKeys[p.node.Name]; ok {
			m["hostKeys"] = k
		}
		nodeOuts = append(nodeOuts, m)
	}
	endpoint := func(host pulumi.StringOutput, port int) pulumi.Output {
		return pulumi.Map{"host": host, "port": pulumi.Int(port)}.ToMapOutput()
	}
	users := userdata.DefaultUsers()
	creds := pulumi.Map{"appDatabase": pulumi.String(users.AppDatabase)}
	for _, s := range userdata.Secrets {
		creds[s.NameKey()] = pulumi.String(s.User(users))
		creds[s.ConfigKey] = secrets.Values[s.ParamName()]
	}
	clusterState := readiness.ClusterState.ApplyT(func(s string) (any, error) {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("the readiness check printed no JSON cluster state: %w", err)
		}
		return v, nil
	}).(pulumi.AnyOutput)

	outs := map[string]pulumi.Output{
		outputs.KeyTarget:          pulumi.String(outputs.TargetAWS).ToStringOutput(),
		outputs.KeyClusterName:     pulumi.String(cfg.ClusterName).ToStringOutput(),
		outputs.KeyRegion:          pulumi.String(cfg.Region).ToStringOutput(),
		outputs.KeyProfile:         pulumi.String(cfg.Profile).ToStringOutput(),
		outputs.KeySynchronousMode: pulumi.Bool(cfg.SynchronousMode).ToBoolOutput(),
		outputs.KeyVPCCIDR:         pulumi.String(cfg.Plan.VPC.String()).ToStringOutput(),
		outputs.KeyWriteEndpoint:   endpoint(writeHost, topology.PortWrite),
		outputs.KeyReadEndpoint:    endpoint(readHost, topology.PortRead),
		// PgBouncer, on every HAProxy node, in front of the write side.
		outputs.KeyPoolerEndpoint: endpoint(writeHost, topology.PortPooler),
		// The stats page listens on private addresses only: the jump
		// host's own, reached through it (docs/security.md).
		outputs.KeyStatsEndpoint: endpoint(pulumi.String(cfg.Plan.ByRole(topology.RoleHAProxy)[jumpIndex(cfg)].IP.String()).ToStringOutput(), topology.PortStats),
		outputs.KeyNodes:         nodeOuts.ToArrayOutput(),
		outputs.KeyAccess: pulumi.Map{
			"kind":         pulumi.String(outputs.AccessSSH),
			"jumpHost":     pulumi.Sprintf("%s:22", jumpIP),
			"jumpUser":     pulumi.String(loginUser),
			"jumpHostKeys": readiness.JumpHostKeys,
		}.ToMapOutput(),
		outputs.KeyCredentials:  pulumi.ToSecret(creds),
		outputs.KeyClusterState: clusterState,
		outputs.KeyConnection:   connection(p, users, writeHost, nodes),
		outputs.KeyPlacement: pulumi.Map{
			"region": pulumi.String(p.placement.Region),
			"ami":    pulumi.String(p.placement.AMI),
			"zones":  pulumi.ToStringArray(p.placement.Zones),
		}.ToMapOutput(),
		// A certificate is public; the client key is not.
		outputs.KeyCACertificate: b.tls.CACertificate,
		outputs.KeyClientTLS: pulumi.ToSecret(pulumi.Map{
			"certificate": b.tls.ClientCertificate,
			"privateKey":  b.tls.ClientKey,
		}),
	}
	if privateKey != nil {
		outs[outputs.KeySSHPrivateKey] = pulumi.ToSecret(privateKey)
	}
	if cfg.Monitoring {
		// Private, like the stats page: reached through the jump host.
		outs[outputs.KeyPrometheusEndpoint] = pulumi.Sprintf("https://%s:%d", cfg.Plan.Monitor().IP.String(), topology.PortPrometheus)
	}
	if alerts != nil {
		outs[outputs.KeyAlertTopic] = alerts.Topic.Arn
	}
	if bk != nil {
		outs[outputs.KeyBackups] = pulumi.Map{
			"bucket": bk.Bucket.ID(),
			"path":   pulumi.String("/" + stackspec.BackupPrefix(cfg)),
			"region": pulumi.String(cfg.Region),
			"keyArn": bk.Key.Arn,
		}.ToMapOutput()
	}
	return outs
}

// connection is the clients' way in with no single entry point: both
// HAProxy nodes' addresses in one libpq URI per side (write, read and
// pooled), or the load balancer's name when it fronts them (the HAProxy
// nodes then admit only the load balancer).
func connection(p *prepared, users userdata.Users, writeHost pulumi.StringOutput, nodes []placed) pulumi.Output {
	var hosts []any
	if p.cfg.NetworkLoadBalancer {
		hosts = append(hosts, writeHost)
	} else {
		for _, n := range nodes {
			if n.node.Role == topology.RoleHAProxy {
				hosts = append(hosts, n.publicIP)
			}
		}
	}
	return pulumi.All(hosts...).ApplyT(func(hs []any) map[string]string {
		var list []string
		for _, h := range hs {
			list = append(list, h.(string))
		}
		c := outputs.NewConnection(users.App, users.AppDatabase, list)
		return map[string]string{"write": c.Write, "read": c.Read, "pooled": c.Pooled}
	}).(pulumi.StringMapOutput)
}
