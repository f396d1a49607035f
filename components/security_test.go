package components

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/pgha/pgha/internal/topology"
)

// AWS accepts only these characters in security group and rule
// descriptions; anything else fails at create time, after the VPC exists.
var sgDescription = regexp.MustCompile(`^[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{1,255}$`)

func TestRuleDescriptionsAreAcceptedByAWS(t *testing.T) {
	for _, nlb := range []bool{false, true} {
		for _, mon := range []bool{false, true} {
			for _, r := range Rules([]string{"203.0.113.0/24", "198.51.100.7/32"}, nlb, mon) {
				assert.Regexp(t, sgDescription, r.Description, "rule %s", r.Name("sg"))
				assert.True(t, (r.Peer == "") != (r.CIDR == ""), "rule %s needs exactly one of a peer group and a CIDR", r.Name("sg"))
			}
		}
	}
}

func TestGroupDescriptionsAreAcceptedByAWS(t *testing.T) {
	for g, d := range GroupDescriptions {
		assert.Regexp(t, sgDescription, d, g)
	}
}

func TestRuleNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules([]string{"203.0.113.0/24", "198.51.100.7/32"}, true, true) {
		n := r.Name("sg")
		assert.False(t, seen[n], "duplicate rule name %s", n)
		seen[n] = true
	}
}

// TestMonitoringRules: the monitoring node is reached only through the jump
// hosts, reaches only the metrics ports (and apt/SSM), and each tier admits
// it on exactly those; without monitoring no rule names it.
func TestMonitoringRules(t *testing.T) {
	type key struct {
		group   string
		ingress bool
		port    int
		peer    string
	}
	got := map[key]bool{}
	for _, r := range Rules([]string{"203.0.113.0/24"}, false, true) {
		if r.Group == SGMonitor || r.Peer == SGMonitor {
			got[key{r.Group, r.Ingress, r.Port, r.Peer + r.CIDR}] = true
		}
	}
	want := map[key]bool{
		{SGMonitor, true, topology.PortPrometheus, SGHAProxy}:  true,
		{SGMonitor, true, topology.PortSSH, SGHAProxy}:         true,
		{SGHAProxy, false, topology.PortPrometheus, SGMonitor}: true,
		{SGHAProxy, false, topology.PortSSH, SGMonitor}:        true,
		{SGMonitor, false, PortHTTPS, "0.0.0.0/0"}:             true,
		{SGMonitor, false, PortHTTP, "0.0.0.0/0"}:              true,
	}
	for _, s := range []struct {
		group string
		ports []int
	}{
		{SGEtcd, []int{topology.PortNodeExporter, topology.PortEtcdClient}},
		{SGPatroni, []int{topology.PortNodeExporter, topology.PortPostgresExporter, topology.PortPatroniAPI}},
		{SGHAProxy, []int{topology.PortNodeExporter, topology.PortHAProxyMetrics}},
	} {
		for _, p := range s.ports {
			want[key{s.group, true, p, SGMonitor}] = true
			want[key{SGMonitor, false, p, s.group}] = true
		}
	}
	assert.Equal(t, want, got)
	for _, r := range Rules([]string{"203.0.113.0/24"}, true, false) {
		assert.NotEqual(t, SGMonitor, r.Group)
		assert.NotEqual(t, SGMonitor, r.Peer)
	}
}
