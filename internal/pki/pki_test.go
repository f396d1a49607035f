package pki_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgha/pgha/internal/pki"
	"github.com/pgha/pgha/internal/topology"
)

// TestNodeLeafEndpoints: the endpoints (the Elastic IPs, the load
// balancer's name) go on the certificates of the nodes clients reach by
// them, the PostgreSQL nodes (through 5000/5001) and the HAProxy nodes
// (PgBouncer's 6432), each name once; etcd's and the monitoring node's
// certificates name only the node, whatever they are given.
func TestNodeLeafEndpoints(t *testing.T) {
	plan, err := topology.New(topology.DefaultVPCCIDR)
	require.NoError(t, err)
	eps := []string{"198.51.100.201", "nlb.example.com", "198.51.100.202", "198.51.100.201", ""}
	names := func(l pki.Leaf) ([]string, []string) { return l.DNSNames, l.IPStrings() }

	pg1, _ := plan.Node("pg-1")
	dns, ips := names(pki.NodeLeaf(plan, pg1, eps))
	assert.Equal(t, []string{"pg-1", "nlb.example.com"}, dns)
	assert.Equal(t, []string{"10.42.4.20", "10.42.0.30", "10.42.1.30", "198.51.100.201", "198.51.100.202"}, ips)

	h2, _ := plan.Node("haproxy-2")
	dns, ips = names(pki.NodeLeaf(plan, h2, eps))
	assert.Equal(t, []string{"haproxy-2", "nlb.example.com"}, dns)
	assert.Equal(t, []string{"10.42.1.30", "198.51.100.201", "198.51.100.202"}, ips,
		"its own private address, not the other HAProxy node's")
	dns, ips = names(pki.NodeLeaf(plan, h2, nil))
	assert.Equal(t, []string{"haproxy-2"}, dns)
	assert.Equal(t, []string{"10.42.1.30"}, ips)

	etcd1, _ := plan.Node("etcd-1")
	for _, n := range []topology.Node{etcd1, plan.Monitor()} {
		dns, ips := names(pki.NodeLeaf(plan, n, eps))
		assert.Equal(t, []string{n.Name}, dns, n.Name)
		assert.Equal(t, []string{n.IP.String()}, ips, n.Name)
	}
	for _, n := range append(plan.Nodes, plan.Monitor()) {
		l := pki.NodeLeaf(plan, n, eps)
		assert.NoError(t, l.Check(), n.Name)
		assert.True(t, l.Server && l.Client, n.Name)
	}
}
