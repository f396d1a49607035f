package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/topology"
)

// NetworkArgs describe the VPC.
type NetworkArgs struct {
	Plan  topology.Plan
	Zones []string // one AZ name per plan AZ index; exactly topology.AZCount
	// PerAZNAT puts one NAT gateway in every AZ. Otherwise a single gateway
	// in AZ 1 serves all private subnets: cheaper, but an AZ 1 outage cuts
	// the private tiers off from apt and SSM (not from each other).
	PerAZNAT bool
	Tags     Tagger
}

// Network is the VPC with a public and a private subnet in each of three AZs.
type Network struct {
	pulumi.ResourceState

	VpcID pulumi.IDOutput
	// Subnet IDs indexed by AZ index (0..2).
	PublicSubnetIDs  []pulumi.IDOutput
	PrivateSubnetIDs []pulumi.IDOutput
	// Egress is what a node needs before it boots: the gateways, route
	// tables and their associations.
	Egress Dependencies
	// Internet is what makes the public subnets public: the internet
	// gateway, the public route table and its associations. An
	// internet-facing load balancer needs it before it is created.
	Internet Dependencies
}

// NewNetwork builds the VPC, subnets, internet gateway, NAT and routes.
func NewNetwork(ctx *pulumi.Context, name string, args *NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	if len(args.Zones) != topology.AZCount {
		return nil, fmt.Errorf("network needs %d availability zones, got %d", topology.AZCount, len(args.Zones))
	}
	n := &Network{}
	if err := ctx.RegisterComponentResource(TypeNetwork, name, n, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(n)
	tags := func(child string) pulumi.StringMap { return args.Tags.Tags(RoleNetwork, child) }

	vpc, err := ec2.NewVpc(ctx, name+"-vpc", &ec2.VpcArgs{
		CidrBlock:          pulumi.String(args.Plan.VPC.String()),
		EnableDnsSupport:   pulumi.Bool(true), // the SSM and apt endpoints are resolved through the VPC resolver
		EnableDnsHostnames: pulumi.Bool(true),
		Tags:               tags("vpc"),
	}, parent)
	if err != nil {
		return nil, err
	}
	n.VpcID = vpc.ID()

	igw, err := ec2.NewInternetGateway(ctx, name+"-igw", &ec2.InternetGatewayArgs{
		VpcId: vpc.ID(),
		Tags:  tags("igw"),
	}, parent)
	if err != nil {
		return nil, err
	}
	n.Egress = append(n.Egress, igw)
	n.Internet = append(n.Internet, igw)

	subnets := map[topology.Tier][]*ec2.Subnet{}
	for _, s := range args.Plan.Subnets {
		sn, err := ec2.NewSubnet(ctx, fmt.Sprintf("%s-%s", name, s.Name), &ec2.SubnetArgs{
			VpcId:            vpc.ID(),
			CidrBlock:        pulumi.String(s.CIDR.String()),
			AvailabilityZone: pulumi.String(args.Zones[s.AZIndex]),
			// Public addresses are given explicitly (Elastic IPs on the
			// HAProxy nodes), never by default.
			MapPublicIpOnLaunch: pulumi.Bool(false),
			Tags:                tags(s.Name),
		}, parent)
		if err != nil {
			return nil, err
		}
		subnets[s.Tier] = append(subnets[s.Tier], sn)
	}
	if len(subnets[topology.Public]) != topology.AZCount || len(subnets[topology.Private]) != topology.AZCount {
		return nil, fmt.Errorf("the IP plan must hold %d public and %d private subnets", topology.AZCount, topology.AZCount)
	}
	for az := 0; az < topology.AZCount; az++ {
		n.PublicSubnetIDs = append(n.PublicSubnetIDs, subnets[topology.Public][az].ID())
		n.PrivateSubnetIDs = append(n.PrivateSubnetIDs, subnets[topology.Private][az].ID())
	}

	publicRT, err := ec2.NewRouteTable(ctx, name+"-public-rt", &ec2.RouteTableArgs{
		VpcId: vpc.ID(),
		Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{
			CidrBlock: pulumi.String("0.0.0.0/0"),
			GatewayId: igw.ID(),
		}},
		Tags: tags("public-rt"),
	}, parent)
	if err != nil {
		return nil, err
	}
	n.Egress = append(n.Egress, publicRT)
	n.Internet = append(n.Internet, publicRT)
	for az, sn := range subnets[topology.Public] {
		rta, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-public-rta-%d", name, az+1), &ec2.RouteTableAssociationArgs{
			SubnetId:     sn.ID(),
			RouteTableId: publicRT.ID(),
		}, parent)
		if err != nil {
			return nil, err
		}
		n.Egress = append(n.Egress, rta)
		n.Internet = append(n.Internet, rta)
	}

	natCount := 1
	if args.PerAZNAT {
		natCount = topology.AZCount
	}
	var nats []*ec2.NatGateway
	for i := 0; i < natCount; i++ {
		eip, err := ec2.NewEip(ctx, fmt.Sprintf("%s-nat-eip-%d", name, i+1), &ec2.EipArgs{
			Domain: pulumi.String("vpc"),
			Tags:   tags(fmt.Sprintf("nat-eip-%d", i+1)),
		}, parent, pulumi.DependsOn([]pulumi.Resource{igw}))
		if err != nil {
			return nil, err
		}
		nat, err := ec2.NewNatGateway(ctx, fmt.Sprintf("%s-nat-%d", name, i+1), &ec2.NatGatewayArgs{
			AllocationId: eip.ID(),
			SubnetId:     subnets[topology.Public][i].ID(),
			Tags:         tags(fmt.Sprintf("nat-%d", i+1)),
		}, parent, pulumi.DependsOn([]pulumi.Resource{igw}))
		if err != nil {
			return nil, err
		}
		nats = append(nats, nat)
		n.Egress = append(n.Egress, nat)
	}

	// One private route table per AZ even with a single NAT, so switching
	// natGateways to perAz only changes routes, never associations.
	for az, sn := range subnets[topology.Private] {
		nat := nats[0]
		if args.PerAZNAT {
			nat = nats[az]
		}
		rt, err := ec2.NewRouteTable(ctx, fmt.Sprintf("%s-private-rt-%d", name, az+1), &ec2.RouteTableArgs{
			VpcId: vpc.ID(),
			Routes: ec2.RouteTableRouteArray{ec2.RouteTableRouteArgs{
				CidrBlock:    pulumi.String("0.0.0.0/0"),
				NatGatewayId: nat.ID(),
			}},
			Tags: tags(fmt.Sprintf("private-rt-%d", az+1)),
		}, parent)
		if err != nil {
			return nil, err
		}
		rta, err := ec2.NewRouteTableAssociation(ctx, fmt.Sprintf("%s-private-rta-%d", name, az+1), &ec2.RouteTableAssociationArgs{
			SubnetId:     sn.ID(),
			RouteTableId: rt.ID(),
		}, parent)
		if err != nil {
			return nil, err
		}
		n.Egress = append(n.Egress, rt, rta)
	}

	outs := pulumi.Map{"vpcId": vpc.ID()}
	for az := 0; az < topology.AZCount; az++ {
		outs[fmt.Sprintf("publicSubnet%d", az+1)] = n.PublicSubnetIDs[az]
		outs[fmt.Sprintf("privateSubnet%d", az+1)] = n.PrivateSubnetIDs[az]
	}
	if err := ctx.RegisterResourceOutputs(n, outs); err != nil {
		return nil, err
	}
	return n, nil
}
