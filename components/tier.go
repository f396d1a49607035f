package components

import (
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ebs"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/iampolicy"
	"github.com/pgha/pgha/internal/topology"
	"github.com/pgha/pgha/userdata"
)

// TierArgs describe one tier of nodes (etcd, Patroni or HAProxy). The tier
// gets one instance per plan node of its role, each at its planned address.
type TierArgs struct {
	Nodes []topology.Node // this tier's nodes, from the IP plan
	Zones []string        // AZ names by AZ index
	// SubnetIDs by AZ index: the public subnets for HAProxy, the private
	// ones for the others.
	SubnetIDs       []pulumi.IDOutput
	SecurityGroupID pulumi.IDOutput
	AMI             string
	InstanceType    string
	VolumeSize      int // GiB, encrypted gp3 root volume
	KeyName         pulumi.StringInput
	// UserData is each node's #cloud-config document, by node name. It
	// holds no secret; the node fetches its passwords from SSM.
	UserData map[string]string
	// SecretParameterARNs are the SSM parameters this tier's services need,
	// and all its instance role may read: Patroni nodes read the database
	// and REST API passwords, HAProxy nodes the stats password, etcd none.
	SecretParameterARNs []string
	// Policies are more inline policies of the tier's role, by name
	// suffix (the PostgreSQL nodes' backup repository).
	Policies  map[string]pulumi.StringInput
	Region    string
	Partition string
	AccountID string
	// Public gives each node an Elastic IP: the HAProxy endpoints and SSH
	// jump hosts keep their address across a stop and start. The address
	// is allocated before the instance (its certificate names it) and
	// associated with it after; only the HAProxy tier is public.
	Public bool
	// Data, when set, gives every node an encrypted gp3 volume of its own
	// for the data that must outlive the instance.
	Data *DataVolumeArgs
	// DependsOn must hold the network (NAT and routes), the security rules
	// and the secrets: cloud-init installs packages and reads SSM at first
	// boot, and runs only once.
	DependsOn []pulumi.Resource
	Tags      Tagger
}

// DataVolumeArgs describe the tier's data volumes.
type DataVolumeArgs struct {
	Size   int    // GiB
	Device string // the attachment's device name, as the user data looks for it
	// Protect keeps `pulumi destroy` (and any replacement) from deleting the
	// volumes: `pulumi destroy --exclude-protected` leaves them, and the
	// teardown check reports them as kept.
	Protect bool
}

// Tier is what the three node components share.
type Tier struct {
	Instances []*ec2.Instance
	// DataVolumes holds each node's data volume when the tier has them.
	DataVolumes []*ebs.Volume
	// PublicIPs holds the Elastic IP address of each node when Public,
	// resolved once the address is associated with the node's instance:
	// what the readiness gate and the stack outputs reach the node by.
	PublicIPs []pulumi.StringOutput
	// ElasticIPs are the same addresses as soon as they are allocated,
	// before any instance: what certificates name.
	ElasticIPs []pulumi.StringOutput
	// EIPAssociations associate each Elastic IP with its node's instance.
	EIPAssociations []*ec2.EipAssociation
	Role            *iam.Role
}

// EtcdCluster is the 3-member etcd cluster that Patroni uses as its DCS.
type EtcdCluster struct {
	pulumi.ResourceState
	Tier
}

// PatroniCluster is the 3 PostgreSQL 15 nodes managed by Patroni.
type PatroniCluster struct {
	pulumi.ResourceState
	Tier
}

// HAProxyTier is the HAProxy pair; its nodes are also the SSH jump hosts.
// It is built in two steps: NewHAProxyTier allocates the Elastic IPs,
// Launch creates the instances. In between the caller issues the nodes'
// certificates, which name those addresses (PgBouncer serves them to
// clients that reach the nodes by them).
type HAProxyTier struct {
	pulumi.ResourceState
	Tier

	name string
	args *TierArgs
	eips []*ec2.Eip
}

// MonitoringNode is the optional monitoring node: Prometheus, scraping every
// node's exporters. Its samples live on the root volume (retention bounds
// them); it keeps nothing that must outlive the instance.
type MonitoringNode struct {
	pulumi.ResourceState
	Tier
}

// NewMonitoringNode creates the monitoring node (args.Nodes holds the
// plan's Monitor()).
func NewMonitoringNode(ctx *pulumi.Context, name string, args *TierArgs, opts ...pulumi.ResourceOption) (*MonitoringNode, error) {
	c := &MonitoringNode{}
	if err := ctx.RegisterComponentResource(TypeMonitor, name, c, opts...); err != nil {
		return nil, err
	}
	return c, buildTier(ctx, c, &c.Tier, name, string(topology.RoleMonitor), args)
}

// NewEtcdCluster creates the etcd tier.
func NewEtcdCluster(ctx *pulumi.Context, name string, args *TierArgs, opts ...pulumi.ResourceOption) (*EtcdCluster, error) {
	c := &EtcdCluster{}
	if err := ctx.RegisterComponentResource(TypeEtcd, name, c, opts...); err != nil {
		return nil, err
	}
	return c, buildTier(ctx, c, &c.Tier, name, string(topology.RoleEtcd), args)
}

// NewPatroniCluster creates the Patroni/PostgreSQL tier.
func NewPatroniCluster(ctx *pulumi.Context, name string, args *TierArgs, opts ...pulumi.ResourceOption) (*PatroniCluster, error) {
	c := &PatroniCluster{}
	if err := ctx.RegisterComponentResource(TypePatroni, name, c, opts...); err != nil {
		return nil, err
	}
	return c, buildTier(ctx, c, &c.Tier, name, string(topology.RolePatroni), args)
}

// NewHAProxyTier registers the HAProxy tier and allocates its nodes'
// Elastic IPs (ElasticIPs); Launch creates the instances.
func NewHAProxyTier(ctx *pulumi.Context, name string, args *TierArgs, opts ...pulumi.ResourceOption) (*HAProxyTier, error) {
	c := &HAProxyTier{name: name, args: args}
	if err := ctx.RegisterComponentResource(TypeHAProxy, name, c, opts...); err != nil {
		return nil, err
	}
	if args.Public {
		var err error
		if c.eips, err = allocateEIPs(ctx, name, string(topology.RoleHAProxy), args, pulumi.Parent(c)); err != nil {
			return nil, err
		}
		for _, e := range c.eips {
			c.ElasticIPs = append(c.ElasticIPs, e.PublicIp)
		}
	}
	return c, nil
}

// Launch creates the tier's instances, each booting after certs too (its
// certificate's parameters), and associates each Elastic IP with its
// node's instance.
func (c *HAProxyTier) Launch(ctx *pulumi.Context, certs Dependencies) error {
	args := *c.args
	args.DependsOn = append(append([]pulumi.Resource(nil), c.args.DependsOn...), certs...)
	return buildTier(ctx, c, &c.Tier, c.name, string(topology.RoleHAProxy), &args, c.eips...)
}

// allocateEIPs allocates an Elastic IP per node, associated with nothing
// yet. Their names and parent are those the addresses had when each was
// created with its instance (`instance` set on the EIP), so an existing
// stack keeps its addresses: the provider keeps that computed `instance`
// in its state once the program no longer sets it, and so shows no change
// and does not disassociate the address (see buildTier for what the new
// association does).
func allocateEIPs(ctx *pulumi.Context, name, role string, args *TierArgs, parent pulumi.ResourceOption) ([]*ec2.Eip, error) {
	if len(args.Nodes) == 0 {
		return nil, fmt.Errorf("%s: no nodes in the plan", name)
	}
	var eips []*ec2.Eip
	for _, n := range args.Nodes {
		eip, err := ec2.NewEip(ctx, name+"-"+n.Name+"-eip", &ec2.EipArgs{
			Domain: pulumi.String("vpc"),
			Tags:   args.Tags.Tags(role, n.Name+"-eip"),
		}, parent)
		if err != nil {
			return nil, err
		}
		eips = append(eips, eip)
	}
	return eips, nil
}

// buildTier creates the tier's role and instances. eips are a public
// tier's Elastic IPs, by node, allocated before (allocateEIPs).
func buildTier(ctx *pulumi.Context, parentRes pulumi.Resource, t *Tier, name, role string, args *TierArgs, eips ...*ec2.Eip) error {
	parent := pulumi.Parent(parentRes)
	if len(args.Nodes) == 0 {
		return fmt.Errorf("%s: no nodes in the plan", name)
	}
	if args.Public && len(eips) != len(args.Nodes) {
		return fmt.Errorf("%s: %d Elastic IPs for %d nodes", name, len(eips), len(args.Nodes))
	}
	iamRole, err := iam.NewRole(ctx, name+"-role", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(iampolicy.AssumeRole()),
		Description:      pulumi.String("pgha " + role + " nodes of stack " + args.Tags.Stack),
		Tags:             args.Tags.Tags(role, role+"-role"),
	}, parent)
	if err != nil {
		return err
	}
	t.Role = iamRole
	if len(args.SecretParameterARNs) > 0 {
		if _, err := iam.NewRolePolicy(ctx, name+"-secrets", &iam.RolePolicyArgs{
			Role:   iamRole.Name,
			Policy: pulumi.String(iampolicy.SecretsRead(args.SecretParameterARNs, args.Partition, args.Region, args.AccountID)),
		}, parent); err != nil {
			return err
		}
	}
	for _, suffix := range sortedKeys(args.Policies) {
		if _, err := iam.NewRolePolicy(ctx, name+"-"+suffix, &iam.RolePolicyArgs{
			Role:   iamRole.Name,
			Policy: args.Policies[suffix],
		}, parent); err != nil {
			return err
		}
	}
	profile, err := iam.NewInstanceProfile(ctx, name+"-profile", &iam.InstanceProfileArgs{
		Role: iamRole.Name,
		Tags: args.Tags.Tags(role, role+"-profile"),
	}, parent)
	if err != nil {
		return err
	}

	for i, n := range args.Nodes {
		if n.AZIndex < 0 || n.AZIndex >= len(args.SubnetIDs) || n.AZIndex >= len(args.Zones) {
			return fmt.Errorf("%s: node %s is in AZ index %d, which has no subnet", name, n.Name, n.AZIndex)
		}
		ud, ok := args.UserData[n.Name]
		if !ok || ud == "" {
			return fmt.Errorf("%s: no user data for node %s", name, n.Name)
		}
		packed, err := userdata.Pack([]byte(ud))
		if err != nil {
			return fmt.Errorf("%s: node %s: %w", name, n.Name, err)
		}
		tags := args.Tags.Tags(role, n.Name)
		inst, err := ec2.NewInstance(ctx, name+"-"+n.Name, &ec2.InstanceArgs{
			Ami:                      pulumi.String(args.AMI),
			InstanceType:             pulumi.String(args.InstanceType),
			SubnetId:                 args.SubnetIDs[n.AZIndex],
			AvailabilityZone:         pulumi.String(args.Zones[n.AZIndex]),
			PrivateIp:                pulumi.String(n.IP.String()),
			VpcSecurityGroupIds:      pulumi.StringArray{args.SecurityGroupID},
			IamInstanceProfile:       profile.Name,
			KeyName:                  args.KeyName,
			AssociatePublicIpAddress: pulumi.Bool(args.Public),
			UserDataBase64:           pulumi.String(base64.StdEncoding.EncodeToString(packed)),
			// A changed configuration means a new node: cloud-init runs
			// only at first boot, so an in-place update would change nothing.
			UserDataReplaceOnChange: pulumi.Bool(true),
			MetadataOptions: ec2.InstanceMetadataOptionsArgs{
				HttpEndpoint: pulumi.String("enabled"),
				HttpTokens:   pulumi.String("required"), // IMDSv2 only
				// 1 hop: containers or forwarded traffic on the node cannot
				// reach the role's credentials.
				HttpPutResponseHopLimit: pulumi.Int(1),
			},
			RootBlockDevice: ec2.InstanceRootBlockDeviceArgs{
				VolumeType:          pulumi.String("gp3"),
				VolumeSize:          pulumi.Int(args.VolumeSize),
				Encrypted:           pulumi.Bool(true),
				DeleteOnTermination: pulumi.Bool(true),
				// Default tags do not reach EBS volumes; the teardown
				// check looks for volumes by these tags. Not volume_tags:
				// those would also claim the data volume, whose own tags
				// then fight them at every update.
				Tags: args.Tags.Tags(role, n.Name+"-root"),
			},
			Tags: tags,
		}, parent, pulumi.DependsOn(append([]pulumi.Resource{profile}, args.DependsOn...)),
			// The node keeps its planned address, which a replacement
			// created first would ask for while it is still in use
			// (InvalidIPAddress.InUse): the old instance goes first.
			pulumi.DeleteBeforeReplace(true))
		if err != nil {
			return err
		}
		t.Instances = append(t.Instances, inst)
		if args.Data != nil {
			vol, err := dataVolume(ctx, name, role, n, args, inst, parent)
			if err != nil {
				return err
			}
			t.DataVolumes = append(t.DataVolumes, vol)
		}
		if args.Public {
			// On a stack whose EIP was created with `instance` set, the
			// address already serves this instance: AllowReassociation
			// lets AWS associate it again (the same instance, a new
			// association) where it would otherwise refuse an address
			// that is in use. When the instance is replaced, the
			// association, which names it, is deleted before it (the
			// instance is deleted before its replacement is created) and
			// a new one follows the new instance.
			assoc, err := ec2.NewEipAssociation(ctx, name+"-"+n.Name+"-eip-assoc", &ec2.EipAssociationArgs{
				AllocationId:       eips[i].ID(),
				InstanceId:         inst.ID(),
				AllowReassociation: pulumi.Bool(true),
			}, parent)
			if err != nil {
				return err
			}
			t.EIPAssociations = append(t.EIPAssociations, assoc)
			// The address, once it reaches the node: whatever connects to
			// it (the readiness gate) waits for the association.
			t.PublicIPs = append(t.PublicIPs, pulumi.All(eips[i].PublicIp, assoc.ID()).ApplyT(
				func(vs []any) string { return vs[0].(string) }).(pulumi.StringOutput))
		}
	}

	outs := pulumi.Map{"roleArn": iamRole.Arn}
	for i, inst := range t.Instances {
		outs[args.Nodes[i].Name+"-instanceId"] = inst.ID()
		outs[args.Nodes[i].Name+"-privateIp"] = inst.PrivateIp
	}
	for i, v := range t.DataVolumes {
		outs[args.Nodes[i].Name+"-dataVolumeId"] = v.ID()
	}
	for i, ip := range t.PublicIPs {
		outs[args.Nodes[i].Name+"-publicIp"] = ip
	}
	return ctx.RegisterResourceOutputs(parentRes, outs)
}

// dataVolume creates a node's data volume in its AZ and attaches it. The
// volume depends on nothing of the instance, so replacing the instance
// replaces only the attachment: the old instance is stopped (a clean
// shutdown of PostgreSQL or etcd) before the volume leaves it, and the new
// instance gets the same volume, with the data on it.
func dataVolume(ctx *pulumi.Context, name, role string, n topology.Node, args *TierArgs, inst *ec2.Instance, parent pulumi.ResourceOption) (*ebs.Volume, error) {
	tags := args.Tags.Tags(role, n.Name+"-data")
	tags[TagKeep] = pulumi.String(fmt.Sprint(args.Data.Protect))
	vol, err := ebs.NewVolume(ctx, name+"-"+n.Name+"-data", &ebs.VolumeArgs{
		AvailabilityZone: pulumi.String(args.Zones[n.AZIndex]),
		Type:             pulumi.String("gp3"),
		Size:             pulumi.Int(args.Data.Size),
		Encrypted:        pulumi.Bool(true),
		Tags:             tags,
	}, parent, pulumi.Protect(args.Data.Protect))
	if err != nil {
		return nil, err
	}
	if _, err := ec2.NewVolumeAttachment(ctx, name+"-"+n.Name+"-data", &ec2.VolumeAttachmentArgs{
		DeviceName:                  pulumi.String(args.Data.Device),
		InstanceId:                  inst.ID(),
		VolumeId:                    vol.ID(),
		StopInstanceBeforeDetaching: pulumi.Bool(true),
	}, parent,
		// A volume attaches to one instance at a time: the old attachment
		// goes before the new one is made.
		pulumi.DeleteBeforeReplace(true)); err != nil {
		return nil, err
	}
	return vol, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
