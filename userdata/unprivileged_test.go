package userdata

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lab without root runs HAProxy as the invoking user, which cannot
// switch to user haproxy: Unprivileged drops exactly those two lines and
// nothing else, and the cloud render (Unprivileged false) keeps them.
func TestUnprivilegedHAProxyOmitsOnlyUserAndGroup(t *testing.T) {
	c := defaultCluster(t)
	cloud, err := RenderHAProxyConfig(c, "haproxy-1", CloudPaths())
	require.NoError(t, err)
	require.Contains(t, string(cloud), "\n    user haproxy\n    group haproxy\n")

	c.Unprivileged = true
	lab, err := RenderHAProxyConfig(c, "haproxy-1", CloudPaths())
	require.NoError(t, err)
	assert.NotContains(t, string(lab), "user haproxy")
	assert.NotContains(t, string(lab), "group haproxy")
	assert.Equal(t, strings.Replace(string(cloud), "    user haproxy\n    group haproxy\n", "", 1), string(lab))
}

// BindNodeAddress turns each "bind *:PORT" of the SQL ports into "bind
// NODE_IP:PORT" and changes nothing else; the cloud render keeps the
// wildcard there. The stats page is on the node's address in both.
func TestBindNodeAddressOnlyChangesBindLines(t *testing.T) {
	c := defaultCluster(t)
	cloud, err := RenderHAProxyConfig(c, "haproxy-2", CloudPaths())
	require.NoError(t, err)
	n, ok := c.Plan.Node("haproxy-2")
	require.True(t, ok)
	c.BindNodeAddress = true
	lab, err := RenderHAProxyConfig(c, "haproxy-2", CloudPaths())
	require.NoError(t, err)
	want := string(cloud)
	require.Contains(t, want, "    bind "+n.IP.String()+":7000 ssl crt ")
	for _, port := range []string{"5000", "5001"} {
		require.Contains(t, want, "    bind *:"+port+"\n")
		want = strings.Replace(want, "    bind *:"+port+"\n", "    bind "+n.IP.String()+":"+port+"\n", 1)
	}
	assert.Equal(t, want, string(lab))
	assert.NotContains(t, string(lab), "bind *")
}
