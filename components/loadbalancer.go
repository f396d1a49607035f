package components

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// LoadBalancerArgs describe the optional network load balancer in front of
// the HAProxy pair.
type LoadBalancerArgs struct {
	VpcID           pulumi.IDOutput
	SubnetIDs       []pulumi.IDOutput // the public subnets, one per AZ
	SecurityGroupID pulumi.IDOutput
	Ports           []int // 5000, 5001 and PgBouncer's 6432
	// DependsOn must hold the network's Internet: AWS refuses an
	// internet-facing load balancer in a VPC without an internet gateway.
	DependsOn []pulumi.Resource
	Tags      Tagger
}

// LoadBalancer is one stable DNS name across the AZs for the SQL ports.
// It is built in two steps: NewLoadBalancer creates the NLB, its target
// groups and listeners, whose DNS name the HAProxy nodes' certificates
// then name; Attach registers the HAProxy instances once they exist.
type LoadBalancer struct {
	pulumi.ResourceState

	DNSName pulumi.StringOutput

	name   string
	ports  []int
	groups []*lb.TargetGroup // by port, as ports
}

// NewLoadBalancer creates the NLB and a target group and listener per
// port, with no target yet.
func NewLoadBalancer(ctx *pulumi.Context, name string, args *LoadBalancerArgs, opts ...pulumi.ResourceOption) (*LoadBalancer, error) {
	l := &LoadBalancer{name: name, ports: args.Ports}
	if err := ctx.RegisterComponentResource(TypeEndpoint, name, l, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(l)
	var subnets pulumi.StringArray
	for _, id := range args.SubnetIDs {
		subnets = append(subnets, id)
	}
	nlb, err := lb.NewLoadBalancer(ctx, name+"-nlb", &lb.LoadBalancerArgs{
		LoadBalancerType: pulumi.String("network"),
		Internal:         pulumi.Bool(false),
		Subnets:          subnets,
		// With a security group the HAProxy group can admit the NLB by
		// reference instead of opening 5000/5001 to the whole VPC.
		SecurityGroups:               pulumi.StringArray{args.SecurityGroupID},
		EnableCrossZoneLoadBalancing: pulumi.Bool(true),
		Tags:                         args.Tags.Tags(RoleEndpoint, "nlb"),
	}, parent, pulumi.DependsOn(args.DependsOn))
	if err != nil {
		return nil, err
	}
	l.DNSName = nlb.DnsName
	for _, port := range args.Ports {
		tg, err := lb.NewTargetGroup(ctx, fmt.Sprintf("%s-tg-%d", name, port), &lb.TargetGroupArgs{
			Port:       pulumi.Int(port),
			Protocol:   pulumi.String("TCP"),
			TargetType: pulumi.String("instance"),
			VpcId:      args.VpcID,
			// HAProxy itself routes to the right PostgreSQL node; the NLB
			// only needs to know which HAProxy is alive.
			HealthCheck: lb.TargetGroupHealthCheckArgs{
				Protocol:           pulumi.String("TCP"),
				Port:               pulumi.String("traffic-port"),
				Interval:           pulumi.Int(10),
				HealthyThreshold:   pulumi.Int(2),
				UnhealthyThreshold: pulumi.Int(2),
			},
			// Close client connections to a failed HAProxy at once, as
			// HAProxy's own on-marked-down shutdown-sessions does.
			ConnectionTermination: pulumi.Bool(true),
			DeregistrationDelay:   pulumi.Int(10),
			Tags:                  args.Tags.Tags(RoleEndpoint, fmt.Sprintf("tg-%d", port)),
		}, parent)
		if err != nil {
			return nil, err
		}
		if _, err := lb.NewListener(ctx, fmt.Sprintf("%s-listener-%d", name, port), &lb.ListenerArgs{
			LoadBalancerArn: nlb.Arn,
			Port:            pulumi.Int(port),
			Protocol:        pulumi.String("TCP"),
			DefaultActions: lb.ListenerDefaultActionArray{lb.ListenerDefaultActionArgs{
				Type:           pulumi.String("forward"),
				TargetGroupArn: tg.Arn,
			}},
			Tags: args.Tags.Tags(RoleEndpoint, fmt.Sprintf("listener-%d", port)),
		}, parent); err != nil {
			return nil, err
		}
		l.groups = append(l.groups, tg)
	}
	return l, nil
}

// Attach registers every target (the HAProxy nodes' instances, in plan
// order) with each target group, and completes the component. The
// attachments keep the names and parent they had when NewLoadBalancer
// made them, so an existing stack keeps them.
func (l *LoadBalancer) Attach(ctx *pulumi.Context, targets []*ec2.Instance) error {
	for j, port := range l.ports {
		for i, inst := range targets {
			if _, err := lb.NewTargetGroupAttachment(ctx, fmt.Sprintf("%s-tg-%d-haproxy-%d", l.name, port, i+1), &lb.TargetGroupAttachmentArgs{
				TargetGroupArn: l.groups[j].Arn,
				TargetId:       inst.ID(),
				Port:           pulumi.Int(port),
			}, pulumi.Parent(l)); err != nil {
				return err
			}
		}
	}
	return ctx.RegisterResourceOutputs(l, pulumi.Map{"dnsName": l.DNSName})
}
