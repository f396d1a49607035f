package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/outputs"
)

const (
	tTargetGroup = "aws:lb/targetGroup:TargetGroup"
	tTGAttach    = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
)

// TestHAProxyAddressesComeBeforeTheirInstances: the HAProxy nodes'
// certificates name their Elastic IPs and the load balancer's name, and
// the instances boot with those certificates, so the addresses and the
// load balancer exist before any HAProxy instance, each address is then
// associated with its own node's instance, and what connects to an
// address (the readiness gate) waits for its association.
func TestHAProxyAddressesComeBeforeTheirInstances(t *testing.T) {
	for _, nlb := range []bool{false, true} {
		t.Run(fmt.Sprintf("nlb=%v", nlb), func(t *testing.T) {
			cfg := baseConfig()
			cfg["pgha:networkLoadBalancer"] = fmt.Sprint(nlb)
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			all := r.mocks.snapshot()

			for _, node := range []string{"haproxy-1", "haproxy-2"} {
				eip := r.mocks.named(t, tEIP, "haproxy-"+node+"-eip")
				assert.Empty(t, str(eip.Inputs, "instance"), "%s: associated by its association, not by the address", eip.Name)
				assert.Equal(t, "vpc", str(eip.Inputs, "domain"), eip.Name)
				for d := range reaches(all, eip) {
					assert.False(t, strings.HasPrefix(d, "haproxy-haproxy-"), "%s waits for %s", eip.Name, d)
				}

				csr := reaches(all, r.mocks.named(t, tCSR, "tls-"+node+"-csr"))
				assert.True(t, csr["haproxy-haproxy-1-eip"] && csr["haproxy-haproxy-2-eip"], "%s's request names both Elastic IPs", node)
				assert.Equal(t, nlb, csr["endpoint-nlb"], "%s's request names the load balancer", node)
				assert.False(t, csr["haproxy-"+node], "%s's request waits for its instance", node)

				inst := r.mocks.named(t, tInstance, "haproxy-"+node)
				assert.False(t, reaches(all, inst)["haproxy-"+node+"-eip-assoc"], "%s waits for its association", inst.Name)

				assoc := r.mocks.named(t, tEIPAssoc, "haproxy-"+node+"-eip-assoc")
				assert.Equal(t, eip.Name+"_id", str(assoc.Inputs, "allocationId"), assoc.Name)
				assert.Equal(t, inst.Name+"_id", str(assoc.Inputs, "instanceId"), "%s: the address of its own node", assoc.Name)
				assert.Equal(t, "true", str(assoc.Inputs, "allowReassociation"), "%s: an existing stack's address is associated already", assoc.Name)
				assert.Equal(t, eip.Parent, assoc.Parent, "%s: in the HAProxy tier", assoc.Name)

				wait := reaches(all, r.mocks.named(t, "command:remote:Command", "readiness-wait-"+node))
				assert.True(t, wait["haproxy-"+node+"-eip-assoc"], "the readiness gate dials %s's address before it is associated", node)
			}
			// The gate's other sessions go through the jump host's address.
			wait := reaches(all, r.mocks.named(t, "command:remote:Command", "readiness-wait-pg-1"))
			assert.True(t, wait["haproxy-haproxy-1-eip-assoc"], "the gate jumps through haproxy-1 before its address reaches it")

			if nlb {
				for _, res := range all {
					if res.Type == tTGAttach || !strings.HasPrefix(res.Name, "endpoint-") {
						continue
					}
					for d := range reaches(all, res) {
						assert.False(t, strings.HasPrefix(d, "haproxy-haproxy-"), "%s waits for %s", res.Name, d)
					}
				}
			}
		})
	}
}

// TestLoadBalancerTargetsEveryHAProxyNode: each target group (5000, 5001,
// PgBouncer's 6432) has both HAProxy instances as targets on its own port.
func TestLoadBalancerTargetsEveryHAProxyNode(t *testing.T) {
	cfg := baseConfig()
	cfg["pgha:networkLoadBalancer"] = "true"
	r := runProgram(t, cfg, nil, nil)
	require.NoError(t, r.err)
	groupPort := map[string]string{}
	for _, tg := range r.mocks.byType(tTargetGroup) {
		groupPort[str(tg.Outputs, "arn")] = str(tg.Inputs, "port")
	}
	got := map[string][]string{}
	for _, a := range r.mocks.byType(tTGAttach) {
		port, ok := groupPort[str(a.Inputs, "targetGroupArn")]
		require.True(t, ok, "%s: an unknown target group", a.Name)
		assert.Equal(t, port, str(a.Inputs, "port"), a.Name)
		target := str(a.Inputs, "targetId")
		assert.Equal(t, "endpoint-tg-"+port+"-"+strings.TrimSuffix(strings.TrimPrefix(target, "haproxy-"), "_id"), a.Name,
			"the attachment keeps its name for its node")
		got[port] = append(got[port], target)
	}
	for _, targets := range got {
		sort.Strings(targets)
	}
	both := []string{"haproxy-haproxy-1_id", "haproxy-haproxy-2_id"}
	assert.Equal(t, map[string][]string{"5000": both, "5001": both, "6432": both}, got)
}

// TestPoolerEndpointAndURI: the program exports PgBouncer's endpoint, on
// the write endpoint's host (the load balancer, else the jump host), and a
// pooled URI over every entry point.
func TestPoolerEndpointAndURI(t *testing.T) {
	for _, tc := range []struct {
		cfg    map[string]string
		host   string
		pooled string
	}{
		{map[string]string{}, "198.51.100.201",
			"postgresql://app@198.51.100.201:6432,198.51.100.202:6432/app?connect_timeout=5&sslmode=verify-full"},
		{map[string]string{"pgha:jumpHost": "haproxy-2"}, "198.51.100.202",
			"postgresql://app@198.51.100.201:6432,198.51.100.202:6432/app?connect_timeout=5&sslmode=verify-full"},
		{map[string]string{"pgha:networkLoadBalancer": "true"}, "pgha-nlb-0123.elb.eu-west-1.amazonaws.com",
			"postgresql://app@pgha-nlb-0123.elb.eu-west-1.amazonaws.com:6432/app?connect_timeout=5&sslmode=verify-full"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			cfg := baseConfig()
			for k, v := range tc.cfg {
				cfg[k] = v
			}
			r := runProgram(t, cfg, nil, nil)
			require.NoError(t, r.err)
			assert.False(t, r.secret[outputs.KeyPoolerEndpoint])
			s, err := outputs.Parse(r.stackJSON(t))
			require.NoError(t, err)
			require.Equal(t, &outputs.Endpoint{Host: tc.host, Port: 6432}, s.PoolerEndpoint)
			assert.Equal(t, s.WriteEndpoint.Host, s.PoolerEndpoint.Host)
			require.NotNil(t, s.Connection)
			assert.Equal(t, tc.pooled, s.Connection.Pooled)
		})
	}
}
