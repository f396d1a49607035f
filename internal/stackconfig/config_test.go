package stackconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func getter(m map[string]string) Getter {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := Load("dev", getter(map[string]string{
		"aws:region": "eu-west-1", "pgha:allowedCidrs": `["100.20.30.0/24"]`,
		// Pulumi applies the schema's empty defaults; they mean "unset".
		"pgha:sshPublicKey": "", "pgha:amiId": "", "pgha:appPassword": "",
	}), nil)
	require.NoError(t, err)
	assert.Equal(t, "pgha", c.ClusterName)
	assert.Equal(t, "10.42.0.0/16", c.Plan.VPC.String())
	assert.Len(t, c.Plan.Nodes, 8)
	assert.Equal(t, "fast", c.Profile)
	assert.True(t, c.SynchronousMode)
	assert.Equal(t, NATSingle, c.NATGateways)
	assert.Equal(t, "t3.medium", c.PatroniInstanceType)
	assert.Equal(t, 20, c.PatroniVolumeSize)
	assert.False(t, c.NetworkLoadBalancer)
	assert.Empty(t, c.SSHPublicKey)
	assert.Empty(t, c.Passwords)
}

func TestAllowedCIDRForms(t *testing.T) {
	for raw, want := range map[string][]string{
		`["100.20.30.0/24","100.20.40.7/32"]`: {"100.20.30.0/24", "100.20.40.7/32"},
		`100.20.30.0/24`:                      {"100.20.30.0/24"},
		`100.20.30.0/24, 100.20.40.7/32`:      {"100.20.30.0/24", "100.20.40.7/32"},
		`["100.20.30.0/24","100.20.30.0/24"]`: {"100.20.30.0/24"},
	} {
		c, err := Load("dev", getter(map[string]string{"aws:region": "eu-west-1", "pgha:allowedCidrs": raw}), nil)
		require.NoError(t, err, raw)
		assert.Equal(t, want, c.AllowedCIDRs, raw)
	}
}

func TestConfiguredSecretPassword(t *testing.T) {
	m := map[string]string{"aws:region": "eu-west-1", "pgha:allowedCidrs": "100.20.30.0/24", "pgha:statsPassword": "Stats-Password-0123456789"}
	c, err := Load("dev", getter(m), func(k string) bool { return k == "pgha:statsPassword" })
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"statsPassword": "Stats-Password-0123456789"}, c.Passwords)
}

func TestCheckZones(t *testing.T) {
	assert.NoError(t, CheckZones("eu-west-1", []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}))
	err := CheckZones("xx-test-1", []string{"xx-test-1a", "xx-test-1a", "xx-test-1b"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "aws:region")
	assert.Contains(t, err.Error(), "offers 2 available")
	e, ok := AsError(err)
	require.True(t, ok)
	assert.Len(t, e.Problems, 1)
}

func TestGravitonFamilies(t *testing.T) {
	for _, f := range []string{"t4g", "m6g", "m6gd", "m7g", "c6gn", "c7gd", "r8g", "x2gd", "im4gn", "is4gen", "g5g", "hpc7g", "a1"} {
		assert.True(t, graviton(f), f)
	}
	for _, f := range []string{"t3", "t3a", "m5", "m6i", "m7a", "c6in", "r5b", "g4dn", "g5", "x2iezn", "m5zn", "i4i", "inf1", "p4d", "hpc6a", "z1d"} {
		assert.False(t, graviton(f), f)
	}
}
