package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/stackconfig"
	"github.com/pgha/pgha/internal/topology"
)

// Debian's official AMIs: the account Debian publishes from and the name
// pattern of Debian 12 (bookworm) on x86_64.
const (
	debianOwner   = "136693071363"
	debianAMIName = "debian-12-amd64-*"
)

// previousPlacement reads the placement this stack recorded on its last
// update, through a reference to the stack itself: nil on a stack never
// updated. Kept in the stack's own state, it needs no extra config and
// travels with the stack.
func previousPlacement(ctx *pulumi.Context) (*outputs.Placement, error) {
	self := ctx.Organization() + "/" + ctx.Project() + "/" + ctx.Stack()
	ref, err := pulumi.NewStackReference(ctx, "previous-update", &pulumi.StackReferenceArgs{Name: pulumi.String(self)})
	if err != nil {
		return nil, fmt.Errorf("cannot read the stack's previous outputs (%s): %w", self, err)
	}
	d, err := ref.GetOutputDetails(outputs.KeyPlacement)
	if err != nil {
		return nil, fmt.Errorf("cannot read the stack's previous placement: %w", err)
	}
	m, ok := d.Value.(map[string]any)
	if !ok {
		return nil, nil
	}
	p := &outputs.Placement{}
	p.Region, _ = m["region"].(string)
	p.AMI, _ = m["ami"].(string)
	zs, _ := m["zones"].([]any)
	for _, z := range zs {
		if s, ok := z.(string); ok {
			p.Zones = append(p.Zones, s)
		}
	}
	if p.AMI == "" || len(p.Zones) != topology.AZCount {
		return nil, fmt.Errorf("the stack's previous output %q is malformed (%v); "+
			"only this program writes it; repair it in the state (`pulumi stack export`, edit the stack outputs, `pulumi stack import`)", outputs.KeyPlacement, d.Value)
	}
	return p, nil
}

// placeCluster decides the image and the zones. The first update takes the
// newest Debian 12 AMI and the region's first three available plain zones;
// every later update keeps what the stack recorded, unless the user names
// an AMI in config (the one deliberate way to change the image: the rolling
// update in docs/runbook.md). A newer AMI or a zone that changed state is
// reported, never acted on.
func placeCluster(ctx *pulumi.Context, cfg stackconfig.Config, prev *outputs.Placement, invoke pulumi.InvokeOption) (*outputs.Placement, error) {
	if prev != nil && prev.Region != cfg.Region {
		return nil, fmt.Errorf("%s: the stack's nodes run in %s (zones %s), and the config now says %s; "+
			"a cluster cannot move regions in place: set it back, or `pulumi destroy` first, or use a new stack",
			stackconfig.RegionKey, prev.Region, strings.Join(prev.Zones, ", "), cfg.Region)
	}
	zones, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{
		State: pulumi.StringRef("available"),
		// Plain AZs only: Local Zones lack most instance types and NAT.
		Filters: []aws.GetAvailabilityZonesFilter{{Name: "opt-in-status", Values: []string{"opt-in-not-required"}}},
	}, invoke)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot list the Availability Zones of %q (check the region name and your AWS credentials): %w",
			stackconfig.RegionKey, cfg.Region, err)
	}
	p := &outputs.Placement{Region: cfg.Region}
	if prev != nil {
		p.Zones = prev.Zones
		for _, z := range prev.Zones {
			if !slices.Contains(zones.Names, z) {
				_ = ctx.Log.Warn(fmt.Sprintf("Availability Zone %s, where this stack has nodes, is not \"available\" now; "+
					"the nodes stay there (see docs/runbook.md, \"Lose an AZ\")", z), nil)
			}
		}
	} else {
		if err := stackconfig.CheckZones(cfg.Region, zones.Names); err != nil {
			return nil, err
		}
		azs := append([]string(nil), zones.Names...)
		sort.Strings(azs)
		p.Zones = azs[:topology.AZCount]
	}

	switch {
	case cfg.AMI != "":
		p.AMI = cfg.AMI
	case prev != nil:
		p.AMI = prev.AMI
		if newest, err := newestDebianAMI(ctx, invoke); err == nil && newest != prev.AMI {
			_ = ctx.Log.Info(fmt.Sprintf("a newer Debian 12 AMI, %s, is published; the nodes stay on %s. "+
				"To move to it: docs/runbook.md, \"Roll a new image\"", newest, prev.AMI), nil)
		}
	default:
		if p.AMI, err = newestDebianAMI(ctx, invoke); err != nil {
			return nil, fmt.Errorf("%s: no Debian 12 AMI found in %s (%v); fix: pulumi config set %s <ami-id>",
				stackconfig.Full(stackconfig.KeyAMI), cfg.Region, err, stackconfig.Full(stackconfig.KeyAMI))
		}
	}
	return p, nil
}

// newestDebianAMI is the latest official Debian 12 image for x86_64.
func newestDebianAMI(ctx *pulumi.Context, invoke pulumi.InvokeOption) (string, error) {
	img, err := ec2.LookupAmi(ctx, &ec2.LookupAmiArgs{
		Owners:     []string{debianOwner},
		MostRecent: pulumi.BoolRef(true),
		Filters: []ec2.GetAmiFilter{
			{Name: "name", Values: []string{debianAMIName}},
			{Name: "architecture", Values: []string{"x86_64"}},
			{Name: "virtualization-type", Values: []string{"hvm"}},
		},
	}, invoke)
	if err != nil {
		return "", err
	}
	return img.Id, nil
}
