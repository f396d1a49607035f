package userdata

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/pgha/pgha/internal/topology"
)

// hostRules maps each network rule's users to the addresses it admits
// them from.
func hostRules(t *testing.T, rules []HBARule) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	for _, r := range rules {
		if r.Type == "local" {
			continue
		}
		require.Equal(t, "hostssl", r.Type, r.Line())
		require.Equal(t, "scram-sha-256", r.Method, r.Line())
		key := r.Database + " " + strings.Join(r.Users, ",")
		m[key] = append(m[key], r.Address)
	}
	return m
}

func addrsOf(plan topology.Plan, r topology.Role) []string {
	var out []string
	for _, n := range plan.ByRole(r) {
		out = append(out, n.IP.String()+"/32")
	}
	return out
}

// The rules name exactly the plan's addresses, each role from the nodes
// that need it, and nothing from the VPC as a whole.
func TestHBARulesNameExactlyThePlansAddresses(t *testing.T) {
	c := defaultCluster(t)
	pg, ha := addrsOf(c.Plan, topology.RolePatroni), addrsOf(c.Plan, topology.RoleHAProxy)
	require.Len(t, pg, 3)
	require.Len(t, ha, 2)
	rules := c.HBA()
	assert.Equal(t, map[string][]string{
		"replication replicator": pg,
		"all postgres,rewinder":  pg,
		"all app":                ha,
		"app pgha_pooler":        ha,
		"app pgha_monitor":       append(append([]string(nil), ha...), pg...),
	}, hostRules(t, rules))
	var local []string
	for _, r := range rules {
		if r.Type == "local" {
			local = append(local, r.Line())
		}
	}
	assert.Equal(t, []string{"local all postgres peer", "local all all scram-sha-256"}, local)

	// The lab's client, for the monitor only.
	c.MonitorFrom = []netip.Prefix{netip.MustParsePrefix("10.42.0.200/32")}
	got := hostRules(t, c.HBA())
	assert.Equal(t, append(append(append([]string(nil), ha...), pg...), "10.42.0.200/32"), got["app pgha_monitor"])
	assert.Equal(t, pg, got["all postgres,rewinder"], "MonitorFrom admits nobody else")
	assert.Equal(t, ha, got["all app"])
	assert.Equal(t, ha, got["app pgha_pooler"], "MonitorFrom admits nobody else")

	// Unprivileged (a lab without root): no peer line, as before.
	c.Unprivileged = true
	assert.Equal(t, "local all all scram-sha-256", c.HBA()[0].Line())
}

// The loopback lab: every connection leaves from 127.0.0.1, which each
// node-address rule admits as well.
func TestHBASharedStack(t *testing.T) {
	c := defaultCluster(t)
	plan, err := topology.New("127.0.0.0/16")
	require.NoError(t, err)
	c.Plan, c.SharedStack = plan, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	got := hostRules(t, c.HBA())
	assert.Equal(t, append(addrsOf(plan, topology.RolePatroni), "127.0.0.1/32"), got["all postgres,rewinder"])
	assert.Equal(t, append(addrsOf(plan, topology.RolePatroni), "127.0.0.1/32"), got["replication replicator"])
	assert.Equal(t, append(addrsOf(plan, topology.RoleHAProxy), "127.0.0.1/32"), got["all app"])
	assert.Equal(t, append(addrsOf(plan, topology.RoleHAProxy), "127.0.0.1/32"), got["app pgha_pooler"])
	assert.Equal(t, append(append(addrsOf(plan, topology.RoleHAProxy), "127.0.0.1/32"), addrsOf(plan, topology.RolePatroni)...), got["app pgha_monitor"])
}

// patroni.yml carries the same rules, in both of its pg_hba lists, and no
// VPC-wide one.
func TestPatroniConfigCarriesTheHBARules(t *testing.T) {
	c := defaultCluster(t)
	b, err := RenderPatroniConfig(c, "pg-2", CloudPaths())
	require.NoError(t, err)
	var doc struct {
		Bootstrap struct {
			HBA []string `yaml:"pg_hba"`
		} `yaml:"bootstrap"`
		PostgreSQL struct {
			HBA []string `yaml:"pg_hba"`
		} `yaml:"postgresql"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	var want []string
	for _, r := range c.HBA() {
		want = append(want, r.Line())
	}
	assert.Equal(t, want, doc.PostgreSQL.HBA)
	assert.Equal(t, want, doc.Bootstrap.HBA)
	assert.NotContains(t, string(b), c.Plan.VPC.String())
}
