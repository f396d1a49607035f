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
	assert.Equal(t, 50, c.PatroniDataSize)
	assert.Equal(t, 8, c.EtcdDataSize)
	assert.True(t, c.ProtectData, "the databases are protected from pulumi destroy unless the user opts out")
	assert.Equal(t, "haproxy-1", c.JumpHost)
	assert.True(t, c.Monitoring, "the monitoring node is on by default")
	assert.Equal(t, "t3.small", c.MonitoringType)
	assert.Equal(t, 20, c.MonitoringVolume)
	assert.Equal(t, "15d", c.MonitoringRetention)
	assert.Empty(t, c.SSHPublicKey)
	assert.Empty(t, c.Passwords)
}

func TestDataVolumesAndJumpHost(t *testing.T) {
	base := map[string]string{"aws:region": "eu-west-1", "pgha:allowedCidrs": "100.20.30.0/24"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load("dev", getter(with("pgha:patroniDataVolumeSize", "1", "pgha:protectDataVolumes", "false", "pgha:jumpHost", "haproxy-2")), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, c.PatroniDataSize)
	assert.False(t, c.ProtectData)
	assert.Equal(t, "haproxy-2", c.JumpHost)

	for _, tc := range []struct{ key, value, want string }{
		{"pgha:patroniDataVolumeSize", "0", "pulumi config set pgha:patroniDataVolumeSize 50"},
		{"pgha:etcdDataVolumeSize", "20000", "pulumi config set pgha:etcdDataVolumeSize 8"},
		{"pgha:jumpHost", "pg-1", `"pg-1" is not an HAProxy node (want one of haproxy-1, haproxy-2)`},
		{"pgha:backupFullSchedule", "Sun 02:00; rm -rf /", "is not a systemd calendar event"},
		{"pgha:backupRetentionFull", "0", "pulumi config set pgha:backupRetentionFull 2"},
		{"pgha:monitoringRetention", "two weeks", `"two weeks" is not a Prometheus duration such as 15d, 12h or 4w; fix: pulumi config set pgha:monitoringRetention 15d`},
		{"pgha:monitoringInstanceType", "t3.nano", "pgha:monitoringInstanceType"},
		{"pgha:monitoringVolumeSize", "4", "pulumi config set pgha:monitoringVolumeSize 20"},
	} {
		_, err := Load("dev", getter(with(tc.key, tc.value)), nil)
		require.Error(t, err, tc.key)
		assert.Contains(t, err.Error(), tc.want)
	}
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
