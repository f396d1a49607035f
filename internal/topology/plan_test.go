package topology

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultPlan(t *testing.T) {
	p, err := New(DefaultVPCCIDR)
	require.NoError(t, err)

	require.Len(t, p.ByRole(RoleEtcd), 3)
	require.Len(t, p.ByRole(RolePatroni), 3)
	require.Len(t, p.ByRole(RoleHAProxy), 2)

	want := map[string]string{
		"etcd-1": "10.42.4.10", "etcd-2": "10.42.5.10", "etcd-3": "10.42.6.10",
		"pg-1": "10.42.4.20", "pg-2": "10.42.5.20", "pg-3": "10.42.6.20",
		"haproxy-1": "10.42.0.30", "haproxy-2": "10.42.1.30",
	}
	for name, ip := range want {
		n, ok := p.Node(name)
		require.True(t, ok, name)
		assert.Equal(t, ip, n.IP.String(), name)
		s := p.SubnetOf(n)
		assert.True(t, s.CIDR.Contains(n.IP), "%s not in its subnet %s", name, s.CIDR)
		assert.True(t, p.VPC.Contains(n.IP))
	}

	seen := map[string]bool{}
	for _, n := range p.Nodes {
		assert.False(t, seen[n.IP.String()], "duplicate IP %s", n.IP)
		seen[n.IP.String()] = true
	}
	// Each replicated tier spans three distinct AZs.
	for _, r := range []Role{RoleEtcd, RolePatroni} {
		azs := map[int]bool{}
		for _, n := range p.ByRole(r) {
			azs[n.AZIndex] = true
		}
		assert.Len(t, azs, 3, r)
	}
	// Subnets never overlap.
	for i, a := range p.Subnets {
		for _, b := range p.Subnets[i+1:] {
			assert.False(t, a.CIDR.Overlaps(b.CIDR), "%s overlaps %s", a.CIDR, b.CIDR)
		}
	}
}

func TestSmallestVPC(t *testing.T) {
	p, err := New("192.168.8.0/21")
	require.NoError(t, err)
	for _, n := range p.Nodes {
		assert.True(t, p.VPC.Contains(n.IP), n.Name)
	}
}

func TestBadVPC(t *testing.T) {
	for in, msg := range map[string]string{
		"nonsense":     "is not a CIDR",
		"10.0.0.0/24":  "between /16 and /21",
		"10.0.0.0/8":   "between /16 and /21",
		"10.42.1.0/16": "host bits",
		"fd00::/56":    "IPv4",
		"10.42.0.0/33": "is not a CIDR",
	} {
		_, err := New(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), msg, in)
	}
}
