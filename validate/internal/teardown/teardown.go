// Package teardown proves, after `pulumi destroy`, that a stack left nothing
// behind in AWS. It lists by the stack's tags everything the program creates
// (and the network interfaces inside any VPC of the stack that is still
// there), and puts what costs money first.
package teardown

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	taggingtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"golang.org/x/sync/errgroup"

	"github.com/pgha/pgha/internal/outputs"
)

// Resource kinds, in report order: the ones that bill by the hour or the
// gigabyte first, then what only blocks the next deploy or clutters the account.
const (
	KindInstance         = "ec2 instance"
	KindNATGateway       = "nat gateway"
	KindLoadBalancer     = "load balancer"
	KindVolume           = "ebs volume"
	KindBucket           = "s3 bucket"
	KindKMSKey           = "kms key"
	KindElasticIP        = "elastic ip"
	KindTargetGroup      = "target group"
	KindNetworkInterface = "network interface"
	KindSecurityGroup    = "security group"
	KindSubnet           = "subnet"
	KindRouteTable       = "route table"
	KindInternetGateway  = "internet gateway"
	KindVPC              = "vpc"
	KindSSMParameter     = "ssm parameter"
	KindKeyPair          = "key pair"
	KindInstanceProfile  = "iam instance profile"
	KindRole             = "iam role"
)

// Kinds lists every kind in report order.
var Kinds = []string{
	KindInstance, KindNATGateway, KindLoadBalancer, KindVolume, KindBucket, KindKMSKey, KindElasticIP,
	KindTargetGroup, KindNetworkInterface, KindSecurityGroup, KindSubnet,
	KindRouteTable, KindInternetGateway, KindVPC, KindSSMParameter, KindKeyPair,
	KindInstanceProfile, KindRole,
}

// billable kinds cost money while they exist (a stopped instance still pays
// for its volumes; every public IPv4 address is charged).
var billable = map[string]bool{
	KindInstance: true, KindNATGateway: true, KindLoadBalancer: true,
	KindVolume: true, KindElasticIP: true, KindBucket: true, KindKMSKey: true,
}

// Leftover is one resource that is still there.
type Leftover struct {
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	State    string `json:"state,omitempty"`
	Billable bool   `json:"billable"`
	// Kept marks a data volume, or the backup bucket and its key, that the
	// stack protected from `pulumi destroy` (tag pgha:keep=true): left on
	// purpose, holding data.
	Kept bool `json:"kept,omitempty"`
}

// Report is the outcome of one check.
type Report struct {
	Project   string     `json:"project"`
	Stack     string     `json:"stack"`
	Region    string     `json:"region"`
	Leftovers []Leftover `json:"leftovers"`
}

// Clean is true when nothing of the stack remains but the data volumes it
// kept on purpose.
func (r Report) Clean() bool { return len(r.left()) == 0 }

// Kept lists the data volumes the stack protected from `pulumi destroy`.
func (r Report) Kept() []Leftover {
	var out []Leftover
	for _, l := range r.Leftovers {
		if l.Kept {
			out = append(out, l)
		}
	}
	return out
}

func (r Report) left() []Leftover {
	var out []Leftover
	for _, l := range r.Leftovers {
		if !l.Kept {
			out = append(out, l)
		}
	}
	return out
}

// Write prints the report as a table, billable things first, then the
// data volumes kept on purpose.
func (r Report) Write(w io.Writer) {
	left, kept := r.left(), r.Kept()
	if len(left) == 0 {
		fmt.Fprintf(w, "teardown: nothing of project %q stack %q is left in %s (the default VPC is not counted)", r.Project, r.Stack, r.Region)
		if len(kept) > 0 {
			fmt.Fprintf(w, " but the %d resource(s) it keeps on purpose", len(kept))
		}
		fmt.Fprintln(w)
	} else {
		nb := 0
		for _, l := range left {
			if l.Billable {
				nb++
			}
		}
		fmt.Fprintf(w, "teardown: %d resource(s) of project %q stack %q are left in %s, %d of them billable:\n", len(left), r.Project, r.Stack, r.Region, nb)
		table(w, left)
		fmt.Fprintln(w, "run `pulumi destroy` again, or delete these by hand, then rerun this check")
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "kept on purpose (pgha:protectDataVolumes, pgha:protectBackups): %d resource(s) holding the stack's data; they bill while they exist:\n", len(kept))
		table(w, kept)
		var vols []string
		for _, l := range kept {
			switch l.Kind {
			case KindVolume:
				vols = append(vols, l.ID)
			case KindBucket:
				fmt.Fprintf(w, "when the backups are no longer needed: aws s3 rb --region %s --force s3://%s (versioned: delete its object versions first)\n", r.Region, l.ID)
			case KindKMSKey:
				fmt.Fprintf(w, "and its key, after the bucket: aws kms schedule-key-deletion --region %s --key-id %s --pending-window-in-days 30\n", r.Region, l.ID)
			}
		}
		if len(vols) > 0 {
			fmt.Fprintf(w, "when the data is no longer needed (snapshot first if in doubt): for v in %s; do aws ec2 delete-volume --region %s --volume-id $v; done\n", strings.Join(vols, " "), r.Region)
		}
	}
}

func table(w io.Writer, ls []Leftover) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BILLABLE\tKIND\tID\tNAME\tSTATE")
	for _, l := range ls {
		b := ""
		if l.Billable {
			b = "$"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b, l.Kind, l.ID, dash(l.Name), dash(l.State))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Clients are the AWS APIs the check reads. NewClients builds them from one
// aws.Config; tests may point it anywhere.
type Clients struct {
	EC2 *ec2.Client
	ELB *elb.Client
	SSM *ssm.Client
	IAM *iam.Client
	// Tagging finds what the services' own lists cannot filter by tag:
	// the backup bucket and its KMS key.
	Tagging *tagging.Client
}

// NewClients builds the clients from cfg.
func NewClients(cfg aws.Config) Clients {
	return Clients{
		EC2:     ec2.NewFromConfig(cfg),
		ELB:     elb.NewFromConfig(cfg),
		SSM:     ssm.NewFromConfig(cfg),
		IAM:     iam.NewFromConfig(cfg),
		Tagging: tagging.NewFromConfig(cfg),
	}
}

// Check lists everything of the stack that is left in cfg's region.
func Check(ctx context.Context, cfg aws.Config, project, stack string) (Report, error) {
	return NewClients(cfg).Check(ctx, cfg.Region, project, stack)
}

// Check lists everything of the stack that is left.
func (c Clients) Check(ctx context.Context, region, project, stack string) (Report, error) {
	if project == "" || stack == "" {
		return Report{}, fmt.Errorf("the project and the stack are required (--project, --stack)")
	}
	f := finder{c: c, project: project, stack: stack}
	r := Report{Project: project, Stack: stack, Region: region}
	steps := []struct {
		what string
		fn   func(context.Context) ([]Leftover, error)
	}{
		{"instances", f.instances}, {"volumes", f.volumes}, {"backup buckets and keys", f.backupStore}, {"NAT gateways", f.natGateways},
		{"Elastic IPs", f.addresses}, {"load balancers", f.loadBalancers}, {"target groups", f.targetGroups},
		{"security groups", f.securityGroups}, {"subnets", f.subnets}, {"route tables", f.routeTables},
		{"internet gateways", f.internetGateways}, {"VPCs", f.vpcs}, {"SSM parameters", f.parameters},
		{"key pairs", f.keyPairs}, {"IAM instance profiles", f.instanceProfiles}, {"IAM roles", f.roles},
	}
	for _, s := range steps {
		got, err := s.fn(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("listing %s: %w", s.what, err)
		}
		r.Leftovers = append(r.Leftovers, got...)
	}
	// Network interfaces carry no tags of their own when AWS makes them for
	// an instance, a NAT gateway or a load balancer: look inside the
	// stack's VPCs that are still there, as well as by tag.
	var vpcIDs []string
	for _, l := range r.Leftovers {
		if l.Kind == KindVPC {
			vpcIDs = append(vpcIDs, l.ID)
		}
	}
	enis, err := f.networkInterfaces(ctx, vpcIDs)
	if err != nil {
		return Report{}, fmt.Errorf("listing network interfaces: %w", err)
	}
	r.Leftovers = append(r.Leftovers, enis...)
	sortLeftovers(r.Leftovers)
	return r, nil
}

func sortLeftovers(ls []Leftover) {
	rank := map[string]int{}
	for i, k := range Kinds {
		rank[k] = i
	}
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Billable != b.Billable {
			return a.Billable
		}
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.ID < b.ID
	})
}

type finder struct {
	c              Clients
	project, stack string
}

func (f finder) leftover(kind, id, name, state string) Leftover {
	return Leftover{Kind: kind, ID: id, Name: name, State: state, Billable: billable[kind]}
}

// ec2Filters selects the stack's resources by tag, plus any extra filters.
func (f finder) ec2Filters(extra ...ec2types.Filter) []ec2types.Filter {
	return append([]ec2types.Filter{
		{Name: aws.String("tag:" + outputs.TagProject), Values: []string{f.project}},
		{Name: aws.String("tag:" + outputs.TagStack), Values: []string{f.stack}},
	}, extra...)
}

// ours double-checks the tags the API returned, so that a filter the
// service ignored can never make another stack's resources ours.
func (f finder) ours(tags map[string]string) bool {
	return tags[outputs.TagProject] == f.project && tags[outputs.TagStack] == f.stack
}

func ec2Tags(ts []ec2types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func (f finder) instances(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	in := &ec2.DescribeInstancesInput{Filters: f.ec2Filters(ec2types.Filter{
		Name:   aws.String("instance-state-name"),
		Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"},
	})}
	if err := eachPage(ctx, ec2.NewDescribeInstancesPaginator(f.c.EC2, in), func(page *ec2.DescribeInstancesOutput) {
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				tags := ec2Tags(i.Tags)
				state := ""
				if i.State != nil {
					state = string(i.State.Name)
				}
				if !f.ours(tags) || state == string(ec2types.InstanceStateNameTerminated) {
					continue
				}
				out = append(out, f.leftover(KindInstance, aws.ToString(i.InstanceId), tags["Name"], state))
			}
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) volumes(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeVolumesPaginator(f.c.EC2, &ec2.DescribeVolumesInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeVolumesOutput) {
		for _, v := range page.Volumes {
			tags := ec2Tags(v.Tags)
			if !f.ours(tags) || v.State == ec2types.VolumeStateDeleted {
				continue
			}
			l := f.leftover(KindVolume, aws.ToString(v.VolumeId), tags["Name"],
				fmt.Sprintf("%s, %d GiB", v.State, aws.ToInt32(v.Size)))
			l.Kept = tags[outputs.TagKeep] == "true"
			out = append(out, l)
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// backupStore lists the backup bucket and its KMS key by the stack's tags
// (the Resource Groups Tagging API: neither S3 nor KMS filters its lists by
// tag). Tagged pgha:keep=true, they were protected on purpose.
func (f finder) backupStore(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	in := &tagging.GetResourcesInput{
		ResourceTypeFilters: []string{"s3:bucket", "kms:key"},
		TagFilters: []taggingtypes.TagFilter{
			{Key: aws.String(outputs.TagProject), Values: []string{f.project}},
			{Key: aws.String(outputs.TagStack), Values: []string{f.stack}},
		},
	}
	if err := eachPage(ctx, tagging.NewGetResourcesPaginator(f.c.Tagging, in), func(page *tagging.GetResourcesOutput) {
		for _, m := range page.ResourceTagMappingList {
			tags := map[string]string{}
			for _, t := range m.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if !f.ours(tags) {
				continue
			}
			arn := aws.ToString(m.ResourceARN)
			kind, id := KindKMSKey, arn[strings.LastIndex(arn, "/")+1:]
			if strings.HasPrefix(arn, "arn:") && strings.Contains(arn, ":s3:::") {
				kind, id = KindBucket, arn[strings.LastIndex(arn, ":")+1:]
			}
			l := f.leftover(kind, id, tags["Name"], "")
			l.Kept = tags[outputs.TagKeep] == "true"
			out = append(out, l)
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) natGateways(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	in := &ec2.DescribeNatGatewaysInput{Filter: f.ec2Filters(ec2types.Filter{
		Name: aws.String("state"), Values: []string{"pending", "available", "deleting", "failed"},
	})}
	if err := eachPage(ctx, ec2.NewDescribeNatGatewaysPaginator(f.c.EC2, in), func(page *ec2.DescribeNatGatewaysOutput) {
		for _, n := range page.NatGateways {
			tags := ec2Tags(n.Tags)
			if !f.ours(tags) || n.State == ec2types.NatGatewayStateDeleted {
				continue
			}
			out = append(out, f.leftover(KindNATGateway, aws.ToString(n.NatGatewayId), tags["Name"], string(n.State)))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) addresses(ctx context.Context) ([]Leftover, error) {
	// DescribeAddresses is not paginated.
	res, err := f.c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: f.ec2Filters()})
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, a := range res.Addresses {
		tags := ec2Tags(a.Tags)
		if !f.ours(tags) {
			continue
		}
		state := "unassociated"
		if a.AssociationId != nil {
			state = "associated"
		}
		out = append(out, f.leftover(KindElasticIP, aws.ToString(a.AllocationId), tags["Name"], aws.ToString(a.PublicIp)+", "+state))
	}
	return out, nil
}

func (f finder) networkInterfaces(ctx context.Context, vpcIDs []string) ([]Leftover, error) {
	seen := map[string]bool{}
	var out []Leftover
	collect := func(in *ec2.DescribeNetworkInterfacesInput, needTags bool) error {
		if err := eachPage(ctx, ec2.NewDescribeNetworkInterfacesPaginator(f.c.EC2, in), func(page *ec2.DescribeNetworkInterfacesOutput) {
			for _, n := range page.NetworkInterfaces {
				id := aws.ToString(n.NetworkInterfaceId)
				if seen[id] || (needTags && !f.ours(ec2Tags(n.TagSet))) {
					continue
				}
				seen[id] = true
				out = append(out, f.leftover(KindNetworkInterface, id, aws.ToString(n.Description), string(n.Status)))
			}
		}); err != nil {
			return err
		}
		return nil
	}
	if err := collect(&ec2.DescribeNetworkInterfacesInput{Filters: f.ec2Filters()}, true); err != nil {
		return nil, err
	}
	if len(vpcIDs) > 0 {
		in := &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String("vpc-id"), Values: vpcIDs}}}
		if err := collect(in, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (f finder) securityGroups(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeSecurityGroupsPaginator(f.c.EC2, &ec2.DescribeSecurityGroupsInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeSecurityGroupsOutput) {
		for _, g := range page.SecurityGroups {
			if !f.ours(ec2Tags(g.Tags)) {
				continue
			}
			out = append(out, f.leftover(KindSecurityGroup, aws.ToString(g.GroupId), aws.ToString(g.GroupName), aws.ToString(g.VpcId)))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) subnets(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeSubnetsPaginator(f.c.EC2, &ec2.DescribeSubnetsInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeSubnetsOutput) {
		for _, s := range page.Subnets {
			tags := ec2Tags(s.Tags)
			if !f.ours(tags) {
				continue
			}
			out = append(out, f.leftover(KindSubnet, aws.ToString(s.SubnetId), tags["Name"], aws.ToString(s.CidrBlock)+" "+aws.ToString(s.AvailabilityZone)))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) routeTables(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeRouteTablesPaginator(f.c.EC2, &ec2.DescribeRouteTablesInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeRouteTablesOutput) {
		for _, rt := range page.RouteTables {
			tags := ec2Tags(rt.Tags)
			if !f.ours(tags) {
				continue
			}
			out = append(out, f.leftover(KindRouteTable, aws.ToString(rt.RouteTableId), tags["Name"], aws.ToString(rt.VpcId)))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) internetGateways(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeInternetGatewaysPaginator(f.c.EC2, &ec2.DescribeInternetGatewaysInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeInternetGatewaysOutput) {
		for _, g := range page.InternetGateways {
			tags := ec2Tags(g.Tags)
			if !f.ours(tags) {
				continue
			}
			state := "detached"
			if len(g.Attachments) > 0 {
				state = "attached to " + aws.ToString(g.Attachments[0].VpcId)
			}
			out = append(out, f.leftover(KindInternetGateway, aws.ToString(g.InternetGatewayId), tags["Name"], state))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) vpcs(ctx context.Context) ([]Leftover, error) {
	var out []Leftover
	if err := eachPage(ctx, ec2.NewDescribeVpcsPaginator(f.c.EC2, &ec2.DescribeVpcsInput{Filters: f.ec2Filters()}), func(page *ec2.DescribeVpcsOutput) {
		for _, v := range page.Vpcs {
			tags := ec2Tags(v.Tags)
			// The default VPC belongs to the account, never to a stack.
			if aws.ToBool(v.IsDefault) || !f.ours(tags) {
				continue
			}
			out = append(out, f.leftover(KindVPC, aws.ToString(v.VpcId), tags["Name"], aws.ToString(v.CidrBlock)))
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

func (f finder) keyPairs(ctx context.Context) ([]Leftover, error) {
	// DescribeKeyPairs is not paginated.
	res, err := f.c.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: f.ec2Filters()})
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, k := range res.KeyPairs {
		if !f.ours(ec2Tags(k.Tags)) {
			continue
		}
		out = append(out, f.leftover(KindKeyPair, aws.ToString(k.KeyPairId), aws.ToString(k.KeyName), ""))
	}
	return out, nil
}

// elbTagged returns the ARNs among arns whose tags mark them as the
// stack's. The describe calls return no tags, so they are fetched in the
// batches of 20 that DescribeTags accepts.
func (f finder) elbTagged(ctx context.Context, arns []string) (map[string]bool, error) {
	ours := map[string]bool{}
	for len(arns) > 0 {
		n := min(20, len(arns))
		res, err := f.c.ELB.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: arns[:n]})
		if err != nil {
			return nil, err
		}
		for _, d := range res.TagDescriptions {
			m := map[string]string{}
			for _, t := range d.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if f.ours(m) {
				ours[aws.ToString(d.ResourceArn)] = true
			}
		}
		arns = arns[n:]
	}
	return ours, nil
}

func (f finder) loadBalancers(ctx context.Context) ([]Leftover, error) {
	var all []elbtypes.LoadBalancer
	if err := eachPage(ctx, elb.NewDescribeLoadBalancersPaginator(f.c.ELB, &elb.DescribeLoadBalancersInput{}), func(page *elb.DescribeLoadBalancersOutput) {
		all = append(all, page.LoadBalancers...)
	}); err != nil {
		return nil, err
	}
	var arns []string
	for _, lb := range all {
		arns = append(arns, aws.ToString(lb.LoadBalancerArn))
	}
	ours, err := f.elbTagged(ctx, arns)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, lb := range all {
		if !ours[aws.ToString(lb.LoadBalancerArn)] {
			continue
		}
		state := string(lb.Type)
		if lb.State != nil {
			state += ", " + string(lb.State.Code)
		}
		out = append(out, f.leftover(KindLoadBalancer, aws.ToString(lb.LoadBalancerArn), aws.ToString(lb.LoadBalancerName), state))
	}
	return out, nil
}

func (f finder) targetGroups(ctx context.Context) ([]Leftover, error) {
	var all []elbtypes.TargetGroup
	if err := eachPage(ctx, elb.NewDescribeTargetGroupsPaginator(f.c.ELB, &elb.DescribeTargetGroupsInput{}), func(page *elb.DescribeTargetGroupsOutput) {
		all = append(all, page.TargetGroups...)
	}); err != nil {
		return nil, err
	}
	var arns []string
	for _, tg := range all {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	ours, err := f.elbTagged(ctx, arns)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, tg := range all {
		if ours[aws.ToString(tg.TargetGroupArn)] {
			out = append(out, f.leftover(KindTargetGroup, aws.ToString(tg.TargetGroupArn), aws.ToString(tg.TargetGroupName), fmt.Sprintf("%s:%d", tg.Protocol, aws.ToInt32(tg.Port))))
		}
	}
	return out, nil
}

// ParameterPath is where the program keeps the stack's secrets in SSM.
func ParameterPath(project, stack string) string { return "/" + project + "/" + stack + "/" }

func (f finder) parameters(ctx context.Context) ([]Leftover, error) {
	seen := map[string]bool{}
	var out []Leftover
	// By path (how the program names them) and by tag (in case a parameter
	// was named otherwise); the two lists usually coincide.
	queries := [][]ssmtypes.ParameterStringFilter{
		{{Key: aws.String("Path"), Option: aws.String("Recursive"), Values: []string{strings.TrimSuffix(ParameterPath(f.project, f.stack), "/")}}},
		{
			{Key: aws.String("tag:" + outputs.TagProject), Values: []string{f.project}},
			{Key: aws.String("tag:" + outputs.TagStack), Values: []string{f.stack}},
		},
	}
	for _, q := range queries {
		if err := eachPage(ctx, ssm.NewDescribeParametersPaginator(f.c.SSM, &ssm.DescribeParametersInput{ParameterFilters: q}), func(page *ssm.DescribeParametersOutput) {
			for _, m := range page.Parameters {
				name := aws.ToString(m.Name)
				if seen[name] {
					continue
				}
				seen[name] = true
				out = append(out, f.leftover(KindSSMParameter, name, "", string(m.Type)))
			}
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// iamTagged runs tagsOf over names with a few workers: IAM has no tag
// filter on its list calls, so each role or profile is asked for its tags.
// The first error stops the rest.
func (f finder) iamTagged(ctx context.Context, names []string, tagsOf func(context.Context, string) (map[string]string, error)) (map[string]bool, error) {
	var mu sync.Mutex
	ours := map[string]bool{}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, name := range names {
		g.Go(func() error {
			tags, err := tagsOf(ctx, name)
			// Deleted between the list and the tag call: it is gone.
			var gone *iamtypes.NoSuchEntityException
			if errors.As(err, &gone) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if f.ours(tags) {
				mu.Lock()
				ours[name] = true
				mu.Unlock()
			}
			return nil
		})
	}
	return ours, g.Wait()
}

func (f finder) roles(ctx context.Context) ([]Leftover, error) {
	var names []string
	err := eachPage(ctx, iam.NewListRolesPaginator(f.c.IAM, &iam.ListRolesInput{}), func(page *iam.ListRolesOutput) {
		for _, r := range page.Roles {
			names = append(names, aws.ToString(r.RoleName))
		}
	})
	if err != nil {
		return nil, err
	}
	return f.iamLeftovers(ctx, KindRole, names, func(ctx context.Context, name string) (map[string]string, error) {
		m := map[string]string{}
		p := iam.NewListRoleTagsPaginator(f.c.IAM, &iam.ListRoleTagsInput{RoleName: aws.String(name)})
		return m, eachPage(ctx, p, func(page *iam.ListRoleTagsOutput) { addIAMTags(m, page.Tags) })
	})
}

func (f finder) instanceProfiles(ctx context.Context) ([]Leftover, error) {
	var names []string
	err := eachPage(ctx, iam.NewListInstanceProfilesPaginator(f.c.IAM, &iam.ListInstanceProfilesInput{}), func(page *iam.ListInstanceProfilesOutput) {
		for _, ip := range page.InstanceProfiles {
			names = append(names, aws.ToString(ip.InstanceProfileName))
		}
	})
	if err != nil {
		return nil, err
	}
	return f.iamLeftovers(ctx, KindInstanceProfile, names, func(ctx context.Context, name string) (map[string]string, error) {
		m := map[string]string{}
		p := iam.NewListInstanceProfileTagsPaginator(f.c.IAM, &iam.ListInstanceProfileTagsInput{InstanceProfileName: aws.String(name)})
		return m, eachPage(ctx, p, func(page *iam.ListInstanceProfileTagsOutput) { addIAMTags(m, page.Tags) })
	})
}

// iamLeftovers keeps the names whose tags mark them as this stack's, in
// list order.
func (f finder) iamLeftovers(ctx context.Context, kind string, names []string, tagsOf func(context.Context, string) (map[string]string, error)) ([]Leftover, error) {
	ours, err := f.iamTagged(ctx, names, tagsOf)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, n := range names {
		if ours[n] {
			out = append(out, f.leftover(kind, n, "", ""))
		}
	}
	return out, nil
}

// pager is what every aws-sdk-go-v2 IAM paginator offers.
// pager is every aws-sdk-go-v2 paginator: T its page, O its client's
// options.
type pager[T, O any] interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(O)) (T, error)
}

// eachPage hands each page of p to each, and stops at the first error.
func eachPage[T, O any](ctx context.Context, p pager[T, O], each func(T)) error {
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		each(page)
	}
	return nil
}

func addIAMTags(m map[string]string, tags []iamtypes.Tag) {
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
}
