// Package topology is the single IP plan of a pgha cluster: which nodes
// exist, which Availability Zone (by index) and subnet each lives in, and the
// fixed private address each one gets. The AWS program, the lab and the
// userdata renderers all derive addresses from here, so etcd's
// initial-cluster, Patroni's etcd3 hosts and HAProxy's servers can be rendered
// before any instance exists.
package topology

import (
	"fmt"
	"net/netip"
)

// Role is what a node runs.
type Role string

const (
	RoleEtcd    Role = "etcd"
	RolePatroni Role = "patroni"
	RoleHAProxy Role = "haproxy"
	// RoleMonitor is the optional monitoring node (Prometheus). It watches
	// the cluster and is not part of it: Plan.Nodes never holds it.
	RoleMonitor Role = "monitor"
)

// Tier says which kind of subnet a node sits in.
type Tier string

const (
	Public  Tier = "public"
	Private Tier = "private"
)

// DefaultVPCCIDR is the VPC the AWS program creates and the lab imitates.
const DefaultVPCCIDR = "10.42.0.0/16"

// AZCount is fixed: the cluster spreads every tier over three zones.
const AZCount = 3

// Node is one host of the cluster.
type Node struct {
	Name    string     `json:"name"`
	Role    Role       `json:"role"`
	AZIndex int        `json:"azIndex"`
	Tier    Tier       `json:"tier"`
	IP      netip.Addr `json:"ip"`
}

// Subnet is one /24 of the plan.
type Subnet struct {
	Name    string       `json:"name"`
	Tier    Tier         `json:"tier"`
	AZIndex int          `json:"azIndex"`
	CIDR    netip.Prefix `json:"cidr"`
}

// Plan is the whole address layout.
type Plan struct {
	VPC     netip.Prefix `json:"vpc"`
	Subnets []Subnet     `json:"subnets"`
	Nodes   []Node       `json:"nodes"`
}

// Host offsets inside each /24. AWS reserves .0-.3 and .255 of every subnet.
const (
	etcdHost    = 10
	patroniHost = 20
	haproxyHost = 30
	monitorHost = 40
)

// New lays out the default 3 etcd + 3 Patroni + 2 HAProxy cluster in vpcCIDR.
// The VPC must be an IPv4 prefix between /16 and /21: public subnets take the
// /24s at index 0-2 and private subnets the /24s at index 4-6.
func New(vpcCIDR string) (Plan, error) {
	vpc, err := netip.ParsePrefix(vpcCIDR)
	if err != nil {
		return Plan{}, fmt.Errorf("vpc CIDR %q is not a CIDR (want e.g. %s): %v", vpcCIDR, DefaultVPCCIDR, err)
	}
	if !vpc.Addr().Is4() {
		return Plan{}, fmt.Errorf("vpc CIDR %q must be IPv4 (e.g. %s)", vpcCIDR, DefaultVPCCIDR)
	}
	if vpc.Masked() != vpc {
		return Plan{}, fmt.Errorf("vpc CIDR %q has host bits set; use %s", vpcCIDR, vpc.Masked())
	}
	if vpc.Bits() < 16 || vpc.Bits() > 21 {
		return Plan{}, fmt.Errorf("vpc CIDR %q must be between /16 and /21 to hold six /24 subnets (AWS allows /16 at most)", vpcCIDR)
	}
	p := Plan{VPC: vpc}
	for az := 0; az < AZCount; az++ {
		p.Subnets = append(p.Subnets, Subnet{
			Name: fmt.Sprintf("public-%d", az+1), Tier: Public, AZIndex: az, CIDR: slash24(vpc, az),
		})
	}
	for az := 0; az < AZCount; az++ {
		p.Subnets = append(p.Subnets, Subnet{
			Name: fmt.Sprintf("private-%d", az+1), Tier: Private, AZIndex: az, CIDR: slash24(vpc, 4+az),
		})
	}
	for az := 0; az < AZCount; az++ {
		p.Nodes = append(p.Nodes, Node{
			Name: fmt.Sprintf("etcd-%d", az+1), Role: RoleEtcd, AZIndex: az, Tier: Private,
			IP: host(slash24(vpc, 4+az), etcdHost),
		})
	}
	for az := 0; az < AZCount; az++ {
		p.Nodes = append(p.Nodes, Node{
			Name: fmt.Sprintf("pg-%d", az+1), Role: RolePatroni, AZIndex: az, Tier: Private,
			IP: host(slash24(vpc, 4+az), patroniHost),
		})
	}
	for az := 0; az < 2; az++ {
		p.Nodes = append(p.Nodes, Node{
			Name: fmt.Sprintf("haproxy-%d", az+1), Role: RoleHAProxy, AZIndex: az, Tier: Public,
			IP: host(slash24(vpc, az), haproxyHost),
		})
	}
	return p, nil
}

// Monitor is the monitoring node's place in the plan: the first private
// subnet, beside etcd-1 and pg-1. It is not in Nodes, which are the
// cluster; whether it exists is the stack's choice (pgha:monitoring).
func (p Plan) Monitor() Node {
	return Node{Name: "monitor-1", Role: RoleMonitor, AZIndex: 0, Tier: Private, IP: host(slash24(p.VPC, 4), monitorHost)}
}

// ByRole returns the nodes of one role in plan order.
func (p Plan) ByRole(r Role) []Node {
	var out []Node
	for _, n := range p.Nodes {
		if n.Role == r {
			out = append(out, n)
		}
	}
	return out
}

// Node finds a node by name.
func (p Plan) Node(name string) (Node, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Subnet returns the subnet of a tier in an AZ.
func (p Plan) Subnet(t Tier, az int) (Subnet, bool) {
	for _, s := range p.Subnets {
		if s.Tier == t && s.AZIndex == az {
			return s, true
		}
	}
	return Subnet{}, false
}

// SubnetOf returns the subnet that holds a node.
func (p Plan) SubnetOf(n Node) Subnet {
	s, _ := p.Subnet(n.Tier, n.AZIndex)
	return s
}

func slash24(vpc netip.Prefix, index int) netip.Prefix {
	a := vpc.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(index) << 8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), 0}), 24)
}

func host(subnet netip.Prefix, h int) netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(h)
	return netip.AddrFrom4(a)
}
