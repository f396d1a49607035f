package main

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/servicequotas"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pgha/pgha/internal/outputs"
	"github.com/pgha/pgha/internal/stackconfig"
	"github.com/pgha/pgha/internal/topology"
)

// elasticIPQuotaCode is "EC2-VPC Elastic IPs" in Service Quotas: 5 per
// region unless raised.
const elasticIPQuotaCode = "L-0263D0A3"

// elasticIPsNeeded is how many Elastic IPs the stack holds: one per NAT
// gateway and one per HAProxy node.
func elasticIPsNeeded(cfg stackconfig.Config) int {
	nat := 1
	if cfg.NATGateways == stackconfig.NATPerAZ {
		nat = topology.AZCount
	}
	return nat + len(cfg.Plan.ByRole(topology.RoleHAProxy))
}

// checkElasticIPQuota refuses, before any resource exists, a stack whose
// Elastic IPs would not fit the region's quota beside the addresses other
// stacks and users already hold (natGateways perAz alone takes all 5 of
// the default quota). The stack's own addresses, on a later update, are
// already counted. Without permission to read the quota, it warns and
// goes on: the check saves a half-built stack, it must not block one.
func checkElasticIPQuota(ctx *pulumi.Context, cfg stackconfig.Config, invoke pulumi.InvokeOption) error {
	q, err := servicequotas.LookupServiceQuota(ctx, &servicequotas.LookupServiceQuotaArgs{
		ServiceCode: "ec2", QuotaCode: pulumi.StringRef(elasticIPQuotaCode),
	}, invoke)
	if err != nil {
		_ = ctx.Log.Warn(fmt.Sprintf("cannot read the Elastic IP quota (%v); not checking that the stack's %d addresses fit", err, elasticIPsNeeded(cfg)), nil)
		return nil
	}
	all, err := ec2.GetEips(ctx, &ec2.GetEipsArgs{}, invoke)
	if err != nil {
		return fmt.Errorf("cannot list the region's Elastic IPs: %w", err)
	}
	ours, err := ec2.GetEips(ctx, &ec2.GetEipsArgs{Tags: map[string]string{
		outputs.TagProject: stackconfig.Namespace, outputs.TagStack: ctx.Stack(),
	}}, invoke)
	if err != nil {
		return fmt.Errorf("cannot list the stack's Elastic IPs: %w", err)
	}
	need, quota := elasticIPsNeeded(cfg), int(q.Value)
	others := len(all.AllocationIds) - len(ours.AllocationIds)
	if others+need <= quota {
		return nil
	}
	fix := "release unused addresses, or request a higher \"EC2-VPC Elastic IPs\" quota in Service Quotas"
	if cfg.NATGateways == stackconfig.NATPerAZ {
		fix += ", or pulumi config set " + stackconfig.Full(stackconfig.KeyNATGateways) + " " + stackconfig.NATSingle + " (3 addresses fewer)"
	}
	return &stackconfig.Error{Problems: []string{fmt.Sprintf(
		"%s: the stack needs %d Elastic IPs in %s, and %d of the region's quota of %d are held by others; fix: %s",
		stackconfig.Full(stackconfig.KeyNATGateways), need, cfg.Region, others, quota, fix)}}
}
