package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/vpc"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/topology"
)

// Security group names (tiers). The NLB group exists only with the load
// balancer.
const (
	SGEtcd    = "etcd"
	SGPatroni = "patroni"
	SGHAProxy = "haproxy"
	SGNLB     = "nlb"
	SGMonitor = "monitor"
)

// Egress ports for apt and the SSM API; the service ports are the IP
// plan's (topology.Port*).
const (
	PortHTTP  = 80
	PortHTTPS = 443
)

// GroupDescriptions describe each tier's group (AWS shows them in the
// console; they cannot change without replacing the group).
var GroupDescriptions = map[string]string{
	SGEtcd:    "pgha etcd members",
	SGPatroni: "pgha Patroni and PostgreSQL members",
	SGHAProxy: "pgha HAProxy nodes and SSH jump hosts",
	SGNLB:     "pgha network load balancer",
	SGMonitor: "pgha monitoring node (Prometheus)",
}

// SecurityArgs describe who may talk to whom.
type SecurityArgs struct {
	VpcID        pulumi.StringInput
	AllowedCIDRs []string // operator networks: SQL, stats and SSH to the jump hosts
	// LoadBalancer adds a group for the network load balancer, which then
	// reaches HAProxy's 5000/5001 in place of the operator networks.
	LoadBalancer bool
	// Monitoring adds the monitoring node's group, and admits it to every
	// node's metrics ports.
	Monitoring bool
	Tags       Tagger
}

// Security holds one security group per tier.
type Security struct {
	pulumi.ResourceState

	Groups map[string]*ec2.SecurityGroup
	// Rules is every group and rule: nodes must not boot before their
	// egress to apt and SSM, or the SSH path of the readiness checks, exists.
	Rules Dependencies
}

// Rule is one line of the security table. Exactly one of Peer (a tier's
// group) and CIDR is set.
type Rule struct {
	Group       string // the tier whose group holds the rule
	Ingress     bool
	Protocol    string // tcp
	Port        int
	Peer        string // source (ingress) or destination (egress) tier
	CIDR        string
	Description string
}

// Rules is the whole table. Each tier admits only what it needs:
//
//   - etcd: clients (2379) from Patroni and etcd, peers (2380) from etcd;
//   - Patroni: PostgreSQL 5432 and the REST API 8008 from HAProxy (routing
//     and health checks) and from Patroni (replication, pg_rewind, member
//     checks during failover);
//   - HAProxy: 5000/5001 from the operator CIDRs (or from the load
//     balancer), SSH from the operator CIDRs: HAProxy nodes are the jump
//     hosts. The stats page (7000, HTTPS) listens on private addresses
//     only and is reached through a jump host, so only the HAProxy group
//     admits it;
//   - SSH into etcd and Patroni only from the jump hosts;
//   - with monitoring, the monitoring node reaches each tier's metrics
//     ports (exporters, Patroni's REST API, etcd's client port, HAProxy's
//     exporter) and nothing else, and is reached only from the jump hosts
//     (Prometheus 9090, SSH).
//
// Egress is as narrow: HTTP and HTTPS out for apt (Debian mirrors), the
// Debian and AWS package CDNs and the SSM API; the service ports only towards
// the tier that serves them. DNS, NTP and the instance metadata service use
// link-local addresses that security groups do not filter.
func Rules(allowed []string, loadBalancer, monitoring bool) []Rule {
	var r []Rule
	in := func(group string, port int, peer, desc string) {
		r = append(r, Rule{Group: group, Ingress: true, Protocol: "tcp", Port: port, Peer: peer, Description: desc})
	}
	inCIDR := func(group string, port int, cidr, desc string) {
		r = append(r, Rule{Group: group, Ingress: true, Protocol: "tcp", Port: port, CIDR: cidr, Description: desc})
	}
	out := func(group string, port int, peer, desc string) {
		r = append(r, Rule{Group: group, Protocol: "tcp", Port: port, Peer: peer, Description: desc})
	}
	outCIDR := func(group string, port int, cidr, desc string) {
		r = append(r, Rule{Group: group, Protocol: "tcp", Port: port, CIDR: cidr, Description: desc})
	}

	// etcd
	in(SGEtcd, topology.PortEtcdClient, SGPatroni, "etcd client API for the Patroni DCS")
	in(SGEtcd, topology.PortEtcdClient, SGEtcd, "etcd client API between members (health, etcdctl)")
	in(SGEtcd, topology.PortEtcdPeer, SGEtcd, "etcd peer traffic (raft)")
	in(SGEtcd, topology.PortSSH, SGHAProxy, "SSH from the jump hosts")
	out(SGEtcd, topology.PortEtcdClient, SGEtcd, "etcd client API between members")
	out(SGEtcd, topology.PortEtcdPeer, SGEtcd, "etcd peer traffic (raft)")

	// Patroni / PostgreSQL
	in(SGPatroni, topology.PortPostgres, SGHAProxy, "PostgreSQL from HAProxy")
	in(SGPatroni, topology.PortPatroniAPI, SGHAProxy, "Patroni REST API health checks from HAProxy")
	in(SGPatroni, topology.PortPostgres, SGPatroni, "PostgreSQL replication and pg_rewind between members")
	in(SGPatroni, topology.PortPatroniAPI, SGPatroni, "Patroni REST API between members (failover checks)")
	in(SGPatroni, topology.PortSSH, SGHAProxy, "SSH from the jump hosts")
	out(SGPatroni, topology.PortEtcdClient, SGEtcd, "Patroni to etcd (DCS)")
	out(SGPatroni, topology.PortPostgres, SGPatroni, "replication and pg_rewind to other members")
	out(SGPatroni, topology.PortPatroniAPI, SGPatroni, "Patroni REST API of other members")

	// HAProxy and jump hosts
	for _, c := range allowed {
		if loadBalancer {
			inCIDR(SGNLB, topology.PortWrite, c, "read-write SQL from operator network "+c)
			inCIDR(SGNLB, topology.PortRead, c, "read-only SQL from operator network "+c)
			inCIDR(SGNLB, topology.PortPooler, c, "pooled read-write SQL (PgBouncer) from operator network "+c)
		} else {
			inCIDR(SGHAProxy, topology.PortWrite, c, "read-write SQL from operator network "+c)
			inCIDR(SGHAProxy, topology.PortRead, c, "read-only SQL from operator network "+c)
			inCIDR(SGHAProxy, topology.PortPooler, c, "pooled read-write SQL (PgBouncer) from operator network "+c)
		}
		inCIDR(SGHAProxy, topology.PortSSH, c, "SSH to the jump host from operator network "+c)
	}
	if loadBalancer {
		in(SGHAProxy, topology.PortWrite, SGNLB, "read-write SQL and health checks from the load balancer")
		in(SGHAProxy, topology.PortRead, SGNLB, "read-only SQL and health checks from the load balancer")
		in(SGHAProxy, topology.PortPooler, SGNLB, "pooled SQL and health checks from the load balancer")
		out(SGNLB, topology.PortWrite, SGHAProxy, "load balancer to HAProxy read-write port")
		out(SGNLB, topology.PortRead, SGHAProxy, "load balancer to HAProxy read-only port")
		out(SGNLB, topology.PortPooler, SGHAProxy, "load balancer to PgBouncer")
	}
	in(SGHAProxy, topology.PortStats, SGHAProxy, "HAProxy stats page (HTTPS) through the jump host")
	out(SGHAProxy, topology.PortStats, SGHAProxy, "jump host to the other HAProxy node stats page")
	// pgha's tools reach the other HAProxy node through the jump host:
	// its leader and replica ports (routing checks, the planned
	// switchover's wait for the write path) and its PgBouncer (the
	// switchover's PAUSE/RESUME).
	in(SGHAProxy, topology.PortWrite, SGHAProxy, "leader port through the jump host (routing checks, switchover)")
	out(SGHAProxy, topology.PortWrite, SGHAProxy, "jump host to the other HAProxy node leader port")
	in(SGHAProxy, topology.PortRead, SGHAProxy, "replica port through the jump host (routing checks)")
	out(SGHAProxy, topology.PortRead, SGHAProxy, "jump host to the other HAProxy node replica port")
	in(SGHAProxy, topology.PortPooler, SGHAProxy, "PgBouncer admin console through the jump host (planned switchover)")
	out(SGHAProxy, topology.PortPooler, SGHAProxy, "jump host to the other HAProxy node PgBouncer")
	out(SGHAProxy, topology.PortPostgres, SGPatroni, "HAProxy to PostgreSQL")
	out(SGHAProxy, topology.PortPatroniAPI, SGPatroni, "HAProxy health checks of Patroni")
	out(SGHAProxy, topology.PortSSH, SGEtcd, "jump host SSH to etcd nodes")
	out(SGHAProxy, topology.PortSSH, SGPatroni, "jump host SSH to Patroni nodes")

	groups := []string{SGEtcd, SGPatroni, SGHAProxy}
	if monitoring {
		scraped := []struct {
			group string
			role  topology.Role
			extra []int // the role's service ports that serve /metrics too
		}{
			{SGEtcd, topology.RoleEtcd, []int{topology.PortEtcdClient}},
			{SGPatroni, topology.RolePatroni, []int{topology.PortPatroniAPI}},
			{SGHAProxy, topology.RoleHAProxy, nil},
		}
		for _, s := range scraped {
			for _, port := range append(s.role.MetricsPorts(), s.extra...) {
				in(s.group, port, SGMonitor, "metrics scraped by the monitoring node")
				out(SGMonitor, port, s.group, "Prometheus scrapes "+s.group+" metrics")
			}
		}
		in(SGMonitor, topology.PortPrometheus, SGHAProxy, "Prometheus through the jump hosts")
		in(SGMonitor, topology.PortSSH, SGHAProxy, "SSH from the jump hosts")
		out(SGHAProxy, topology.PortPrometheus, SGMonitor, "jump host to Prometheus")
		out(SGHAProxy, topology.PortSSH, SGMonitor, "jump host SSH to the monitoring node")
		groups = append(groups, SGMonitor)
	}

	// Package installation and SSM, for every node tier.
	for _, g := range groups {
		outCIDR(g, PortHTTPS, "0.0.0.0/0", "HTTPS for apt mirrors and the SSM API")
		outCIDR(g, PortHTTP, "0.0.0.0/0", "HTTP for Debian apt mirrors (packages are signed)")
	}
	return r
}

// Name is a stable resource name for the rule.
func (r Rule) Name(prefix string) string {
	dir := "out"
	if r.Ingress {
		dir = "in"
	}
	peer := r.Peer
	if r.CIDR != "" {
		peer = strings.NewReplacer(".", "-", "/", "-").Replace(r.CIDR)
	}
	return fmt.Sprintf("%s-%s-%s-%d-%s", prefix, r.Group, dir, r.Port, peer)
}

// NewSecurity creates the groups and every rule of Rules.
func NewSecurity(ctx *pulumi.Context, name string, args *SecurityArgs, opts ...pulumi.ResourceOption) (*Security, error) {
	s := &Security{Groups: map[string]*ec2.SecurityGroup{}}
	if err := ctx.RegisterComponentResource(TypeSecurity, name, s, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(s)
	groups := []string{SGEtcd, SGPatroni, SGHAProxy}
	if args.LoadBalancer {
		groups = append(groups, SGNLB)
	}
	if args.Monitoring {
		groups = append(groups, SGMonitor)
	}
	for _, g := range groups {
		// No inline rules: the provider then removes AWS's default
		// allow-all egress, and every rule below is its own resource.
		sg, err := ec2.NewSecurityGroup(ctx, name+"-"+g, &ec2.SecurityGroupArgs{
			VpcId:       args.VpcID,
			Description: pulumi.String(GroupDescriptions[g]),
			Tags:        args.Tags.Tags(g, "sg-"+g),
		}, parent)
		if err != nil {
			return nil, err
		}
		s.Groups[g] = sg
		s.Rules = append(s.Rules, sg)
	}
	for _, r := range Rules(args.AllowedCIDRs, args.LoadBalancer, args.Monitoring) {
		sg := s.Groups[r.Group]
		tags := args.Tags.Tags(r.Group, r.Name("sg"))
		var peerID pulumi.StringPtrInput
		var cidr pulumi.StringPtrInput
		if r.Peer != "" {
			peerID = s.Groups[r.Peer].ID().ToStringOutput().ToStringPtrOutput()
		} else {
			cidr = pulumi.String(r.CIDR)
		}
		if r.Ingress {
			rule, err := vpc.NewSecurityGroupIngressRule(ctx, r.Name(name), &vpc.SecurityGroupIngressRuleArgs{
				SecurityGroupId:           sg.ID(),
				IpProtocol:                pulumi.String(r.Protocol),
				FromPort:                  pulumi.Int(r.Port),
				ToPort:                    pulumi.Int(r.Port),
				ReferencedSecurityGroupId: peerID,
				CidrIpv4:                  cidr,
				Description:               pulumi.String(r.Description),
				Tags:                      tags,
			}, parent)
			if err != nil {
				return nil, err
			}
			s.Rules = append(s.Rules, rule)
			continue
		}
		rule, err := vpc.NewSecurityGroupEgressRule(ctx, r.Name(name), &vpc.SecurityGroupEgressRuleArgs{
			SecurityGroupId:           sg.ID(),
			IpProtocol:                pulumi.String(r.Protocol),
			FromPort:                  pulumi.Int(r.Port),
			ToPort:                    pulumi.Int(r.Port),
			ReferencedSecurityGroupId: peerID,
			CidrIpv4:                  cidr,
			Description:               pulumi.String(r.Description),
			Tags:                      tags,
		}, parent)
		if err != nil {
			return nil, err
		}
		s.Rules = append(s.Rules, rule)
	}
	outs := pulumi.Map{}
	for g, sg := range s.Groups {
		outs[g+"GroupId"] = sg.ID()
	}
	if err := ctx.RegisterResourceOutputs(s, outs); err != nil {
		return nil, err
	}
	return s, nil
}
