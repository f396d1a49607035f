package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// urn is the URN the engine gives a registered resource: its parent's
// type chain, its own type and its name.
func (r registered) urn(stack string) resource.URN {
	var parentType tokens.Type
	if r.Parent != "" {
		parentType = resource.URN(r.Parent).QualifiedType()
	}
	return resource.NewURN(tokens.QName(stack), "pgha", parentType, tokens.Type(r.Type), r.Name)
}

// TestURNsOfTheEntryPointsAreStable pins the URNs of what clients reach
// the cluster by: the HAProxy nodes' Elastic IPs and instances and the
// load balancer's resources. A changed URN is a delete and a create on
// `pulumi up` of an existing stack: a new address for every client, or a
// new load balancer name. These are the URNs stacks were created with.
func TestURNsOfTheEntryPointsAreStable(t *testing.T) {
	const tier = "urn:pulumi:dev::pgha::pgha:index:HAProxyTier$"
	want := []string{
		tier + "aws:ec2/eip:Eip::haproxy-haproxy-1-eip",
		tier + "aws:ec2/eip:Eip::haproxy-haproxy-2-eip",
		tier + "aws:ec2/instance:Instance::haproxy-haproxy-1",
		tier + "aws:ec2/instance:Instance::haproxy-haproxy-2",
	}
	const nlb = "urn:pulumi:dev::pgha::pgha:index:LoadBalancer$"
	wantNLB := []string{nlb + "aws:lb/loadBalancer:LoadBalancer::endpoint-nlb"}
	for _, port := range []int{5000, 5001, 6432} {
		wantNLB = append(wantNLB,
			fmt.Sprintf("%saws:lb/targetGroup:TargetGroup::endpoint-tg-%d", nlb, port),
			fmt.Sprintf("%saws:lb/listener:Listener::endpoint-listener-%d", nlb, port),
			fmt.Sprintf("%saws:lb/targetGroupAttachment:TargetGroupAttachment::endpoint-tg-%d-haproxy-1", nlb, port),
			fmt.Sprintf("%saws:lb/targetGroupAttachment:TargetGroupAttachment::endpoint-tg-%d-haproxy-2", nlb, port))
	}
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("nlb=%v", on), func(t *testing.T) {
			cfg := baseConfig()
			cfg["pgha:networkLoadBalancer"] = fmt.Sprint(on)
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			var got []string
			for _, res := range r.mocks.snapshot() {
				u := string(res.urn("dev"))
				if strings.Contains(u, "HAProxyTier$aws:ec2/eip:") || strings.Contains(u, "HAProxyTier$aws:ec2/instance:") ||
					strings.Contains(u, "::aws:ec2/eip:") || strings.Contains(u, ":lb/") {
					got = append(got, u)
				}
			}
			exp := append([]string(nil), want...)
			if on {
				exp = append(exp, wantNLB...)
			}
			sort.Strings(exp)
			sort.Strings(got)
			assert.Equal(t, exp, got)
		})
	}
}
